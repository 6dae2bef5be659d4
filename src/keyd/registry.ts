/**
 * The user registry (SSMAX §2.2): each registered user has an address, an
 * org-assigned pseudonymous code, an identity reference (employee or contract
 * number — wrapped under the master key, revealed only through audited
 * disclosure), certificates, a status, an individual/organisation flag and
 * inspection consent (SSMAX §3.5). Mailing lists (the encrypted-list patent)
 * are resolved here too, so the gateway never decides who a post goes to.
 */
import { defaultGroup } from '../crypto/backend';
import { CryptoError } from '../crypto/errors';
import { keyIdOf } from '../crypto/keys';
import { parseCertificate } from '../pki/certificate';
import { type Read, read } from './as-read';
import { KeydError, shownValue } from './errors';
import type { SecretWrapper } from './master-key';
import type { KeydStore } from './store';

export type UserStatus = 'active' | 'suspended';
export type UserKind = 'individual' | 'organisation';

export interface UserRecord {
  readonly address: string;
  readonly code: string;
  /** Identity reference, wrapped. */
  readonly identityRef: Uint8Array;
  /** The user's encryption key: 33-byte compressed point (hex) and key id. */
  readonly encryptionPublicKey?: string;
  readonly encryptionKeyId?: string;
  readonly encryptionCertificate?: string;
  readonly signingCertificate?: string;
  readonly certificateSerial?: string;
  readonly status: UserStatus;
  /** When an administrator revoked the user (suspended, certificates in the org CA's CRL): final, no reinstatement. */
  readonly revoked?: number;
  readonly kind: UserKind;
  readonly inspectionConsent: boolean;
  readonly created: number;
  readonly updated: number;
}

/** What the registry shows without disclosure: never the identity reference. */
export type PublicUser = Omit<UserRecord, 'identityRef'>;

/**
 * What a gateway or inspector learns of a registered user (GET /v1/directory/users, and the users of a list as
 * POST list.resolve answers them): status, kind, consent, key and certificate; nothing of the identity.
 */
export function directoryFactsOf(u: UserRecord): Record<string, unknown> {
  return {
    address: u.address,
    status: u.status,
    kind: u.kind,
    inspectionConsent: u.inspectionConsent,
    encryptionKeyId: u.encryptionKeyId ?? null,
    signingCertificate: u.signingCertificate ?? null,
  };
}

export interface ListRecord {
  readonly address: string;
  readonly members: readonly string[];
  readonly updated: number;
}

const ADDRESS =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
const CODE = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Whether `address` can be in the directory at all: a dot-atom ASCII local part and an ASCII domain (an
 * internationalised one in its A-label form), as `checkAddress` requires. A quoted or UTF-8 local part, which SMTP
 * allows, names no user or list here (the gateway answers such a recipient 550 5.1.1 without asking keyd).
 */
export function isDirectoryAddress(address: string): boolean {
  return address.length <= 254 && ADDRESS.test(address);
}

export function checkAddress(address: unknown, what = 'address'): string {
  if (typeof address !== 'string' || !isDirectoryAddress(address)) {
    throw new KeydError('bad-request', `Cannot use ${what} "${shownValue(address)}": not a mail address`);
  }
  return address.toLowerCase();
}

export interface NewUser {
  readonly address: string;
  readonly code: string;
  readonly identityRef: string;
  readonly kind?: UserKind;
  readonly inspectionConsent?: boolean;
  readonly encryptionPublicKey?: string;
  readonly encryptionKeyId?: string;
  readonly encryptionCertificate?: string;
  readonly signingCertificate?: string;
  readonly certificateSerial?: string;
}

export class Registry {
  constructor(
    private readonly store: KeydStore,
    private readonly wrapper: SecretWrapper,
    readonly domain: string,
  ) {}

  private checkLocal(address: string): void {
    if (!address.endsWith(`@${this.domain}`))
      throw new KeydError('bad-request', `Cannot register "${address}": not an address of ${this.domain}`);
  }

  /**
   * Validates a new user and builds its record; the caller stores it with the
   * audit record through `ifUnchanged(reads, …)` (as-read.ts), so that the
   * address and the code are still free in the transaction that inserts.
   */
  build(input: NewUser, now: Date): { record: UserRecord; reads: Read<unknown>[] } {
    const address = checkAddress(input.address);
    this.checkLocal(address);
    if (typeof input.code !== 'string' || !CODE.test(input.code))
      throw new KeydError('bad-request', `Cannot register "${address}": code must be 1-64 characters of [A-Za-z0-9._-]`);
    if (typeof input.identityRef !== 'string' || input.identityRef.length === 0 || input.identityRef.length > 256)
      throw new KeydError('bad-request', `Cannot register "${address}": identity reference must be 1-256 characters`);
    if (input.encryptionPublicKey !== undefined && !/^0[23][0-9a-f]{64}$/.test(input.encryptionPublicKey))
      throw new KeydError('bad-request', `Cannot register "${address}": encryption public key must be a 33-byte compressed point in hex`);
    let keyId: string | undefined;
    if (input.encryptionPublicKey !== undefined) {
      try {
        keyId = input.encryptionKeyId ?? keyIdOf(defaultGroup, Buffer.from(input.encryptionPublicKey, 'hex'));
      } catch (err) {
        if (err instanceof CryptoError) throw new KeydError('bad-request', `Cannot register "${address}": ${err.message}`);
        throw err;
      }
      if (!/^[A-Za-z0-9._:-]{1,64}$/.test(keyId))
        throw new KeydError(
          'bad-request',
          `Cannot register "${address}": encryption key id "${keyId.slice(0, 70)}" is not 1-64 characters of [A-Za-z0-9._:-]`,
        );
    }
    const code = input.code;
    // one namespace for users and lists; codes unique (a tracking token names the code alone)
    const taken = read(`address "${address}"`, () =>
      this.store.users.get(address) ? 'user' : this.store.lists.get(address) ? 'list' : undefined,
    );
    if (taken.value === 'user') throw new KeydError('bad-request', `Cannot register "${address}": already registered`);
    if (taken.value === 'list') throw new KeydError('bad-request', `Cannot register "${address}": it is a mailing list's address`);
    const holder = read(`code "${code}"`, () => this.store.codes.get(code));
    if (holder.value !== undefined) throw new KeydError('bad-request', `Cannot register "${address}": code "${code}" is taken`);
    const t = now.getTime();
    const record: UserRecord = {
      address,
      code: input.code,
      identityRef: this.wrapper.wrap(`identity:${address}`, Buffer.from(input.identityRef, 'utf8')),
      status: 'active',
      kind: input.kind ?? 'organisation',
      inspectionConsent: input.inspectionConsent ?? false,
      created: t,
      updated: t,
      ...(input.encryptionPublicKey && keyId ? { encryptionPublicKey: input.encryptionPublicKey, encryptionKeyId: keyId } : {}),
      ...(input.encryptionCertificate ? { encryptionCertificate: input.encryptionCertificate } : {}),
      ...(input.signingCertificate ? { signingCertificate: input.signingCertificate } : {}),
      ...(input.certificateSerial ? { certificateSerial: input.certificateSerial } : {}),
    };
    return { record, reads: [taken, holder] };
  }

  get(address: string): UserRecord | undefined {
    return this.store.users.get(address.toLowerCase());
  }

  require(address: string): UserRecord {
    const u = this.get(checkAddress(address));
    if (!u) throw new KeydError('not-found', `No registered user "${address}"`);
    return u;
  }

  /** A registered user's record as a read a decision rests on (as-read.ts); not-found when there is none. */
  readUser(address: string): Read<UserRecord> {
    const key = checkAddress(address);
    const r = read(`user "${key}"`, () => this.store.users.get(key));
    if (!r.value) throw new KeydError('not-found', `No registered user "${address}"`);
    return r as Read<UserRecord>;
  }

  /** The user a code names (the code index: one read, not a scan of the registry). */
  findByCode(code: string): UserRecord | undefined {
    const address = this.store.codes.get(code);
    return address === undefined ? undefined : this.store.users.get(address);
  }

  /** The write of a new user's record and its code (inside the write transaction, through `ifUnchanged` with `build`'s reads). */
  insert(record: UserRecord): void {
    this.store.users.put(record.address, record);
    this.store.codes.put(record.code, record.address);
  }

  /** The serials (hex) of the certificates held for a user: signing and encryption. */
  static certificateSerials(u: UserRecord): string[] {
    const serials = new Set<string>();
    if (u.certificateSerial) serials.add(u.certificateSerial.toLowerCase());
    for (const pem of [u.signingCertificate, u.encryptionCertificate]) if (pem) serials.add(parseCertificate(pem).serial);
    return [...serials];
  }

  static public(u: UserRecord): PublicUser {
    const { identityRef: _hidden, ...rest } = u;
    return rest;
  }

  /** The identity reference, unwrapped: only for the audited disclosure path. */
  identityOf(u: UserRecord): string {
    return this.wrapper.unwrap(`identity:${u.address}`, u.identityRef).toString('utf8');
  }

  list(address: string): ListRecord | undefined {
    return this.store.lists.get(address.toLowerCase());
  }
}
