/**
 * The user profile: a folder holding what one user needs to sign, encrypt,
 * send and open SSMAX mail (docs/user.md "Profile folder").
 *
 *   profile.json          address, pseudonym, code, domain, key id, SMTP settings
 *   signing.key.pem       P-256 signing key, PKCS#8 PEM (encrypted with the
 *                         user's passphrase, unless made with none), mode 0600
 *   signing.cert.pem      user signing certificate (docs/pki.md)
 *   encryption.key.pem    secp256k1 encryption key, the same, mode 0600
 *   encryption.cert.pem   user encryption certificate
 *   org-bundle.json       the own organisation's signed bundle (docs/pki.md)
 *   root.cert.pem         the trusted SSMAX root
 *
 * Guarantees: `createUserProfile` certifies both keys with the organisation
 * CA only after the organisation bundle verifies up to the given root and
 * names that CA and the address's domain; it never replaces an existing
 * profile. `loadUserProfile` refuses private key files readable by others,
 * decrypts encrypted keys with the passphrase it is given (naming the file
 * when none was given or it is wrong), and checks that each key matches its
 * certificate.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { defaultGroup } from '../crypto/backend';
import { generateP256KeyPair } from '../crypto/ecdsa';
import { keyIdOf, publicKeyOf } from '../crypto/keys';
import { type VerifiedBundle, verifyBundle } from '../pki/bundle';
import { type ParsedCertificate, bytesEqual, parseCertificate } from '../pki/certificate';
import { type SigningAuthority, issueUserCertificate } from '../pki/issue';
import { encryptionPointOf, generateSecp256k1KeyPair, privateKeyFromPem, privateKeyToPem, spkiOf } from '../pki/keys';
import { UserError } from './errors';
import { cannotRead } from '../errors/errno';
import { writeFileAtomic } from '../fs/atomic';
import { type FolderLockKind, withFolderLock } from '../fs/folder-lock';
import type { SmtpSecurity } from '../net/loopback';

export const PROFILE_FORMAT = 'ssmax-user-profile/1';

export const PROFILE_FILES = {
  profile: 'profile.json',
  signingKey: 'signing.key.pem',
  signingCertificate: 'signing.cert.pem',
  encryptionKey: 'encryption.key.pem',
  encryptionCertificate: 'encryption.cert.pem',
  orgBundle: 'org-bundle.json',
  root: 'root.cert.pem',
} as const;

/** SMTP submission settings (RFC 6409). The password never lives in the profile itself. */
export interface SmtpSettings {
  readonly host: string;
  /** 587 (submission with STARTTLS) by default. */
  readonly port: number;
  /** AUTH user name. */
  readonly user: string;
  /**
   * `starttls`: upgrade with STARTTLS and refuse without it (default);
   * `tls`: implicit TLS from the first byte (port 465);
   * `none`: no TLS at all — for loopback tests only.
   */
  readonly security: SmtpSecurity;
  /** File holding the password (first line), relative to the profile folder or absolute. */
  readonly passwordFile?: string;
  /** Environment variable holding the password. */
  readonly passwordEnv?: string;
}

/** profile.json */
export interface ProfileDocument {
  readonly format: typeof PROFILE_FORMAT;
  readonly address: string;
  readonly domain: string;
  readonly pseudonym: string;
  readonly code: string;
  readonly encryptionKeyId: string;
  readonly smtp?: SmtpSettings;
}

/** The profile's public part: what sending and updating the bundle need, read without its private keys. */
export interface UserProfileSettings {
  readonly dir: string;
  readonly address: string;
  readonly domain: string;
  readonly pseudonym: string;
  readonly code: string;
  /** The organisation bundle, JSON text as published (verified on use, with the time of use). */
  readonly orgBundle: string;
  readonly rootPem: string;
  readonly smtp?: SmtpSettings;
}

/** A loaded profile. Holds private keys: never log it. */
export interface UserProfile extends UserProfileSettings {
  readonly signingKey: KeyObject;
  readonly signingCertificate: ParsedCertificate;
  readonly encryption: {
    /** Fingerprint key id (`keyIdOf`): what keyd's registry and the capsules use. */
    readonly keyId: string;
    /** 32-byte scalar. Secret. */
    readonly privateKey: Uint8Array;
    /** 33-byte compressed point. */
    readonly publicKey: Uint8Array;
  };
  readonly encryptionCertificate: ParsedCertificate;
}

/** What an administrator registers at keyd (POST /v1/registry/users, docs/keyd-api.md), plus the identity reference. */
export interface UserRegistration {
  readonly address: string;
  readonly code: string;
  /** 33-byte compressed secp256k1 point, hex. */
  readonly encryptionPublicKey: string;
  readonly encryptionKeyId: string;
  /** PEM. */
  readonly encryptionCertificate: string;
  /** PEM. */
  readonly signingCertificate: string;
  /** Serial (hex) of the signing certificate: the one the sending gateway sees in the user signature. */
  readonly certificateSerial: string;
}

export interface CreateUserProfileOptions {
  readonly address: string;
  readonly pseudonym: string;
  readonly code: string;
  /** The organisation CA that certifies the user's keys. */
  readonly orgCa: SigningAuthority;
  /** The SSMAX root, PEM. */
  readonly rootPem: string;
  /** The organisation's signed bundle, JSON text. */
  readonly orgBundle: string;
  readonly smtp?: SmtpSettings;
  readonly now: Date;
  /** Certificate lifetime in days (default 365), clamped to the CA's validity. */
  readonly validDays?: number;
  /**
   * Encrypts both private keys (PKCS#8, AES-256) with this passphrase. Without
   * it the keys are written unencrypted: the CLI asks for that explicitly
   * (`--unencrypted-key`).
   */
  readonly keyPassphrase?: string;
}

/** How `loadUserProfile` opens the profile's private keys. */
export interface LoadUserProfileOptions {
  /** The passphrase of encrypted keys; an unencrypted key needs none. */
  readonly keyPassphrase?: string;
}

const ADDRESS_RE =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+)$/;

/** The domain of a dot-atom address, lowercased; throws a UserError otherwise. */
export function domainOf(address: string): string {
  const m = ADDRESS_RE.exec(address);
  if (!m || !m[1]) throw new UserError('profile', `Cannot use address "${String(address).slice(0, 80)}": not a dot-atom mail address`);
  return m[1].toLowerCase();
}

/** Verifies the own organisation's bundle at `now`; throws a UserError naming the status. */
export function verifyOrgBundle(text: string, domain: string, rootPem: string, now: Date): VerifiedBundle {
  const r = verifyBundle(text, { domain, roots: [rootPem], time: now });
  if (r.status !== 'valid') throw new UserError('bundle', `Cannot use the organisation bundle of "${domain}": ${r.status}: ${r.message}`);
  return r.bundle;
}

/** The raw 32-byte scalar of a secp256k1 PKCS#8 key, through its JWK `d`. */
export function secp256k1Scalar(key: KeyObject): Uint8Array {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp256k1') {
    throw new UserError('profile', 'Cannot use encryption key: it is not an EC secp256k1 private key');
  }
  const d = key.export({ format: 'jwk' }).d;
  if (typeof d !== 'string') throw new UserError('profile', 'Cannot use encryption key: it is not a private key');
  const raw = Buffer.from(d, 'base64url');
  try {
    if (raw.length > 32) throw new UserError('profile', 'Cannot use encryption key: the scalar is longer than 32 bytes');
    const out = new Uint8Array(32);
    out.set(raw, 32 - raw.length);
    return out;
  } finally {
    raw.fill(0); // only the returned copy holds the scalar
  }
}

function writeSecret(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600); // the mode applies on creation only, and umask may have narrowed it anyway
}

function writePublic(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o644, flag: 'wx' });
}

/**
 * Creates a user profile folder: generates the signing key (P-256) and the
 * encryption key (secp256k1), has the organisation CA certify both, and
 * writes the folder (mode 0700; private keys 0600). Returns what an
 * administrator registers at keyd.
 */
export function createUserProfile(dir: string, optsIn: CreateUserProfileOptions): UserRegistration {
  const domain = domainOf(optsIn.address);
  // The chain's u= wants a lowercase domain (docs/chain.md); the local part is kept as given.
  const opts = { ...optsIn, address: `${optsIn.address.slice(0, optsIn.address.lastIndexOf('@'))}@${domain}` };
  if (!(opts.now instanceof Date) || Number.isNaN(opts.now.getTime()))
    throw new TypeError('Cannot create user profile: now must be a valid Date');
  const bundle = verifyOrgBundle(opts.orgBundle, domain, opts.rootPem, opts.now);
  if (bundle.orgCa.fingerprint !== opts.orgCa.certificate.fingerprint) {
    throw new UserError(
      'bundle',
      `Cannot create user profile for "${opts.address}": the organisation CA "${opts.orgCa.certificate.subject}" is not the one of the bundle of "${domain}"`,
    );
  }
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new UserError('profile', `Cannot create user profile in "${dir}": the folder is not empty`);
  if (opts.smtp) checkSmtp(opts.smtp, dir);

  const days = opts.validDays ?? 365;
  if (!Number.isSafeInteger(days) || days < 1)
    throw new TypeError(`Cannot create user profile: validDays "${days}" is not a positive integer`);
  const start = Math.floor(opts.now.getTime() / 1000) * 1000;
  const ca = opts.orgCa.certificate;
  // Backdated an hour for clock skew, clamped to the CA's own validity (the PKI refuses anything outside it).
  const notBefore = new Date(Math.max(start - 3600_000, ca.notBefore.getTime()));
  const notAfter = new Date(Math.min(start + days * 86400_000, ca.notAfter.getTime()));

  const signing = generateP256KeyPair();
  const encryption = generateSecp256k1KeyPair();
  const common = { email: opts.address, pseudonym: opts.pseudonym, code: opts.code, notBefore, notAfter };
  let signingCert: ParsedCertificate;
  let encryptionCert: ParsedCertificate;
  try {
    signingCert = issueUserCertificate(opts.orgCa, { ...common, purpose: 'signing', publicKey: spkiOf(signing.publicKey) });
    encryptionCert = issueUserCertificate(opts.orgCa, { ...common, purpose: 'encryption', publicKey: spkiOf(encryption.publicKey) });
  } catch (err) {
    throw new UserError('profile', (err as Error).message);
  }
  const point = encryptionPointOf(encryptionCert);
  const keyId = keyIdOf(defaultGroup, point);

  const doc: ProfileDocument = {
    format: PROFILE_FORMAT,
    address: opts.address,
    domain,
    pseudonym: opts.pseudonym,
    code: opts.code,
    encryptionKeyId: keyId,
    ...(opts.smtp ? { smtp: opts.smtp } : {}),
  };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  writeSecret(join(dir, PROFILE_FILES.signingKey), privateKeyToPem(signing.privateKey, opts.keyPassphrase));
  writeSecret(join(dir, PROFILE_FILES.encryptionKey), privateKeyToPem(encryption.privateKey, opts.keyPassphrase));
  writePublic(join(dir, PROFILE_FILES.signingCertificate), signingCert.pem);
  writePublic(join(dir, PROFILE_FILES.encryptionCertificate), encryptionCert.pem);
  writePublic(join(dir, PROFILE_FILES.orgBundle), opts.orgBundle);
  writePublic(join(dir, PROFILE_FILES.root), opts.rootPem);
  writePublic(join(dir, PROFILE_FILES.profile), `${JSON.stringify(doc, null, 2)}\n`);

  return {
    address: opts.address,
    code: opts.code,
    encryptionPublicKey: Buffer.from(point).toString('hex'),
    encryptionKeyId: keyId,
    encryptionCertificate: encryptionCert.pem,
    signingCertificate: signingCert.pem,
    certificateSerial: signingCert.serial,
  };
}

function checkSmtp(smtp: SmtpSettings, where: string): void {
  const bad = (what: string): never => {
    throw new UserError('profile', `Cannot use the SMTP settings of "${where}": ${what}`);
  };
  if (!smtp || typeof smtp !== 'object') bad('not an object');
  if (typeof smtp.host !== 'string' || smtp.host === '') bad('host is missing');
  if (!Number.isSafeInteger(smtp.port) || smtp.port < 1 || smtp.port > 65535) bad(`port "${String(smtp.port)}" is not a port number`);
  if (typeof smtp.user !== 'string' || smtp.user === '') bad('user is missing');
  if (!['starttls', 'tls', 'none'].includes(smtp.security)) bad(`security "${String(smtp.security)}" is not starttls, tls or none`);
  if (smtp.passwordFile !== undefined && typeof smtp.passwordFile !== 'string') bad('passwordFile is not a string');
  if (smtp.passwordEnv !== undefined && typeof smtp.passwordEnv !== 'string') bad('passwordEnv is not a string');
  if ('password' in (smtp as object)) bad('a password must not be stored in the profile (use passwordFile or passwordEnv)');
}

function readProfileFile(dir: string, name: string): string {
  const path = join(dir, name);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UserError('profile', cannotRead('profile file', path, err));
  }
}

function readPrivateKey(dir: string, name: string, passphrase: string | undefined): KeyObject {
  const path = join(dir, name);
  const text = readProfileFile(dir, name);
  // Like ssh: a private key others can read is refused, not silently used.
  if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) {
    throw new UserError('profile', `Cannot use "${path}": it is readable by others (chmod 600 it)`);
  }
  if (isEncryptedKey(text) && passphrase === undefined)
    throw new UserError('profile', `Cannot use "${path}": the key is encrypted; give its passphrase (--key-passphrase-file FILE)`);
  try {
    return privateKeyFromPem(text, passphrase);
  } catch {
    throw new UserError(
      'profile',
      isEncryptedKey(text)
        ? `Cannot decrypt "${path}": wrong passphrase, or the file is damaged`
        : `Cannot read "${path}": not a PKCS#8 PEM private key`,
    );
  }
}

/** Whether a PEM private key is encrypted (PKCS#8 EncryptedPrivateKeyInfo). */
function isEncryptedKey(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----');
}

function readCertificate(dir: string, name: string): ParsedCertificate {
  try {
    return parseCertificate(readProfileFile(dir, name));
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError('profile', `Cannot read "${join(dir, name)}": ${(err as Error).message}`);
  }
}

/** Reads and checks profile.json, the bundle and the root: no private key is read (sending, updating the bundle). */
export function loadUserProfileSettings(dir: string): UserProfileSettings & { readonly encryptionKeyId: string } {
  let doc: ProfileDocument;
  try {
    doc = JSON.parse(readProfileFile(dir, PROFILE_FILES.profile)) as ProfileDocument;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError('profile', `Cannot read "${join(dir, PROFILE_FILES.profile)}": not JSON`);
  }
  if (!doc || typeof doc !== 'object' || doc.format !== PROFILE_FORMAT)
    throw new UserError('profile', `Cannot read "${join(dir, PROFILE_FILES.profile)}": format is not "${PROFILE_FORMAT}"`);
  const domain = domainOf(doc.address);
  if (doc.domain !== domain)
    throw new UserError(
      'profile',
      `Cannot read "${join(dir, PROFILE_FILES.profile)}": domain "${String(doc.domain)}" is not the address's`,
    );
  if (doc.smtp !== undefined) checkSmtp(doc.smtp, dir);
  return {
    dir,
    address: doc.address,
    domain,
    pseudonym: doc.pseudonym,
    code: doc.code,
    encryptionKeyId: doc.encryptionKeyId,
    orgBundle: readProfileFile(dir, PROFILE_FILES.orgBundle),
    rootPem: readProfileFile(dir, PROFILE_FILES.root),
    ...(doc.smtp ? { smtp: doc.smtp } : {}),
  };
}

/** Reads and checks a profile folder with its private keys (not the bundle's validity: that depends on the time of use). */
export function loadUserProfile(dir: string, opts: LoadUserProfileOptions = {}): UserProfile {
  const { encryptionKeyId, ...doc } = loadUserProfileSettings(dir);
  const signingKey = readPrivateKey(dir, PROFILE_FILES.signingKey, opts.keyPassphrase);
  const signingCertificate = readCertificate(dir, PROFILE_FILES.signingCertificate);
  if (!bytesEqual(spkiOf(signingKey), signingCertificate.spki))
    throw new UserError('profile', `Cannot use "${join(dir, PROFILE_FILES.signingKey)}": it does not match the signing certificate`);
  const encryptionKey = readPrivateKey(dir, PROFILE_FILES.encryptionKey, opts.keyPassphrase);
  const encryptionCertificate = readCertificate(dir, PROFILE_FILES.encryptionCertificate);
  const privateKey = secp256k1Scalar(encryptionKey);
  const publicKey = publicKeyOf(defaultGroup, privateKey);
  let certified: Uint8Array;
  try {
    certified = encryptionPointOf(encryptionCertificate);
  } catch (err) {
    throw new UserError('profile', `Cannot use "${join(dir, PROFILE_FILES.encryptionCertificate)}": ${(err as Error).message}`);
  }
  if (!bytesEqual(publicKey, certified))
    throw new UserError('profile', `Cannot use "${join(dir, PROFILE_FILES.encryptionKey)}": it does not match the encryption certificate`);
  const keyId = keyIdOf(defaultGroup, publicKey);
  if (encryptionKeyId !== keyId)
    throw new UserError(
      'profile',
      `Cannot read "${join(dir, PROFILE_FILES.profile)}": encryptionKeyId "${String(encryptionKeyId)}" is not the key's fingerprint "${keyId}"`,
    );
  for (const cert of [signingCertificate, encryptionCertificate]) {
    if (!cert.emails.some((e) => e.toLowerCase() === doc.address.toLowerCase())) {
      throw new UserError('profile', `Cannot use certificate "${cert.subject}": it does not name "${doc.address}"`);
    }
  }
  return { ...doc, signingKey, signingCertificate, encryption: { keyId, privateKey, publicKey }, encryptionCertificate };
}

/** The lock two `ssmax user update-bundle` on one profile take (src/fs/folder-lock.ts): its secret file lives in the profile. */
const PROFILE_LOCK: FolderLockKind = { secretFile: 'profile-lock.secret', prefix: 'ssmax-profile-' };
const PROFILE_LOCK_WAIT_MS = 30_000;

/**
 * Replaces the profile's organisation bundle with a newer one, after verifying it (serial must not go
 * back). The bundle on disk is read again under the profile's lock, so two updates at once never move
 * the serial back, and the file is replaced whole (renamed into place): a reader never sees half of it.
 */
export async function updateOrgBundle(profile: UserProfileSettings, text: string, now: Date): Promise<VerifiedBundle> {
  return withFolderLock(profile.dir, PROFILE_LOCK, PROFILE_LOCK_WAIT_MS, () => {
    const current = readProfileFile(profile.dir, PROFILE_FILES.orgBundle);
    const old = verifyBundle(current, { domain: profile.domain, roots: [profile.rootPem], time: now });
    const r = verifyBundle(text, {
      domain: profile.domain,
      roots: [profile.rootPem],
      time: now,
      ...(old.status === 'valid' ? { minSerial: old.bundle.serial } : {}),
    });
    if (r.status !== 'valid')
      throw new UserError('bundle', `Cannot use the new organisation bundle of "${profile.domain}": ${r.status}: ${r.message}`);
    writeFileAtomic(join(profile.dir, PROFILE_FILES.orgBundle), text, 0o644);
    return r.bundle;
  });
}
