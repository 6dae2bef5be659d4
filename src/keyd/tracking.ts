/**
 * Sender-tracking tokens (SSMAX §2.2; docs/protocol.md "Sender tracking"): an
 * AEAD encryption, under a tracking key only this key service holds, of
 * (registered user code, message-id hash, time). Tokens are unforgeable
 * (AES-256-GCM) and unlinkable (a fresh random nonce each time, so two tokens
 * of one user share no structure); only the minting organisation can open
 * them. Tracking keys are versioned; a retired one keeps resolving for its
 * retention period.
 *
 * Token bytes: version (1) = 1 || key version (uint16 BE) || nonce (12) ||
 * ciphertext || tag (16); base64url on the wire. AAD: "SSMAX-v1 tracking" ||
 * domain.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { KeydError } from './errors';
import type { SecretWrapper } from './master-key';
import { TRACKING_KEYS_NEXT, versionFloor } from './rollback';
import type { KeydStore } from './store';

export interface TrackingKeyRecord {
  readonly version: number;
  readonly wrapped: Uint8Array;
  readonly created: number;
  /** When a newer key replaced it (tokens still resolve until retiredAt + retention). */
  readonly retiredAt?: number;
}

export interface TokenContents {
  readonly code: string;
  /** First 16 bytes of SHA-256(Message-ID), hex. */
  readonly messageIdHash: string;
  readonly time: number;
  readonly keyVersion: number;
  /** Who authenticated the submission (an SMTP AUTH login, or the sender a trusted relay vouched for), when the gateway knew. */
  readonly submitter?: Submitter;
}

export interface Submitter {
  readonly id: string;
  readonly via: 'smtp-auth' | 'trusted-relay';
}

export function messageIdHash(messageId: string): string {
  return createHash('sha256').update(messageId.trim()).digest().subarray(0, 16).toString('hex');
}

export class TrackingKeys {
  constructor(
    private readonly store: KeydStore,
    private readonly wrapper: SecretWrapper,
    readonly domain: string,
    readonly retentionMs: number,
  ) {}

  private aad(): Buffer {
    return Buffer.from(`SSMAX-v1 tracking ${this.domain}`);
  }

  current(): TrackingKeyRecord | undefined {
    return [...this.store.trackingKeys.getRange({ reverse: true, limit: 1 })][0]?.value;
  }

  /** A new tracking key version after `cur` (the caller stores it with the audit record, if `cur` is still the current one). */
  buildNext(now: Date, cur: TrackingKeyRecord | undefined = this.current()): { next: TrackingKeyRecord; retired?: TrackingKeyRecord } {
    // never below the floor a restore set (rollback.ts): tokens under versions the lost host made stay unresolvable
    const version = Math.max((cur?.version ?? 0) + 1, versionFloor(this.store, TRACKING_KEYS_NEXT));
    if (version > 0xffff) throw new KeydError('internal', `No tracking key version left (${version} does not fit in a token)`);
    const fresh = randomBytes(32);
    let wrapped: Buffer;
    try {
      wrapped = this.wrapper.wrap(`tracking-key:${version}`, fresh);
    } finally {
      fresh.fill(0); // only the wrapped copy is kept
    }
    const next = { version, wrapped, created: now.getTime() };
    return cur ? { next, retired: { ...cur, retiredAt: now.getTime() } } : { next };
  }

  /** Versions of retired tracking keys past their retention, to erase. */
  expired(now: Date): number[] {
    return [...this.store.trackingKeys.getRange({})]
      .filter(({ value }) => value.retiredAt !== undefined && value.retiredAt + this.retentionMs <= now.getTime())
      .map(({ value }) => value.version);
  }

  mint(code: string, messageId: string, now: Date, submitter?: Submitter): string {
    const key = this.current();
    if (!key) throw new KeydError('internal', 'No tracking key');
    const nonce = randomBytes(12);
    const secret = this.wrapper.unwrap(`tracking-key:${key.version}`, key.wrapped);
    let c;
    try {
      c = createCipheriv('aes-256-gcm', secret, nonce);
    } finally {
      secret.fill(0); // the cipher holds its own copy
    }
    c.setAAD(this.aad());
    const body = Buffer.concat([
      c.update(
        JSON.stringify({
          c: code,
          m: messageIdHash(messageId),
          t: now.getTime(),
          ...(submitter ? { s: submitter.id, v: submitter.via } : {}),
        }),
      ),
      c.final(),
    ]);
    const head = Buffer.alloc(3);
    head[0] = 1;
    head.writeUInt16BE(key.version, 1);
    return Buffer.concat([head, nonce, body, c.getAuthTag()]).toString('base64url');
  }

  /** Opens a token; `bad-request` for anything forged, foreign, damaged or past retention. */
  resolve(token: string, now: Date): TokenContents {
    if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{40,400}$/.test(token))
      throw new KeydError('bad-request', 'Cannot resolve tracking token: not a token of this format');
    const b = Buffer.from(token, 'base64url');
    if (b[0] !== 1 || b.length < 3 + 12 + 16 + 2)
      throw new KeydError('bad-request', 'Cannot resolve tracking token: unknown token version');
    const version = b.readUInt16BE(1);
    const key = this.store.trackingKeys.get(version);
    if (!key)
      throw new KeydError('bad-request', `Cannot resolve tracking token: not minted by ${this.domain} (unknown key version ${version})`);
    if (key.retiredAt !== undefined && key.retiredAt + this.retentionMs <= now.getTime())
      throw new KeydError('bad-request', `Cannot resolve tracking token: key version ${version} is past its retention`);
    const secret = this.wrapper.unwrap(`tracking-key:${version}`, key.wrapped);
    let d;
    try {
      d = createDecipheriv('aes-256-gcm', secret, b.subarray(3, 15));
    } finally {
      secret.fill(0); // the decipher holds its own copy
    }
    d.setAAD(this.aad());
    d.setAuthTag(b.subarray(b.length - 16));
    let plain: Buffer;
    try {
      plain = Buffer.concat([d.update(b.subarray(15, b.length - 16)), d.final()]);
    } catch {
      throw new KeydError('bad-request', `Cannot resolve tracking token: forged, damaged, or not minted by ${this.domain}`);
    }
    const v = JSON.parse(plain.toString('utf8')) as { c: string; m: string; t: number; s?: string; v?: Submitter['via'] };
    return {
      code: v.c,
      messageIdHash: v.m,
      time: v.t,
      keyVersion: version,
      ...(v.s !== undefined && v.v ? { submitter: { id: v.s, via: v.v } } : {}),
    };
  }
}
