/**
 * The inspection step inside the gateway (docs/inspection.md): the plaintext
 * comes only from a blinded decryption with a verified proof (inspector role
 * at keyd) or from a plaintext submission, lives in memory only, and is
 * inspected by DLP (submission) or ClamAV (arrival). Reject ⇒ 5xx naming the
 * rule; quarantine ⇒ held encrypted, nothing relayed; clamd unavailable ⇒
 * 4xx. A user flagged as an individual is inspected only with consent. A
 * message an operator released from quarantine passes once.
 */
import type { Capsule } from '../crypto';
import type { Verdict } from '../chain/tags';
import { systemRng } from '../crypto';
import { collect, decryptMessage, encryptMessage } from '../envelope';
import { type Inspection, inspectInbound, inspectOutbound } from '../inspect/inspect';
import { RELEASE_HEADER } from '../inspect/quarantine';
import type { GatewayDeps } from './deps';
import { GatewayError } from './replies';

export interface Inspected {
  /** The message, less any release marker. */
  readonly message: Buffer;
  readonly verdicts: Verdict[];
  /** Set when the message was held: nothing is to be relayed. */
  readonly quarantined?: string;
}

async function orgPublicKey(deps: GatewayDeps, keyId: string): Promise<Uint8Array> {
  const pub = await deps.keyd.orgKeys();
  const key = pub.keys.find((k) => k.keyId === keyId);
  if (!key) throw new GatewayError('badCapsule', `unknown key id "${keyId}"`);
  return new Uint8Array(Buffer.from(key.publicKey, 'hex'));
}

/** The original message, decrypted in memory after a blinded decryption with a verified proof. */
export async function plaintextOf(deps: GatewayDeps, message: Buffer, capsule: Capsule): Promise<Buffer> {
  const { messageKey } = await deps.keyd.messageKey(capsule, await orgPublicKey(deps, capsule.keyId));
  try {
    return await collect(decryptMessage(message, { messageKey }, { group: deps.group }));
  } catch (err) {
    throw new GatewayError('badFormat', `cannot decrypt for inspection: ${(err as Error).message}`);
  }
}

/** Strips a release marker; true when the quarantine store released this message (once). */
async function released(deps: GatewayDeps, message: Buffer): Promise<{ message: Buffer; released: boolean }> {
  const prefix = `${RELEASE_HEADER}: `;
  const end0 = message.indexOf('\r\n\r\n');
  const head = message.subarray(0, end0 < 0 ? message.length : end0 + 2).toString('latin1'); // Haraka adds Received fields above it
  const at = head.search(new RegExp(`(^|\\r\\n)${RELEASE_HEADER}: `, 'i'));
  if (at < 0) return { message, released: false };
  const start = at === 0 ? 0 : at + 2;
  const end = message.indexOf('\r\n', start);
  const id = message.subarray(start + prefix.length, end).toString('latin1').trim();
  const stripped = Buffer.concat([message.subarray(0, start), message.subarray(end + 2)]);
  return { message: stripped, released: deps.inspection ? await deps.inspection.quarantine.consumeRelease(id) : false };
}

async function consents(deps: GatewayDeps, address: string): Promise<boolean> {
  const user = await deps.keyd.user(address);
  return !(user?.kind === 'individual' && !user.inspectionConsent);
}

async function decide(deps: GatewayDeps, result: Inspection, held: () => Promise<Uint8Array>, entry: { direction: 'outbound' | 'inbound'; from: string; rcpts: readonly string[] }): Promise<string | undefined> {
  const d = result.decision;
  switch (d.action) {
    case 'pass':
    case 'tag':
      return undefined;
    case 'reject':
      throw new GatewayError(entry.direction === 'outbound' ? 'dlpRejected' : 'virusFound', `rule "${d.rule}"`);
    case 'tempfail':
      throw new GatewayError('inspectionUnavailable', d.reason);
    case 'quarantine':
      return deps.inspection!.quarantine.hold({ ...entry, rcpts: [...entry.rcpts], rule: d.rule, message: await held() });
  }
}

/** DLP on a submission. `capsule` is the own-org capsule (SSMAX client) or undefined (plaintext submission). */
export async function inspectSubmission(deps: GatewayDeps, input: Buffer, capsule: Capsule | undefined, from: string, rcpts: readonly string[]): Promise<Inspected> {
  const dlp = deps.inspection?.config.dlp;
  if (!dlp) return { message: input, verdicts: [] };
  const { message, released: wasReleased } = await released(deps, input);
  if (wasReleased) return { message, verdicts: [{ name: 'dlp', result: 'none' }] };
  const plaintext = capsule ? await plaintextOf(deps, message, capsule) : message;
  const result = await inspectOutbound(plaintext, dlp, await consents(deps, from));
  const quarantined = await decide(deps, result, async () => {
    if (capsule) return message; // already encrypted to this organisation
    const pub = await deps.keyd.orgKeys();
    const key = pub.keys.find((k) => k.keyId === pub.current);
    if (!key) throw new GatewayError('keydUnavailable', 'no current org key to keep the held message encrypted');
    return collect(encryptMessage(message, [{ keyId: key.keyId, publicKey: new Uint8Array(Buffer.from(key.publicKey, 'hex')) }], { group: deps.group, rng: systemRng }));
  }, { direction: 'outbound', from, rcpts });
  return { message, verdicts: [result.verdict], ...(quarantined ? { quarantined } : {}) };
}

/** Antivirus on an arrival encrypted to this organisation. */
export async function inspectArrival(deps: GatewayDeps, input: Buffer, capsule: Capsule, from: string, rcpts: readonly string[]): Promise<Inspected> {
  const av = deps.inspection?.config.av;
  if (!av) return { message: input, verdicts: [] };
  const { message, released: wasReleased } = await released(deps, input);
  if (wasReleased) return { message, verdicts: [{ name: 'av', result: 'none' }] };
  const consent = (await Promise.all(rcpts.map((r) => consents(deps, r)))).some(Boolean);
  const result = await inspectInbound(consent ? await plaintextOf(deps, message, capsule) : Buffer.alloc(0), av, consent);
  const quarantined = await decide(deps, result, async () => message, { direction: 'inbound', from, rcpts });
  return { message, verdicts: [result.verdict], ...(quarantined ? { quarantined } : {}) };
}
