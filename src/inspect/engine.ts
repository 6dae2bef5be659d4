/**
 * The inspection engine (docs/inspection.md): consent, blinded decryption
 * with a verified proof, DLP (outbound) or ClamAV (inbound), quarantine. One
 * interface, `Inspector`, two implementations:
 *  - `LocalInspector` (here): in the gateway process ([inspection]
 *    mode=inline) and in the separate inspector process, the same code;
 *  - `RemoteInspector` (src/inspector/client.ts, mode=remote): asks the
 *    inspector process over mutual TLS; the message travels as ciphertext.
 * The plaintext comes only from a blinded decryption with a verified proof
 * (inspector role at keyd) or from a plaintext submission, and lives in
 * memory only. Reject ⇒ 5xx naming the rule; quarantine ⇒ held encrypted;
 * clamd unavailable ⇒ 4xx. A user flagged as an individual is inspected only
 * with consent. A message an operator released from quarantine passes once.
 * The gateway's inspection step calls only the
 * `Inspector` interface.
 */
import type { Capsule, Group } from '../crypto';
import type { Verdict } from '../chain/tags';
import { systemRng } from '../crypto';
import { collect, decryptMessage, encryptMessage, parseCapsule } from '../envelope';
import type { KeyNotice, KeydOps } from '../keyd/client-ops';
import { GatewayError, decided, messageFault } from '../mail/replies';
import { capsulesOf, checkMessage, checkNoBareCr } from '../mail/message-checks';
import type { InspectionConfig } from './config';
import { type Decision, type Inspection, inspectInbound, inspectOutbound } from './inspect';
import { type QuarantineStore, parseReleaseMarker } from './quarantine';

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
  /**
   * The message is plaintext that the gateway encrypted to this organisation only to send it to a remote inspector
   * (a plain client's submission, a plaintext arrival): held, its entry is `wrapped`, as inline.
   */
  readonly wrapped?: true;
  /**
   * The arrival's key across the sender's retries (64 hex digits: the gateway's identity of the message, the
   * direction and the recipients, hashed): a hold of a message held under the same key answers with that entry
   * (QuarantineStore.hold), never a second one.
   */
  readonly arrival?: string;
}

export interface InspectAnswer {
  /** This hop's verdict; absent when this direction is not inspected here. */
  readonly verdict?: Verdict;
  readonly decision: Decision;
  /** The quarantine id, when the message was held (encrypted). */
  readonly quarantined?: string;
  /**
   * For a release let pass whose held entry was moved to a newer key version (src/inspect/held-keys.ts): the entry's
   * capsule (its text), the message's own re-encrypted; the gateway opens the message with it instead of the
   * message's own, whose version may be destroyed by now (src/gateway/inspection.ts). How a remote inspector's
   * quarantine hands it over: the gateway cannot read that store.
   */
  readonly capsule?: string;
}

/** The inspection step, inline or remote: the gateway calls only this. */
export interface Inspector {
  inspect(req: InspectRequest): Promise<InspectAnswer>;
  /**
   * Whether the release marker `value` names a release under way in this inspector's quarantine (read only,
   * the token compared in constant time); absent when the quarantine is not in this process (remote inspection).
   */
  releaseUnderWay?(value: string): boolean;
  /** When the entry of the release `value` names was held (ms since the epoch); undefined when it is not under way. Absent as releaseUnderWay. */
  releaseHeldAt?(value: string): number | undefined;
  /**
   * The capsule (its text) the entry of the release `value` names opens with when it is not the message's own: the
   * message's capsule re-encrypted to a newer key version while it was held (src/inspect/held-keys.ts); undefined
   * otherwise. Absent as releaseUnderWay.
   */
  releaseCapsule?(value: string): string | undefined;
  /**
   * The plaintext a plain client submitted, for a release under way of a held submission that was encrypted to this
   * organisation only to hold it (the entry is `wrapped`): opened from the entry as the store keeps it, never from
   * the bytes the release sent; undefined for any other release. Inline and remote alike (the remote inspector
   * opens its own entry: the gateway holds no inspector credentials).
   */
  releasedPlaintext?(value: string): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

/** What the engine needs from keyd: the blinded decryption with proof, user facts, the org's public keys. */
export type InspectionKeyd = Pick<KeydOps, 'messageKey' | 'user' | 'orgKeys' | 'certifiedKey'>;

/** The key the proof is checked against: the one certified in the own bundle (KeydOps.certifiedKey). */
function orgPublicKey(keyd: InspectionKeyd, keyId: string): Promise<Uint8Array> {
  return keyd.certifiedKey(keyId);
}

/**
 * The original message, decrypted in memory after a blinded decryption with a
 * verified proof; the message key is wiped after use. `opts.purpose` names the
 * use in the 5xx of a message that does not decrypt ("for inspection" by
 * default); `opts.notice` receives keyd's notice on the capsule's key (retired).
 */
export async function plaintextOf(
  keyd: InspectionKeyd,
  group: Group,
  message: Buffer,
  capsule: Capsule,
  opts: { readonly purpose?: string; readonly notice?: (n: KeyNotice) => void } = {},
): Promise<Buffer> {
  const { messageKey, ...notice } = await keyd.messageKey(capsule, await orgPublicKey(keyd, capsule.keyId));
  let plaintext: Buffer;
  try {
    opts.notice?.(notice);
    plaintext = await collect(decryptMessage(message, { messageKey }, { group }));
  } catch (err) {
    // the message key came with a verified proof: what fails now is the message (a limit of it, or its form)
    throw new GatewayError(
      messageFault(err)?.name ?? 'badFormat',
      `cannot decrypt ${opts.purpose ?? 'for inspection'}: ${(err as Error).message}`,
    );
  } finally {
    messageKey.fill(0); // not kept in memory after use
  }
  // what the outer message may not hold, the encrypted one may not either (its header is read and handed on)
  checkNoBareCr(plaintext, 'in the encrypted message, ');
  return plaintext;
}

/**
 * A held message that was plaintext, opened with `capsule` (plaintextOf). What was held was plaintext: an encrypted
 * message inside is not one of ours (and is not opened layer by layer): `nested` is thrown then.
 */
export async function heldPlaintextOf(
  keyd: InspectionKeyd,
  group: Group,
  held: Buffer,
  capsule: Capsule,
  nested: GatewayError,
  purpose?: string,
): Promise<Buffer> {
  const plaintext = await plaintextOf(keyd, group, held, capsule, purpose === undefined ? {} : { purpose });
  if (capsulesOf(checkMessage(plaintext).headers).length > 0) throw nested;
  return plaintext;
}

/** A plaintext submission encrypted to this organisation's current key (to hold it, or to send it to a remote inspector). */
export async function encryptToOrg(keyd: Pick<KeydOps, 'orgKeys'>, group: Group, message: Buffer): Promise<Buffer> {
  const pub = await keyd.orgKeys();
  const key = pub.keys.find((k) => k.keyId === pub.current);
  if (!key) throw new GatewayError('keydUnavailable', 'no current org key to keep the message encrypted');
  return collect(
    encryptMessage(message, [{ keyId: key.keyId, publicKey: new Uint8Array(Buffer.from(key.publicKey, 'hex')) }], {
      group,
      rng: systemRng,
    }),
  );
}

/**
 * The inspection engine: consent, blinded decryption with proof, DLP or
 * ClamAV, quarantine. Runs in the gateway (inline) and in the inspector
 * process (remote), the same code.
 */
export class LocalInspector implements Inspector {
  constructor(
    private readonly d: {
      readonly config: InspectionConfig;
      readonly quarantine: QuarantineStore;
      readonly keyd: InspectionKeyd;
      readonly group: Group;
    },
  ) {}

  get config(): InspectionConfig {
    return this.d.config;
  }

  releaseUnderWay(value: string): boolean {
    const marker = parseReleaseMarker(value);
    return marker !== undefined && this.d.quarantine.releaseUnderWay(marker.id, marker.token);
  }

  releaseHeldAt(value: string): number | undefined {
    const marker = parseReleaseMarker(value);
    return marker === undefined ? undefined : this.d.quarantine.releaseHeldAt(marker.id, marker.token);
  }

  releaseCapsule(value: string): string | undefined {
    const marker = parseReleaseMarker(value);
    return marker === undefined ? undefined : this.d.quarantine.releaseCapsule(marker.id, marker.token);
  }

  async releasedPlaintext(value: string): Promise<Buffer | undefined> {
    const marker = parseReleaseMarker(value);
    const held = marker === undefined ? undefined : this.d.quarantine.releaseWrapped(marker.id, marker.token);
    if (!held) return undefined;
    const stored = Buffer.from(held.message);
    // the entry's capsule moved to a newer key version while it was held, else the one the gateway encrypted it with
    const own = capsulesOf(checkMessage(stored).headers);
    const capsule = held.capsule !== undefined ? parseCapsule(held.capsule) : own.length === 1 ? own[0] : undefined;
    if (!capsule) throw new GatewayError('releaseNotHonoured', 'the held entry carries no capsule to open it with');
    return heldPlaintextOf(
      this.d.keyd,
      this.d.group,
      stored,
      capsule,
      new GatewayError('releaseNotHonoured', 'the held message opens to another encrypted message, not the plaintext that was held'),
      'the released message',
    );
  }

  /** The quarantine (the gateway moves its held messages' key versions: src/inspect/held-keys.ts). */
  get quarantine(): QuarantineStore {
    return this.d.quarantine;
  }

  private async consents(address: string): Promise<boolean> {
    const user = await this.d.keyd.user(address);
    return !(user?.kind === 'individual' && !user.inspectionConsent);
  }

  /**
   * A parse failure or limit of the message met while inspecting it (mailparser
   * reading the plaintext) is the message's own: a final GatewayError, decided by
   * the one rule of src/mail/replies.ts, also when this runs in the inspector process.
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
    const enabled = req.direction === 'outbound' ? dlp : av;
    if (req.releaseId !== undefined) {
      // a release field counts only for the entry's current release (its token), once; any other is refused, never inspected
      // as a fresh message: a late copy of a release taken over after its lease must not be delivered as well
      const marker = parseReleaseMarker(req.releaseId);
      // the entry's moved capsule, read before the release is consumed (either capsule opens the message while a move is under way)
      const kept = marker && this.d.quarantine.releaseCapsule(marker.id, marker.token);
      if (!marker || !(await this.d.quarantine.consumeRelease(marker.id, marker.token)))
        throw new GatewayError('releaseNotHonoured', marker ? `${marker.id} is not in that release` : undefined);
      const capsule = kept ? { capsule: kept } : {};
      return enabled
        ? { verdict: { name, result: 'none' }, decision: { action: 'pass' }, ...capsule }
        : { decision: { action: 'pass' }, ...capsule };
    }
    if (!enabled) return { decision: { action: 'pass' } };
    let result: Inspection;
    if (req.direction === 'outbound') {
      const consent = await this.consents(req.from);
      const plaintext = !consent
        ? Buffer.alloc(0)
        : req.capsule
          ? await plaintextOf(this.d.keyd, this.d.group, req.message, req.capsule)
          : req.message;
      result = await inspectOutbound(plaintext, dlp!, consent);
    } else {
      // every arrival: encrypted to this organisation (decrypted in memory first), sealed but not encrypted, or plain Internet mail
      const consent = (await Promise.all(req.rcpts.map((r) => this.consents(r)))).some(Boolean);
      const plaintext = !consent
        ? Buffer.alloc(0)
        : req.capsule
          ? await plaintextOf(this.d.keyd, this.d.group, req.message, req.capsule)
          : req.message;
      result = await inspectInbound(plaintext, av!, consent);
    }
    if (result.decision.action !== 'quarantine') return result;
    const held = req.capsule ? req.message : await encryptToOrg(this.d.keyd, this.d.group, req.message);
    const quarantined = await this.d.quarantine.hold(
      {
        direction: req.direction,
        from: req.from,
        rcpts: [...req.rcpts],
        rule: result.decision.rule,
        message: held,
        // encrypted here (or by the gateway, for a remote inspector) only to be held: released as the plaintext it was
        ...(req.capsule && !req.wrapped ? {} : { wrapped: true as const }),
      },
      Date.now(),
      req.arrival,
    );
    return { ...result, quarantined };
  }

  async close(): Promise<void> {
    await this.d.quarantine.close();
  }
}
