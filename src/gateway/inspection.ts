/**
 * The inspection step of a gateway hop (docs/inspection.md): DLP on a
 * submission, antivirus on every arrival, through the configured `Inspector`
 * (src/inspect/engine.ts: inline in this process, or the remote inspector
 * process). Reject ⇒ 5xx naming the rule; quarantine ⇒ held encrypted,
 * nothing relayed; clamd or the inspector unavailable ⇒ 4xx. A release
 * marker (`SSMAX-Quarantine-Release`) is stripped here and its id handed to
 * the inspector, which lets a released message pass once.
 */
import type { Capsule } from '../crypto';
import type { Verdict } from '../chain/tags';
import { type Direction, type InspectAnswer, heldPlaintextOf } from '../inspect/engine';
import { RELEASE_HEADER, parseReleaseMarker } from '../inspect/quarantine';
import { parseCapsule } from '../envelope';
import { capsuleFor, capsulesOf, checkMessage } from '../mail/message-checks';
import { createHash } from 'node:crypto';
import { retryIdentity } from './delivery';
import { GatewayError } from '../mail/replies';
import { LIST_RELEASE_HEADER, fieldOf } from '../lists/expand';
import type { GatewayDeps } from './deps';

export interface Inspected {
  /** The message, less any release marker. */
  readonly message: Buffer;
  readonly verdicts: Verdict[];
  /** Set when the message was held: nothing is to be relayed. */
  readonly quarantined?: string;
  /** A release's held entry's capsule, moved to a newer key version (InspectAnswer.capsule): open the message with it (releasedCapsules). */
  readonly capsule?: string;
}

/** Where the release marker field is in the header (Haraka adds Received fields above it), and its id; undefined without one. */
function releaseFieldOf(message: Buffer): { start: number; end: number; releaseId: string } | undefined {
  const end0 = message.indexOf('\r\n\r\n');
  const head = message.subarray(0, end0 < 0 ? message.length : end0 + 2).toString('latin1');
  const at = head.search(new RegExp(`(^|\\r\\n)${RELEASE_HEADER}: `, 'i'));
  if (at < 0) return undefined;
  const start = at === 0 ? 0 : at + 2;
  const end = message.indexOf('\r\n', start);
  const releaseId = message
    .subarray(start + RELEASE_HEADER.length + 2, end)
    .toString('latin1')
    .trim();
  return { start, end, releaseId };
}

/** Strips a release marker and returns its id. */
function withoutRelease(message: Buffer): { message: Buffer; releaseId?: string } {
  const field = releaseFieldOf(message);
  if (!field) return { message };
  const { start, end, releaseId } = field;
  return { message: Buffer.concat([message.subarray(0, start), message.subarray(end + 2)]), releaseId };
}

function decide(answer: InspectAnswer, direction: Direction): void {
  const d = answer.decision;
  switch (d.action) {
    case 'pass':
    case 'tag':
    case 'quarantine':
      return;
    case 'reject':
      throw new GatewayError(direction === 'outbound' ? 'dlpRejected' : 'virusFound', `rule "${d.rule}"`);
    case 'tempfail':
      throw new GatewayError('inspectionUnavailable', d.reason);
  }
}

async function step(
  deps: GatewayDeps,
  direction: Direction,
  input: Buffer,
  capsule: Capsule | undefined,
  from: string,
  rcpts: readonly string[],
  identity?: string | null,
): Promise<Inspected> {
  const inspector = deps.inspection;
  if (!inspector) return { message: input, verdicts: [] };
  const { message, releaseId } = withoutRelease(input);
  // a field that is no release marker at all is refused here (the remote inspector would take it for a bad request: 4xx for ever)
  if (releaseId !== undefined && !parseReleaseMarker(releaseId)) throw new GatewayError('releaseNotHonoured');
  // the arrival across the sender's retries: a retry of a message held already answers with its entry (a first attempt
  // answered 4xx after its hold committed, or whose 250 was lost), never holds it again to be released twice; none for
  // a message whose retry cannot be told from another one (delivery.ts retryIdentity)
  const known = identity === undefined ? retryIdentity(message) : (identity ?? undefined);
  const arrival =
    known === undefined
      ? undefined
      : createHash('sha256')
          .update(
            `${direction}\0${known}\0${rcpts
              .map((r) => r.toLowerCase())
              .sort()
              .join('\0')}`,
          )
          .digest('hex');
  const answer = await inspector.inspect({
    direction,
    message,
    from,
    rcpts,
    ...(arrival !== undefined ? { arrival } : {}),
    ...(capsule ? { capsule } : {}),
    ...(releaseId !== undefined ? { releaseId } : {}),
  });
  decide(answer, direction);
  if (answer.decision.action === 'quarantine' && !answer.quarantined)
    throw new GatewayError('inspectionUnavailable', 'quarantine decided but the message was not held');
  return {
    message,
    verdicts: answer.verdict ? [answer.verdict] : [],
    ...(answer.decision.action === 'quarantine' ? { quarantined: answer.quarantined! } : {}),
    ...(releaseId !== undefined && answer.capsule !== undefined ? { capsule: answer.capsule } : {}),
  };
}

/** The inspection step of one direction, as the gateway's paths call it. */
type InspectionStep = (
  deps: GatewayDeps,
  input: Buffer,
  capsule: Capsule | undefined,
  from: string,
  rcpts: readonly string[],
  /** The identity across the sender's retries of what was received (delivery.ts retryIdentity; null: none), when `input` is not that. */
  identity?: string | null,
) => Promise<Inspected>;

const stepFor =
  (direction: Direction): InspectionStep =>
  (deps, input, capsule, from, rcpts, identity) =>
    step(deps, direction, input, capsule, from, rcpts, identity);

/** DLP on a submission. `capsule` is the own-org capsule (SSMAX client) or undefined (plaintext submission). */
export const inspectSubmission = stepFor('outbound');

/** Antivirus on every arrival: `capsule` when it is encrypted to this organisation, undefined for a plaintext one (sealed or not). */
export const inspectArrival = stepFor('inbound');

/**
 * A plaintext arrival (plain Internet mail, or sealed but not encrypted) that
 * inspection held is kept encrypted to this organisation; when an operator
 * releases it, it comes back as that ciphertext with the release marker and
 * without seals. This returns the arrival as it first came, with the marker,
 * to go through the arrival steps again (where the marker counts only for an
 * entry the store released, once); undefined when `raw` is not such a message.
 * Anyone can encrypt to the published key and add a marker: before any key
 * operation or decryption, the marker must name a release under way in this
 * gateway's own quarantine (read only, the token compared in constant time),
 * else 550 5.7.1. Inline inspection only (it takes the inspector role at keyd
 * and reads the quarantine here); with a remote inspector, whose quarantine
 * this gateway cannot read, such a release is refused the same way, final,
 * never a 4xx the sender would retry for days.
 */
export async function releasedArrival(deps: GatewayDeps, raw: Buffer, capsule: Capsule): Promise<Buffer | undefined> {
  const { message, releaseId } = withoutRelease(raw);
  if (!releaseId || !deps.inspection) return undefined;
  const check = deps.inspection.releaseUnderWay?.bind(deps.inspection);
  if (!check)
    throw new GatewayError(
      'releaseNotHonoured',
      'a held plaintext arrival (unsealed or sealed but not encrypted) cannot be released through a remote inspector (only with inline inspection); delete it and ask the sender to send it again',
    );
  const marker = parseReleaseMarker(releaseId);
  if (!marker || !check(releaseId))
    throw new GatewayError('releaseNotHonoured', marker ? `${marker.id} is not in that release` : undefined);
  return openHeld(deps, message, capsule, releaseId, new GatewayError('chainFailed', 'encrypted message without seals'));
}

/**
 * A held message that was plaintext, opened with `capsule` and its release marker put back on top. What was held
 * was plaintext: an encrypted message inside is not one of ours (and is not opened layer by layer): `nested`.
 */
async function openHeld(deps: GatewayDeps, held: Buffer, capsule: Capsule, releaseId: string, nested: GatewayError): Promise<Buffer> {
  const original = await heldPlaintextOf(deps.keyd, deps.group, held, capsule, nested);
  return Buffer.concat([Buffer.from(`${RELEASE_HEADER}: ${releaseId}\r\n`, 'latin1'), original]);
}

/**
 * A release of a plaintext submission that inspection held: the gateway encrypted it to the organisation's key only
 * to hold it (the entry is `wrapped`), so the submission goes on as the plain client's, as it sent it, with the
 * release marker on top (in clear to a domain without SSMAX, where the held form would be `encryptedNoPeer` at every
 * release). The inspector opens its entry as its store keeps it, never the bytes the release sent (a marker of one
 * entry must not open another message encrypted to this organisation and send it out in clear): inline here, a
 * remote inspector in its own process (Inspector.releasedPlaintext). Undefined for anything else: no release, or an
 * entry the client encrypted itself.
 */
export async function releasedPlainSubmission(deps: GatewayDeps, raw: Buffer): Promise<Buffer | undefined> {
  const releaseId = releaseFieldOf(raw)?.releaseId;
  const plaintext = releaseId === undefined ? undefined : await deps.inspection?.releasedPlaintext?.(releaseId);
  if (!plaintext) return undefined;
  return Buffer.concat([Buffer.from(`${RELEASE_HEADER}: ${releaseId}\r\n`, 'latin1'), plaintext]);
}

/**
 * The time at which a released arrival's seals are judged (freshness, and the
 * verification's "now"): when its quarantine entry was held — when it arrived
 * and was first judged — not now; undefined (judge now) for a message that is
 * no release. An operator may take longer than [chain] max_seal_age_seconds to
 * release, and the sender was told "250 Held for review": judged now, the
 * release would be 550 sealTooOld and the entry held again, for ever.
 * Inline inspection reads the entry (a marker naming no release under way
 * gives undefined: judged now, and refused by the inspection step). A remote
 * inspector's quarantine is not readable here: the time the entry's id was
 * made at (`q-<ms base36>-…`, never after now) stands for it; the inspector
 * step that follows honours the marker only for a release under way, once,
 * before anything is delivered, and refuses any other 550.
 */
export function releaseTime(deps: GatewayDeps, raw: Buffer): Date | undefined {
  const releaseId = releaseFieldOf(raw)?.releaseId;
  const marker = releaseId === undefined ? undefined : parseReleaseMarker(releaseId);
  if (!marker || !deps.inspection) return undefined;
  const now = deps.clock().getTime();
  if (deps.inspection.releaseHeldAt) {
    const heldAt = deps.inspection.releaseHeldAt(releaseId!);
    return heldAt === undefined ? undefined : new Date(Math.min(heldAt, now));
  }
  const made = parseInt(marker.id.split('-')[1]!, 36);
  return Number.isSafeInteger(made) ? new Date(Math.min(made, now)) : undefined;
}

/**
 * The capsules to open a released message with: those it carries, but for this organisation's the capsule its
 * held entry keeps when it has one — the message's re-encrypted to a newer key version while it was held
 * (src/inspect/held-keys.ts), since the version it arrived under may be destroyed by now. Only for a release
 * under way in a store this process reads (the quarantine with inline inspection, the list moderation queue),
 * named by its marker with its token; the message itself is unchanged (its seals cover the capsules it carries).
 * A remote inspector's quarantine is not read here: its answer to the release hands the entry's capsule over
 * (Inspected.capsule, releasedCapsules), for the steps after inspection.
 */
export function heldCapsules(deps: GatewayDeps, raw: Buffer, capsules: readonly Capsule[]): readonly Capsule[] {
  if (capsules.length === 0) return capsules;
  const releaseId = releaseFieldOf(raw)?.releaseId;
  const kept = (releaseId !== undefined ? deps.inspection?.releaseCapsule?.(releaseId) : undefined) ?? deps.lists?.releaseCapsule?.(raw);
  return releasedCapsules(deps, capsules, kept);
}

/**
 * `capsules` with this organisation's replaced by `kept` (a held entry's capsule moved to a newer key version), or
 * as they are when `kept` is undefined. A remote inspector hands it over in its answer to a release it let pass
 * (Inspected.capsule), which the gateway's later steps open the message with; a kept capsule for another
 * organisation's key is a fault of the inspector (4xx: the release puts the entry back as held).
 */
export function releasedCapsules(deps: GatewayDeps, capsules: readonly Capsule[], kept: string | undefined): readonly Capsule[] {
  if (kept === undefined || capsules.length === 0) return capsules;
  const own = capsuleFor(deps.config.domain, capsules);
  const moved = parseCapsule(kept);
  if (!moved.keyId.startsWith(`${deps.config.domain}:`))
    throw new GatewayError('inspectionUnavailable', `the held entry's capsule is for ${moved.keyId}, not for ${deps.config.domain}`);
  return capsules.map((c) => (c === own ? moved : c));
}

/** The message with an Authentication-Results line naming what this hop inspected (unchanged when nothing was). */
export function withInspectionResults(domain: string, message: Buffer, verdicts: readonly Verdict[]): Buffer {
  const clauses = inspectedClauses(verdicts);
  return clauses
    ? Buffer.concat([Buffer.from(`Authentication-Results: ${domain}; ssmax-chain=none${clauses}\r\n`, 'latin1'), message])
    : message;
}

/** What this hop inspected, for an Authentication-Results line: `; ssmax-av=pass` etc. ('' when nothing was). */
export function inspectedClauses(verdicts: readonly Verdict[]): string {
  return verdicts
    .filter((v) => v.name === 'dlp' || v.name === 'av')
    .map((v) => `; ssmax-${v.name}=${v.result}`)
    .join('');
}

/** Whether `raw` is the release of a held message: it carries a quarantine or list moderation release marker that parses. */
export function isRelease(raw: Buffer): boolean {
  const releaseId = releaseFieldOf(raw)?.releaseId;
  const list = fieldOf(raw, LIST_RELEASE_HEADER);
  return (
    (releaseId !== undefined && parseReleaseMarker(releaseId) !== undefined) ||
    (list !== undefined && parseReleaseMarker(list) !== undefined)
  );
}

/**
 * What a release of a held message (a quarantine or list moderation release marker) is answered when the key version
 * its capsule is under was destroyed (keyd: 550 5.7.5 keyDestroyed): the held-keys job did not move it in time
 * (src/inspect/held-keys.ts: an entry held after its last run, or the job stopped for longer than grace_days). The
 * answer names the version and says the message cannot be released; the releaser puts the entry back as held
 * (src/mail/release.ts), never deleting it. `err` as it is for anything else.
 */
export function releasedKeyGone(deps: GatewayDeps, raw: Buffer, err: unknown): unknown {
  if (!(err instanceof GatewayError) || err.kind !== 'keyDestroyed' || !isRelease(raw)) return err;
  let keyId = '(unknown)';
  try {
    keyId = capsuleFor(deps.config.domain, heldCapsules(deps, raw, capsulesOf(checkMessage(raw).headers))).keyId;
  } catch {
    // the version is named when it can be read; the answer is the same
  }
  return new GatewayError(
    'keyDestroyed',
    `a held message released: its key version ${keyId} was destroyed before the held message was moved to the current one, so it cannot be released; it stays held`,
  );
}
