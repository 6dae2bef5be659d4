/**
 * The inspection step of a gateway hop (docs/inspection.md). One interface,
 * `Inspector`, two implementations:
 *  - `LocalInspector` (inline, [inspection] mode=inline): in the gateway
 *    process; also the engine of the separate inspector process;
 *  - `RemoteInspector` (src/inspector/client.ts, mode=remote): asks the
 *    inspector process over mutual TLS; the message travels as ciphertext.
 * The plaintext comes only from a blinded decryption with a verified proof
 * (inspector role at keyd) or from a plaintext submission, lives in memory
 * only, and is inspected by DLP (submission) or ClamAV (arrival). Reject ⇒
 * 5xx naming the rule; quarantine ⇒ held encrypted, nothing relayed; clamd or
 * the inspector unavailable ⇒ 4xx. A user flagged as an individual is
 * inspected only with consent. A message an operator released from
 * quarantine passes once.
 */
import type { Capsule, Group } from '../crypto';
import type { Verdict } from '../chain/tags';
import { systemRng } from '../crypto';
import { collect, decryptMessage, encryptMessage } from '../envelope';
import { capsulesOf, checkMessage } from './message-checks';
import type { InspectionConfig } from '../inspect/config';
import { type Decision, type Inspection, inspectInbound, inspectOutbound } from '../inspect/inspect';
import { type QuarantineStore, RELEASE_HEADER } from '../inspect/quarantine';
import type { GatewayDeps } from './deps';
import type { KeydOps } from './keyd-ops';
import { GatewayError, REPLIES, type Reply, type ReplyName, decided, messageFault } from './replies';

export type Direction = 'outbound' | 'inbound';

export interface InspectRequest {
  /** outbound: DLP at submission; inbound: antivirus at arrival. */
  readonly direction: Direction;
  /** The message: encrypted to this organisation (with `capsule`), or a plaintext submission (no capsule). */
  readonly message: Buffer;
  readonly capsule?: Capsule;
  /** The author (consent of outbound mail) and the envelope recipients (consent of inbound mail; quarantine entry). */
  readonly from: string;
  readonly rcpts: readonly string[];
  /** The id of an `SSMAX-Quarantine-Release` marker the message carried (already stripped). */
  readonly releaseId?: string;
}

export interface InspectAnswer {
  /** This hop's verdict; absent when this direction is not inspected here. */
  readonly verdict?: Verdict;
  readonly decision: Decision;
  /** The quarantine id, when the message was held (encrypted). */
  readonly quarantined?: string;
}

/** The inspection step, inline or remote: the gateway calls only this. */
export interface Inspector {
  inspect(req: InspectRequest): Promise<InspectAnswer>;
  close(): Promise<void>;
}

/** What the engine needs from keyd: the blinded decryption with proof, user facts, the org's public keys. */
export type InspectionKeyd = Pick<KeydOps, 'messageKey' | 'user' | 'orgKeys' | 'certifiedKey'>;

/** The key the proof is checked against: the one certified in the own bundle (KeydOps.certifiedKey). */
function orgPublicKey(keyd: InspectionKeyd, keyId: string): Promise<Uint8Array> {
  return keyd.certifiedKey(keyId);
}

/** The original message, decrypted in memory after a blinded decryption with a verified proof. */
export async function plaintextOf(keyd: InspectionKeyd, group: Group, message: Buffer, capsule: Capsule): Promise<Buffer> {
  const { messageKey } = await keyd.messageKey(capsule, await orgPublicKey(keyd, capsule.keyId));
  try {
    return await collect(decryptMessage(message, { messageKey }, { group }));
  } catch (err) {
    // the message key came with a verified proof: what fails now is the message (a limit of it, or its form)
    throw new GatewayError(messageFault(err)?.name ?? 'badFormat', `cannot decrypt for inspection: ${(err as Error).message}`);
  } finally {
    messageKey.fill(0); // not kept in memory after use
  }
}

/** A plaintext submission encrypted to this organisation's current key (to hold it, or to send it to a remote inspector). */
export async function encryptToOrg(keyd: Pick<KeydOps, 'orgKeys'>, group: Group, message: Buffer): Promise<Buffer> {
  const pub = await keyd.orgKeys();
  const key = pub.keys.find((k) => k.keyId === pub.current);
  if (!key) throw new GatewayError('keydUnavailable', 'no current org key to keep the message encrypted');
  return collect(encryptMessage(message, [{ keyId: key.keyId, publicKey: new Uint8Array(Buffer.from(key.publicKey, 'hex')) }], { group, rng: systemRng }));
}

/**
 * The inspection engine: consent, blinded decryption with proof, DLP or
 * ClamAV, quarantine. Runs in the gateway (inline) and in the inspector
 * process (remote), the same code.
 */
export class LocalInspector implements Inspector {
  constructor(private readonly d: { readonly config: InspectionConfig; readonly quarantine: QuarantineStore; readonly keyd: InspectionKeyd; readonly group: Group }) {}

  get config(): InspectionConfig {
    return this.d.config;
  }

  private async consents(address: string): Promise<boolean> {
    const user = await this.d.keyd.user(address);
    return !(user?.kind === 'individual' && !user.inspectionConsent);
  }

  /**
   * A parse failure or limit of the message met while inspecting it (mailparser
   * reading the plaintext) is the message's own: a final GatewayError, decided by
   * the one rule of replies.ts, also when this runs in the inspector process.
   */
  async inspect(req: InspectRequest): Promise<InspectAnswer> {
    try {
      return await this.inspectOnce(req);
    } catch (err) {
      throw decided(err);
    }
  }

  private async inspectOnce(req: InspectRequest): Promise<InspectAnswer> {
    const { dlp, av } = this.d.config;
    const name = req.direction === 'outbound' ? 'dlp' : 'av';
    if (req.direction === 'outbound' ? !dlp : !av) return { decision: { action: 'pass' } };
    if (req.releaseId && (await this.d.quarantine.consumeRelease(req.releaseId))) return { verdict: { name, result: 'none' }, decision: { action: 'pass' } };
    let result: Inspection;
    if (req.direction === 'outbound') {
      const consent = await this.consents(req.from);
      const plaintext = !consent ? Buffer.alloc(0) : req.capsule ? await plaintextOf(this.d.keyd, this.d.group, req.message, req.capsule) : req.message;
      result = await inspectOutbound(plaintext, dlp!, consent);
    } else {
      // every arrival: encrypted to this organisation (decrypted in memory first), sealed but not encrypted, or plain Internet mail
      const consent = (await Promise.all(req.rcpts.map((r) => this.consents(r)))).some(Boolean);
      const plaintext = !consent ? Buffer.alloc(0) : req.capsule ? await plaintextOf(this.d.keyd, this.d.group, req.message, req.capsule) : req.message;
      result = await inspectInbound(plaintext, av!, consent);
    }
    if (result.decision.action !== 'quarantine') return result;
    const held = req.capsule ? req.message : await encryptToOrg(this.d.keyd, this.d.group, req.message);
    const quarantined = await this.d.quarantine.hold({ direction: req.direction, from: req.from, rcpts: [...req.rcpts], rule: result.decision.rule, message: held });
    return { ...result, quarantined };
  }

  async close(): Promise<void> {
    await this.d.quarantine.close();
  }
}

/** The name of a gateway reply (for answers that cross the process boundary); undefined if it is not one of ours. */
export function replyNameOf(reply: Reply): ReplyName | undefined {
  return (Object.keys(REPLIES) as ReplyName[]).find((n) => REPLIES[n].status === reply.status && REPLIES[n].code === reply.code && (reply.text === REPLIES[n].text || reply.text.startsWith(`${REPLIES[n].text}: `)));
}

export interface Inspected {
  /** The message, less any release marker. */
  readonly message: Buffer;
  readonly verdicts: Verdict[];
  /** Set when the message was held: nothing is to be relayed. */
  readonly quarantined?: string;
}

/** Strips a release marker (Haraka adds Received fields above it) and returns its id. */
function withoutRelease(message: Buffer): { message: Buffer; releaseId?: string } {
  const end0 = message.indexOf('\r\n\r\n');
  const head = message.subarray(0, end0 < 0 ? message.length : end0 + 2).toString('latin1');
  const at = head.search(new RegExp(`(^|\\r\\n)${RELEASE_HEADER}: `, 'i'));
  if (at < 0) return { message };
  const start = at === 0 ? 0 : at + 2;
  const end = message.indexOf('\r\n', start);
  const releaseId = message.subarray(start + RELEASE_HEADER.length + 2, end).toString('latin1').trim();
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

async function step(deps: GatewayDeps, direction: Direction, input: Buffer, capsule: Capsule | undefined, from: string, rcpts: readonly string[]): Promise<Inspected> {
  const inspector = deps.inspection;
  if (!inspector) return { message: input, verdicts: [] };
  const { message, releaseId } = withoutRelease(input);
  const answer = await inspector.inspect({ direction, message, from, rcpts, ...(capsule ? { capsule } : {}), ...(releaseId ? { releaseId } : {}) });
  decide(answer, direction);
  if (answer.decision.action === 'quarantine' && !answer.quarantined) throw new GatewayError('inspectionUnavailable', 'quarantine decided but the message was not held');
  return { message, verdicts: answer.verdict ? [answer.verdict] : [], ...(answer.decision.action === 'quarantine' ? { quarantined: answer.quarantined! } : {}) };
}

/** DLP on a submission. `capsule` is the own-org capsule (SSMAX client) or undefined (plaintext submission). */
export function inspectSubmission(deps: GatewayDeps, input: Buffer, capsule: Capsule | undefined, from: string, rcpts: readonly string[]): Promise<Inspected> {
  return step(deps, 'outbound', input, capsule, from, rcpts);
}

/** Antivirus on every arrival: `capsule` when it is encrypted to this organisation, undefined for a plaintext one (sealed or not). */
export function inspectArrival(deps: GatewayDeps, input: Buffer, capsule: Capsule | undefined, from: string, rcpts: readonly string[]): Promise<Inspected> {
  return step(deps, 'inbound', input, capsule, from, rcpts);
}

/**
 * A plaintext arrival (plain Internet mail, or sealed but not encrypted) that
 * inspection held is kept encrypted to this organisation; when an operator
 * releases it, it comes back as that ciphertext with the release marker and
 * without seals. This returns the arrival as it first came, with the marker,
 * to go through the arrival steps again (where the marker counts only for an
 * entry the store released); undefined when `raw` is not such a message.
 * Inline inspection only: it takes the inspector role at keyd.
 */
export async function releasedArrival(deps: GatewayDeps, raw: Buffer, capsule: Capsule): Promise<Buffer | undefined> {
  const { message, releaseId } = withoutRelease(raw);
  if (!releaseId || !deps.inspection) return undefined;
  const original = await plaintextOf(deps.keyd, deps.group, message, capsule);
  // what was held was plaintext: an encrypted message inside is not one of ours (and is not opened layer by layer)
  if (capsulesOf(checkMessage(original).headers).length > 0) throw new GatewayError('chainFailed', 'encrypted message without seals');
  return Buffer.concat([Buffer.from(`${RELEASE_HEADER}: ${releaseId}\r\n`, 'latin1'), original]);
}

/** The message with an Authentication-Results line naming what this hop inspected (unchanged when nothing was). */
export function withInspectionResults(domain: string, message: Buffer, verdicts: readonly Verdict[]): Buffer {
  const clauses = inspectedClauses(verdicts);
  return clauses ? Buffer.concat([Buffer.from(`Authentication-Results: ${domain}; ssmax-chain=none${clauses}\r\n`, 'latin1'), message]) : message;
}

/** What this hop inspected, for an Authentication-Results line: `; ssmax-av=pass` etc. ('' when nothing was). */
export function inspectedClauses(verdicts: readonly Verdict[]): string {
  return verdicts.filter((v) => v.name === 'dlp' || v.name === 'av').map((v) => `; ssmax-${v.name}=${v.result}`).join('');
}
