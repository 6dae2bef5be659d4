/**
 * The signed organisation bundle (docs/protocol.md, "Key exchange between domains"):
 * everything a peer needs to send encrypted mail to an organisation and to
 * verify its seals, signed by a key the organisation CA certifies for exactly
 * that purpose (bundle-signing key purpose), verifiable up to an SSMAX root.
 *
 * Wire form (docs/pki.md): a JSON object `{ "payload": {…}, "signature": {…} }`.
 * The signature is ECDSA P-256/SHA-256 (64-byte r‖s, base64url) over
 *   UTF-8("ssmax-bundle-v1") ‖ 0x00 ‖ UTF-8(canonicalJson(payload))
 * where canonicalJson sorts object keys by UTF-16 code units, writes no
 * whitespace, and allows only strings, safe integers, booleans, arrays, objects.
 * The signer's certificate is inside the payload, hence covered by the signature.
 *
 * Guarantees: `verifyBundle` never throws; it returns a closed union. A bundle
 * is `valid` only if the org CA chains to a given root, the signer is certified
 * by that org CA for bundle signing and for the bundle's domain, the signature
 * verifies, the domain is the one asked for, the time is inside issued..expires,
 * the serial is not older than the caller's last one, and every certificate
 * inside is consistent with its entry.
 */
import { type KeyObject, randomUUID } from 'node:crypto';
import { P256_SIGNATURE_LENGTH, p256PublicKeyFrom, signP256, verifyP256 } from '../crypto/ecdsa';
import { type CertificateInput, type ParsedCertificate, constrainedDomains, parseCertificate } from './certificate';
import { type ParsedCrl, parseCrl } from './crl';
import { checkDomain } from './issue';
import { compressedPointFromSpki } from './keys';
import { type ValidationCache, type ValidationResult, validateCertificate } from './validate';

export const BUNDLE_FORMAT = 'ssmax-bundle/1';
/** Domain separation of the bundle signature. */
export const BUNDLE_SIGNATURE_CONTEXT = 'ssmax-bundle-v1';
/** Bundles larger than this are refused unread. */
export const MAX_BUNDLE_BYTES = 1024 * 1024;
/**
 * The most entries of each list a bundle may carry (more is `malformed`, refused before any of them is parsed):
 * every one is parsed, and a bundle comes from whoever a DNS record names.
 */
export const BUNDLE_LIMITS = { orgCaChain: 8, encryptionKeys: 64, sealingCertificates: 32, crls: 16 } as const;

export type KeyState = 'current' | 'next' | 'retired';
const KEY_STATES: readonly KeyState[] = ['current', 'next', 'retired'];

/** What the organisation asks of mail sent to it. */
export interface InboundPolicy {
  /** `required`: refuse plaintext from SSMAX peers; `opportunistic`: encrypt when possible. */
  readonly encryption: 'required' | 'opportunistic';
  /** `required`: the sender's gateway must seal (authentication chain). */
  readonly seal: 'required' | 'optional';
  /** Largest message accepted, in bytes. */
  readonly maxMessageBytes: number;
}

export interface BundleKeyEntry {
  readonly version: number;
  readonly state: KeyState;
  readonly notBefore: string;
  readonly notAfter: string;
  /** PEM. */
  readonly certificate: string;
}

/** The signed part, exactly as it travels. Times are RFC 3339 UTC with seconds: `2026-06-01T12:00:00Z`. */
export interface BundlePayload {
  readonly format: typeof BUNDLE_FORMAT;
  /** Changes with every publication; caches key on it. */
  readonly id: string;
  readonly domain: string;
  /** Increases with every publication, so a replayed older bundle is detected. */
  readonly serial: number;
  readonly issued: string;
  readonly expires: string;
  /** PEM, organisation CA first, then any further intermediates (never the root). */
  readonly orgCaChain: readonly string[];
  readonly encryptionKeys: readonly BundleKeyEntry[];
  readonly sealingCertificates: readonly string[];
  /** PEM CRLs: the org CA's, and the root's as a convenience (CRLs are self-authenticating). */
  readonly crls: readonly string[];
  /** `mailto:` URI for abuse reports (ARF, RFC 5965). */
  readonly abuseContact: string;
  readonly inboundPolicy: InboundPolicy;
  /** PEM of the bundle-signer certificate. */
  readonly signer: string;
}

export interface SignedBundle {
  readonly payload: BundlePayload;
  readonly signature: { readonly alg: 'ES256'; readonly value: string };
}

// ---------------------------------------------------------------------------
// Canonical form

/** Deterministic JSON: sorted keys, no whitespace, integers only. Throws on anything else. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`Cannot canonicalise number "${value}": only safe integers are allowed`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new TypeError(`Cannot canonicalise a value of type ${typeof value}`);
}

/** The exact bytes the bundle signature covers. */
export function bundleSigningBytes(payload: BundlePayload): Uint8Array {
  return new Uint8Array(
    Buffer.concat([Buffer.from(BUNDLE_SIGNATURE_CONTEXT, 'utf8'), Buffer.from([0]), Buffer.from(canonicalJson(payload), 'utf8')]),
  );
}

export function bundleTime(d: Date): string {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new TypeError('Cannot write bundle time: not a valid Date');
  return `${d.toISOString().slice(0, 19)}Z`;
}

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

function parseTime(s: string): Date | undefined {
  if (!TIME_RE.test(s)) return undefined;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) || bundleTime(d) !== s ? undefined : d;
}

// ---------------------------------------------------------------------------
// Creation

export interface BundleInput {
  readonly domain: string;
  readonly serial: number;
  /** Defaults to a random UUID. */
  readonly id?: string;
  readonly issued: Date;
  readonly expires: Date;
  readonly orgCaChain: readonly CertificateInput[];
  readonly encryptionKeys: readonly { readonly state: KeyState; readonly certificate: CertificateInput }[];
  readonly sealingCertificates: readonly CertificateInput[];
  readonly crls: readonly (Uint8Array | string | ParsedCrl)[];
  readonly abuseContact: string;
  readonly inboundPolicy: InboundPolicy;
}

export interface BundleSigner {
  readonly certificate: CertificateInput;
  readonly privateKey: KeyObject;
}

/** Builds and signs a bundle; returns its JSON text. Throws on inconsistent input (the issuer's mistake). */
export function createBundle(input: BundleInput, signer: BundleSigner): string {
  const domain = checkDomain(input.domain);
  if (!Number.isSafeInteger(input.serial) || input.serial < 0)
    throw new Error(`Cannot create bundle: serial "${input.serial}" is not a non-negative integer`);
  if (input.expires.getTime() <= input.issued.getTime()) throw new Error('Cannot create bundle: expires is not after issued');
  if (input.orgCaChain.length === 0) throw new Error('Cannot create bundle: the organisation CA chain is empty');
  for (const [list, max] of Object.entries(BUNDLE_LIMITS))
    if (input[list as keyof typeof BUNDLE_LIMITS].length > max)
      throw new Error(`Cannot create bundle: ${input[list as keyof typeof BUNDLE_LIMITS].length} ${list} is more than ${max}`);
  if (!/^mailto:[^@\s]+@[^@\s]+$/.test(input.abuseContact))
    throw new Error(`Cannot create bundle: abuse contact "${input.abuseContact}" is not a mailto: address`);
  const problem = inboundPolicyProblem(input.inboundPolicy);
  if (problem) throw new Error(`Cannot create bundle: ${problem}`);
  const payload: BundlePayload = {
    format: BUNDLE_FORMAT,
    id: input.id ?? randomUUID(),
    domain,
    serial: input.serial,
    issued: bundleTime(input.issued),
    expires: bundleTime(input.expires),
    orgCaChain: input.orgCaChain.map((c) => parseCertificate(c).pem),
    encryptionKeys: input.encryptionKeys.map((k) => {
      const cert = parseCertificate(k.certificate);
      if (cert.keyVersion === undefined) throw new Error(`Cannot create bundle: certificate "${cert.subject}" carries no key version`);
      if (!KEY_STATES.includes(k.state)) throw new Error(`Cannot create bundle: unknown key state "${String(k.state)}"`);
      return {
        version: cert.keyVersion,
        state: k.state,
        notBefore: bundleTime(cert.notBefore),
        notAfter: bundleTime(cert.notAfter),
        certificate: cert.pem,
      };
    }),
    sealingCertificates: input.sealingCertificates.map((c) => parseCertificate(c).pem),
    crls: input.crls.map((c) => parseCrl(c).pem),
    abuseContact: input.abuseContact,
    inboundPolicy: {
      encryption: input.inboundPolicy.encryption,
      seal: input.inboundPolicy.seal,
      maxMessageBytes: input.inboundPolicy.maxMessageBytes,
    },
    signer: parseCertificate(signer.certificate).pem,
  };
  const signature = signP256(signer.privateKey, bundleSigningBytes(payload));
  const bundle: SignedBundle = { payload, signature: { alg: 'ES256', value: Buffer.from(signature).toString('base64url') } };
  return `${JSON.stringify(bundle, null, 2)}\n`;
}

function inboundPolicyProblem(p: unknown): string | undefined {
  if (!isObject(p)) return 'inbound policy is not an object';
  if (!exactKeys(p, ['encryption', 'seal', 'maxMessageBytes'])) return 'inbound policy must have exactly encryption, seal, maxMessageBytes';
  if (p.encryption !== 'required' && p.encryption !== 'opportunistic')
    return `inbound policy encryption "${String(p.encryption)}" is not required or opportunistic`;
  if (p.seal !== 'required' && p.seal !== 'optional') return `inbound policy seal "${String(p.seal)}" is not required or optional`;
  if (typeof p.maxMessageBytes !== 'number' || !Number.isSafeInteger(p.maxMessageBytes) || p.maxMessageBytes <= 0)
    return 'inbound policy maxMessageBytes is not a positive integer';
  return undefined;
}

// ---------------------------------------------------------------------------
// Verification

export interface VerifiedKey {
  readonly version: number;
  readonly state: KeyState;
  readonly certificate: ParsedCertificate;
  /** The 33-byte compressed secp256k1 point, as the crypto core uses it. */
  readonly publicKey: Uint8Array;
  readonly validation: ValidationResult;
}

export interface VerifiedBundle {
  readonly id: string;
  readonly domain: string;
  readonly serial: number;
  readonly issued: Date;
  readonly expires: Date;
  readonly orgCa: ParsedCertificate;
  readonly signer: ParsedCertificate;
  readonly encryptionKeys: readonly VerifiedKey[];
  /** The highest-version `current` key that is valid now: the one new mail uses. */
  readonly currentKey: VerifiedKey;
  readonly sealingCertificates: readonly ParsedCertificate[];
  readonly crls: readonly ParsedCrl[];
  readonly abuseContact: string;
  readonly inboundPolicy: InboundPolicy;
  readonly payload: BundlePayload;
}

interface Msg {
  readonly message: string;
}

export type BundleResult =
  | (Msg & { readonly status: 'valid'; readonly bundle: VerifiedBundle })
  | (Msg & { readonly status: 'malformed' })
  | (Msg & { readonly status: 'untrusted'; readonly cause?: ValidationResult })
  | (Msg & { readonly status: 'signer-not-certified'; readonly cause?: ValidationResult })
  | (Msg & { readonly status: 'bad-signature' })
  | (Msg & { readonly status: 'wrong-domain'; readonly domain: string })
  | (Msg & { readonly status: 'expired'; readonly expires: Date })
  | (Msg & { readonly status: 'not-yet-valid'; readonly issued: Date })
  | (Msg & { readonly status: 'replayed'; readonly serial: number })
  | (Msg & { readonly status: 'invalid-content' });

export type BundleStatus = BundleResult['status'];

export interface VerifyBundleOptions {
  /** The domain the caller looked up; the bundle must be for it. */
  readonly domain: string;
  /** Trusted SSMAX roots. */
  readonly roots: readonly CertificateInput[];
  /**
   * CRLs obtained elsewhere (e.g. the root's, fetched from the SSMAX root); added to the bundle's own. A function
   * is given the bundle's own (parsed) and answers the whole set to validate with (KnownCrls: the local CRLs and
   * the newest remembered ones beside the bundle's); it must not throw.
   */
  readonly crls?:
    readonly (Uint8Array | string | ParsedCrl)[] | ((carried: readonly ParsedCrl[]) => readonly (Uint8Array | string | ParsedCrl)[]);
  readonly time: Date;
  /** The serial of the last bundle accepted for this domain: an older serial is a replay. */
  readonly minSerial?: number;
  readonly cache?: ValidationCache;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function exactKeys(o: Record<string, unknown>, keys: readonly string[]): boolean {
  const got = Object.keys(o).sort();
  const want = [...keys].sort();
  return got.length === want.length && got.every((k, i) => k === want[i]);
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

const PAYLOAD_KEYS = [
  'format',
  'id',
  'domain',
  'serial',
  'issued',
  'expires',
  'orgCaChain',
  'encryptionKeys',
  'sealingCertificates',
  'crls',
  'abuseContact',
  'inboundPolicy',
  'signer',
];
const KEY_ENTRY_KEYS = ['version', 'state', 'notBefore', 'notAfter', 'certificate'];

/** Structural check of the parsed JSON; returns the problem, or undefined. */
function shapeProblem(doc: unknown): string | undefined {
  if (!isObject(doc) || !exactKeys(doc, ['payload', 'signature']))
    return 'the document must be an object with exactly "payload" and "signature"';
  const sig = doc.signature;
  if (
    !isObject(sig) ||
    !exactKeys(sig, ['alg', 'value']) ||
    sig.alg !== 'ES256' ||
    !isString(sig.value) ||
    !/^[A-Za-z0-9_-]+$/.test(sig.value)
  )
    return 'the signature must be {"alg":"ES256","value":<base64url>}';
  const p = doc.payload;
  if (!isObject(p) || !exactKeys(p, PAYLOAD_KEYS)) return `the payload must have exactly the fields ${PAYLOAD_KEYS.join(', ')}`;
  if (p.format !== BUNDLE_FORMAT) return `unknown format "${String(p.format)}"`;
  if (!isString(p.id) || !/^[A-Za-z0-9._-]{8,128}$/.test(p.id)) return 'the id must be 8-128 letters, digits, ".", "_" or "-"';
  if (!isString(p.domain)) return 'the domain must be a string';
  if (typeof p.serial !== 'number' || !Number.isSafeInteger(p.serial) || p.serial < 0) return 'the serial must be a non-negative integer';
  if (!isString(p.issued) || !parseTime(p.issued)) return `issued "${String(p.issued)}" is not a time like 2026-06-01T12:00:00Z`;
  if (!isString(p.expires) || !parseTime(p.expires)) return `expires "${String(p.expires)}" is not a time like 2026-06-01T12:00:00Z`;
  if (!isStringArray(p.orgCaChain) || p.orgCaChain.length === 0) return 'orgCaChain must be a non-empty array of PEM strings';
  if (!isStringArray(p.sealingCertificates)) return 'sealingCertificates must be an array of PEM strings';
  if (!isStringArray(p.crls)) return 'crls must be an array of PEM strings';
  if (!isString(p.signer)) return 'signer must be a PEM string';
  if (!isString(p.abuseContact) || !/^mailto:[^@\s]+@[^@\s]+$/.test(p.abuseContact)) return 'abuseContact must be a mailto: address';
  const policy = inboundPolicyProblem(p.inboundPolicy);
  if (policy) return policy;
  if (!Array.isArray(p.encryptionKeys) || p.encryptionKeys.length === 0) return 'encryptionKeys must be a non-empty array';
  for (const [list, max] of Object.entries(BUNDLE_LIMITS)) {
    const n = (p[list] as unknown[]).length;
    if (n > max) return `${list} holds ${n} entries, more than ${max}`;
  }
  for (const k of p.encryptionKeys) {
    if (!isObject(k) || !exactKeys(k, KEY_ENTRY_KEYS)) return `each encryption key entry must have exactly ${KEY_ENTRY_KEYS.join(', ')}`;
    if (typeof k.version !== 'number' || !Number.isSafeInteger(k.version) || k.version < 1)
      return 'an encryption key version is not a positive integer';
    if (!KEY_STATES.includes(k.state as KeyState)) return `unknown key state "${String(k.state)}"`;
    if (!isString(k.notBefore) || !parseTime(k.notBefore) || !isString(k.notAfter) || !parseTime(k.notAfter) || !isString(k.certificate))
      return 'an encryption key entry has a bad time or certificate';
  }
  return undefined;
}

/** Verifies a bundle's JSON text (or bytes). Never throws. */
export function verifyBundle(text: string | Uint8Array, opts: VerifyBundleOptions): BundleResult {
  try {
    return verifyBundleUnsafe(text, opts);
  } catch (err) {
    // Only reachable through a bug or absurd input (e.g. a getter that throws); still a result.
    return { status: 'malformed', message: `Cannot verify bundle: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function verifyBundleUnsafe(text: string | Uint8Array, opts: VerifyBundleOptions): BundleResult {
  const malformed = (why: string): BundleResult => ({ status: 'malformed', message: `Cannot read bundle: ${why}` });
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text instanceof Uint8Array ? text.length : -1;
  if (size < 0) return malformed('expected JSON text or bytes');
  if (size > MAX_BUNDLE_BYTES) return malformed(`${size} bytes is more than ${MAX_BUNDLE_BYTES}`);
  if (!(opts?.time instanceof Date) || Number.isNaN(opts.time.getTime())) return malformed('the verification time is not a valid Date');
  let doc: unknown;
  try {
    doc = JSON.parse(typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch {
    return malformed('not JSON (UTF-8)');
  }
  const shape = shapeProblem(doc);
  if (shape) return malformed(shape);
  const { payload, signature } = doc as SignedBundle;

  // 0. The organisation CA chains to a trusted root (signatures, validity, name constraints; revocation
  // comes at step 1, with the CRLs). Nothing else of the bundle is parsed before, and nothing of this is
  // cached: a bundle anyone can publish costs a few certificates' parsing until it proves itself.
  let unverifiedChain: ParsedCertificate[];
  try {
    unverifiedChain = payload.orgCaChain.map((c) => parseCertificate(c));
  } catch (err) {
    return malformed(err instanceof Error ? err.message : String(err));
  }
  const anchor = validateCertificate({
    leaf: unverifiedChain[0] as ParsedCertificate,
    intermediates: unverifiedChain.slice(1),
    roots: opts.roots,
    time: opts.time,
    use: 'any',
    revocation: 'skip',
  });
  if (anchor.status !== 'valid')
    return { status: 'untrusted', cause: anchor, message: `Bundle for "${payload.domain}" is untrusted: ${anchor.message}` };

  let chain: ParsedCertificate[];
  let signer: ParsedCertificate;
  let keyCerts: ParsedCertificate[];
  let seals: ParsedCertificate[];
  let crls: ParsedCrl[];
  try {
    const cert = (i: CertificateInput) => (opts.cache ? opts.cache.certificate(i) : parseCertificate(i));
    const crl = (i: Uint8Array | string | ParsedCrl) => (opts.cache ? opts.cache.crl(i) : parseCrl(i));
    chain = payload.orgCaChain.map(cert);
    signer = cert(payload.signer);
    keyCerts = payload.encryptionKeys.map((k) => cert(k.certificate));
    seals = payload.sealingCertificates.map(cert);
    const carried = payload.crls.map(crl);
    crls = typeof opts.crls === 'function' ? opts.crls(carried).map(crl) : [...carried, ...(opts.crls ?? []).map(crl)];
  } catch (err) {
    return malformed(err instanceof Error ? err.message : String(err));
  }
  const orgCa = chain[0] as ParsedCertificate;
  const common = { intermediates: chain, roots: opts.roots, crls, time: opts.time, ...(opts.cache ? { cache: opts.cache } : {}) };

  // 1. The organisation CA is certified by a trusted root.
  const caResult = validateCertificate({ ...common, leaf: orgCa, intermediates: chain.slice(1), use: 'any' });
  if (caResult.status !== 'valid')
    return { status: 'untrusted', cause: caResult, message: `Bundle for "${payload.domain}" is untrusted: ${caResult.message}` };
  if (!orgCa.isCA) return { status: 'untrusted', message: `Bundle for "${payload.domain}" is untrusted: "${orgCa.subject}" is not a CA` };

  // 2. The signer is certified by this org CA, for bundle signing, for this domain.
  const signerResult = validateCertificate({ ...common, leaf: signer, use: 'bundle-signing' });
  if (signerResult.status !== 'valid')
    return { status: 'signer-not-certified', cause: signerResult, message: `Bundle signer is not certified: ${signerResult.message}` };
  if (signerResult.path[1]?.fingerprint !== orgCa.fingerprint)
    return {
      status: 'signer-not-certified',
      message: `Bundle signer "${signer.subject}" is not certified by the bundle's organisation CA "${orgCa.subject}"`,
    };
  if (!signer.dnsNames.some((d) => d.toLowerCase() === payload.domain.toLowerCase()))
    return { status: 'signer-not-certified', message: `Bundle signer "${signer.subject}" is not certified for "${payload.domain}"` };

  // 3. The signature.
  const sig = Buffer.from(signature.value, 'base64url');
  if (
    sig.length !== P256_SIGNATURE_LENGTH ||
    !verifyP256(p256PublicKeyFrom(signer.spki), bundleSigningBytes(payload), new Uint8Array(sig))
  ) {
    return { status: 'bad-signature', message: `Bundle for "${payload.domain}" has a signature that does not verify` };
  }

  // 4. The domain asked for, within the org CA's constraints.
  let wanted: string;
  try {
    wanted = checkDomain(opts.domain);
  } catch {
    return malformed(`the domain asked for "${String(opts.domain)}" is not a domain name`);
  }
  if (payload.domain !== wanted)
    return { status: 'wrong-domain', domain: payload.domain, message: `Bundle is for "${payload.domain}", not "${wanted}"` };
  if (!constrainedDomains(orgCa).includes(wanted))
    return {
      status: 'wrong-domain',
      domain: payload.domain,
      message: `Organisation CA "${orgCa.subject}" is not constrained to "${wanted}"`,
    };

  // 5. Time and replay.
  const issued = parseTime(payload.issued) as Date;
  const expires = parseTime(payload.expires) as Date;
  if (opts.time.getTime() < issued.getTime())
    return { status: 'not-yet-valid', issued, message: `Bundle for "${wanted}" is not valid before ${payload.issued}` };
  if (opts.time.getTime() > expires.getTime())
    return { status: 'expired', expires, message: `Bundle for "${wanted}" expired at ${payload.expires}` };
  if (opts.minSerial !== undefined && payload.serial < opts.minSerial)
    return {
      status: 'replayed',
      serial: payload.serial,
      message: `Bundle for "${wanted}" has serial ${payload.serial}, older than ${opts.minSerial} already seen`,
    };

  // 6. Content.
  const invalid = (why: string): BundleResult => ({ status: 'invalid-content', message: `Bundle for "${wanted}" is inconsistent: ${why}` });
  const keys: VerifiedKey[] = [];
  const versions = new Set<number>();
  for (const [i, entry] of payload.encryptionKeys.entries()) {
    const cert = keyCerts[i] as ParsedCertificate;
    if (versions.has(entry.version)) return invalid(`key version ${entry.version} appears twice`);
    versions.add(entry.version);
    if (cert.keyVersion !== entry.version)
      return invalid(`key entry version ${entry.version} holds a certificate of version ${String(cert.keyVersion)}`);
    if (!cert.dnsNames.includes(wanted)) return invalid(`key version ${entry.version} is not certified for "${wanted}"`);
    if (bundleTime(cert.notBefore) !== entry.notBefore || bundleTime(cert.notAfter) !== entry.notAfter)
      return invalid(`key version ${entry.version} states a validity its certificate does not have`);
    const validation = validateCertificate({ ...common, leaf: cert, use: 'org-encryption' });
    const structural = ['malformed', 'untrusted', 'outside-name-constraints', 'wrong-usage', 'revocation-unknown'];
    if (structural.includes(validation.status)) return invalid(`key version ${entry.version}: ${validation.message}`);
    if (validation.status === 'valid' && validation.path[1]?.fingerprint !== orgCa.fingerprint)
      return invalid(`key version ${entry.version} is not certified by the bundle's organisation CA`);
    keys.push({ version: entry.version, state: entry.state, certificate: cert, publicKey: compressedPointFromSpki(cert.spki), validation });
  }
  const usable = keys.filter((k) => k.state === 'current' && k.validation.status === 'valid').sort((a, b) => b.version - a.version);
  const currentKey = usable[0];
  if (!currentKey) return invalid('no current encryption key is valid now');
  for (const seal of seals) {
    const r = validateCertificate({ ...common, leaf: seal, use: 'seal' });
    if (r.status !== 'valid') return invalid(`sealing certificate: ${r.message}`);
    if (r.path[1]?.fingerprint !== orgCa.fingerprint)
      return invalid(`sealing certificate "${seal.subject}" is not certified by the bundle's organisation CA`);
  }
  const bundle: VerifiedBundle = {
    id: payload.id,
    domain: wanted,
    serial: payload.serial,
    issued,
    expires,
    orgCa,
    signer,
    encryptionKeys: keys,
    currentKey,
    sealingCertificates: seals,
    crls,
    abuseContact: payload.abuseContact,
    inboundPolicy: payload.inboundPolicy,
    payload,
  };
  return {
    status: 'valid',
    bundle,
    message: `Bundle ${payload.id} (serial ${payload.serial}) for "${wanted}" is valid; current key version ${currentKey.version}`,
  };
}
