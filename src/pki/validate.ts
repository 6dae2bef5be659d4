/**
 * The one certificate validation of the project (RFC 5280 §6, restricted to
 * the SSMAX profile). Every caller — bundle verification, the directory client,
 * the key service's mutual TLS, seal verification — asks the same question:
 * "is this leaf, for this use, at this time, certified by one of these roots?"
 *
 * Guarantees:
 * - never throws on bad input: the answer is a closed union (`ValidationResult`);
 * - the chain may be given in any order and with extra certificates: the path is
 *   built from the leaf up (the leaf is never confused with an intermediate,
 *   pkijs's engine validates whichever certificate is given last);
 * - every CA certificate that issued a certificate of the path must have a
 *   current CRL signed by it (`revocation: 'require'`, the default), as OpenSSL's
 *   `verify -crl_check_all` demands;
 * - validation at a past time (a seal's time, an abuse report on an old
 *   message) follows RFC 5280 §3.3 and §5.3.2: a CRL issued after that time is
 *   evidence for it — the certificate was revoked at that time only if an
 *   entry's revocation date is not after it — so a certificate valid when it
 *   was used still validates after any number of CRL re-issues; a CRL issued
 *   before the time must still be current at it. A revocation for key
 *   compromise (keyCompromise, cACompromise) counts whatever its date: the
 *   time of a signature is claimed by the signer, and whoever holds a
 *   compromised key can date a signature before the revocation;
 * - the time is a parameter; no clock is read here.
 *
 * Order of checks along a path, first failure wins: structure (malformed),
 * signatures and CA flags (untrusted), validity periods (expired /
 * not-yet-valid), name constraints, revocation, and the intended use of the leaf.
 */
import { type KeyObject, createHash, createPublicKey, verify } from 'node:crypto';
import {
  type CertificateInput,
  type KeyUsageBit,
  MalformedCertificateError,
  type ParsedCertificate,
  bytesEqual,
  parseCertificate,
  roleOf,
} from './certificate';
import { type CrlInput, type ParsedCrl, type RevocationReason, crlIssuedBy, parseCrl } from './crl';
import { isP256Spki, type KeyAlgorithm, publicKeyIsValid } from './keys';
import { firstNameOutside } from './name-constraints';
import { EKU, OID, type Role } from './oids';

export type IntendedUse =
  'any' | 'org-encryption' | 'user-encryption' | 'user-signing' | 'seal' | 'bundle-signing' | 'tls-server' | 'tls-client';

export const INTENDED_USES: readonly IntendedUse[] = [
  'any',
  'org-encryption',
  'user-encryption',
  'user-signing',
  'seal',
  'bundle-signing',
  'tls-server',
  'tls-client',
];

export interface ValidationRequest {
  readonly leaf: CertificateInput;
  /** Candidate intermediates, any order; extra or irrelevant certificates are ignored. */
  readonly intermediates?: readonly CertificateInput[];
  /** Trust anchors (SSMAX roots). */
  readonly roots: readonly CertificateInput[];
  readonly crls?: readonly CrlInput[];
  /** What the leaf is about to be used for. `any` checks the chain only. */
  readonly use: IntendedUse;
  readonly time: Date;
  /** For tls-server / tls-client: the leaf's role must be one of these. */
  readonly roles?: readonly Role[];
  /** `require` (default): a current CRL from every issuing CA. `skip`: no revocation check. */
  readonly revocation?: 'require' | 'skip';
  /** Memoises parsing and signature checks across calls. */
  readonly cache?: ValidationCache;
}

interface Base {
  /** One human line, e.g. for logs and Authentication-Results comments. */
  readonly message: string;
}

export type ValidationResult =
  | (Base & {
      readonly status: 'valid';
      readonly path: readonly ParsedCertificate[];
      readonly leaf: ParsedCertificate;
      readonly role: Role | undefined;
    })
  | (Base & { readonly status: 'expired'; readonly certificate: ParsedCertificate; readonly notAfter: Date })
  | (Base & { readonly status: 'not-yet-valid'; readonly certificate: ParsedCertificate; readonly notBefore: Date })
  | (Base & {
      readonly status: 'revoked';
      readonly certificate: ParsedCertificate;
      readonly reason: RevocationReason;
      readonly revokedAt: Date;
    })
  | (Base & { readonly status: 'revocation-unknown'; readonly certificate: ParsedCertificate })
  | (Base & { readonly status: 'wrong-usage'; readonly certificate: ParsedCertificate; readonly use: IntendedUse })
  | (Base & {
      readonly status: 'outside-name-constraints';
      readonly certificate: ParsedCertificate;
      readonly name: string;
      readonly constrainedBy: ParsedCertificate;
    })
  | (Base & { readonly status: 'untrusted' })
  | (Base & { readonly status: 'malformed' });

export type ValidationStatus = ValidationResult['status'];

const MAX_PATH = 8;
/** Bounds on attacker-supplied chains (a TLS peer chooses its intermediates). */
const MAX_INTERMEDIATES = 32;
const MAX_SIGNATURE_CHECKS = 64;

/**
 * Memo of the time-independent work: parsing, public keys and signature checks,
 * keyed by SHA-256 of the exact bytes (never by the text itself: a CRL or
 * certificate may be up to a megabyte, chosen by whoever publishes it).
 * Bounded twice, least recently used dropped first: at most `maxEntries` per
 * kind, and at most `maxBytes` in all, each parsed certificate or CRL counted
 * at an estimate of the memory it holds (its encoding three times over, plus
 * its revocation entries); one larger than a quarter of `maxBytes` is parsed
 * but not kept. Time, revocation and usage are always evaluated afresh, so a
 * cached answer is never stale.
 */
export class ValidationCache {
  private readonly certs = new Map<string, Sized<ParsedCertificate>>();
  private readonly crls = new Map<string, Sized<ParsedCrl>>();
  private readonly keys = new Map<string, Sized<KeyObject>>();
  private readonly sigs = new Map<string, Sized<boolean>>();
  private total = 0;
  hits = 0;
  misses = 0;

  constructor(
    readonly maxEntries = 10_000,
    readonly maxBytes = VALIDATION_CACHE_BYTES,
  ) {}

  /** The estimated bytes held now (at most maxBytes). */
  get bytes(): number {
    return this.total;
  }

  /** The entries held now, of all kinds. */
  get size(): number {
    return this.certs.size + this.crls.size + this.keys.size + this.sigs.size;
  }

  private lookup<V>(map: Map<string, Sized<V>>, key: string, make: () => V, weigh: (v: V) => number): V {
    const hit = map.get(key);
    if (hit !== undefined) {
      this.hits++;
      // most recently used last: the map's order is the eviction order
      map.delete(key);
      map.set(key, hit);
      return hit.value;
    }
    this.misses++;
    const value = make();
    const bytes = weigh(value);
    if (bytes > this.maxBytes / 4) return value;
    map.set(key, { value, bytes });
    this.total += bytes;
    this.evict(map);
    return value;
  }

  private evict<V>(map: Map<string, Sized<V>>): void {
    const drop = <W>(m: Map<string, Sized<W>>, k: string) => {
      this.total -= (m.get(k) as Sized<W>).bytes;
      m.delete(k);
    };
    while (map.size > this.maxEntries) drop(map, map.keys().next().value as string);
    for (const m of [map, this.crls, this.certs, this.keys, this.sigs] as Map<string, Sized<unknown>>[])
      while (this.total > this.maxBytes && m.size > 0) drop(m, m.keys().next().value as string);
  }

  certificate(input: CertificateInput): ParsedCertificate {
    if (typeof input !== 'string' && !(input instanceof Uint8Array)) return parseCertificate(input);
    return this.lookup(
      this.certs,
      inputKey(input),
      () => parseCertificate(input),
      (c) => ENTRY_BYTES + 3 * c.der.length,
    );
  }

  crl(input: CrlInput): ParsedCrl {
    if (typeof input !== 'string' && !(input instanceof Uint8Array)) return parseCrl(input);
    return this.lookup(
      this.crls,
      inputKey(input),
      () => parseCrl(input),
      (c) => ENTRY_BYTES + 3 * c.der.length + CRL_ENTRY_BYTES * c.entries.size,
    );
  }

  publicKey(cert: ParsedCertificate): KeyObject {
    return this.lookup(
      this.keys,
      cert.fingerprint,
      () => publicKeyOf(cert),
      () => ENTRY_BYTES,
    );
  }

  signature(key: string, check: () => boolean): boolean {
    return this.lookup(this.sigs, key, check, () => ENTRY_BYTES);
  }

  clear(): void {
    this.certs.clear();
    this.crls.clear();
    this.keys.clear();
    this.sigs.clear();
    this.total = 0;
  }
}

/** The default byte bound of a ValidationCache (estimated memory of what it keeps). */
const VALIDATION_CACHE_BYTES = 32 * 1024 * 1024;
/** Estimates: the bookkeeping of one cached entry, and the memory of one parsed revocation entry. */
const ENTRY_BYTES = 512;
const CRL_ENTRY_BYTES = 250;

interface Sized<V> {
  readonly value: V;
  readonly bytes: number;
}

/** SHA-256 of the exact input, its kind (PEM text or DER bytes) first. */
function inputKey(input: string | Uint8Array): string {
  const h = createHash('sha256');
  if (typeof input === 'string') h.update('p').update(input, 'utf8');
  else h.update('d').update(input);
  return h.digest('base64');
}

function publicKeyOf(cert: ParsedCertificate): KeyObject {
  return createPublicKey({ key: Buffer.from(cert.spki), format: 'der', type: 'spki' });
}

/** ECDSA P-256/SHA-256 over `tbs` by `issuer`'s key; false for anything else. */
function signatureValid(
  tbs: Uint8Array,
  alg: string,
  sig: Uint8Array,
  issuer: ParsedCertificate,
  cache: ValidationCache | undefined,
): boolean {
  if (alg !== OID.ecdsaWithSha256 || !isP256Spki(issuer.spki)) return false;
  try {
    const key = cache ? cache.publicKey(issuer) : publicKeyOf(issuer);
    return verify('sha256', tbs, { key, dsaEncoding: 'der' }, sig);
  } catch {
    return false;
  }
}

function certSignedBy(child: ParsedCertificate, issuer: ParsedCertificate, cache: ValidationCache | undefined): boolean {
  const check = () => signatureValid(child.tbs, child.signatureAlgorithm, child.signature, issuer, cache);
  return cache ? cache.signature(`c${child.fingerprint}:${issuer.fingerprint}`, check) : check();
}

/** True when `crl` names `issuer` (subject and, when both carry one, key identifier) and its signature verifies with `issuer`'s key. */
export function crlFromIssuer(crl: ParsedCrl, issuer: ParsedCertificate, cache?: ValidationCache): boolean {
  if (!crlIssuedBy(crl, issuer.subjectDer)) return false;
  if (crl.authorityKeyId && issuer.subjectKeyId && crl.authorityKeyId !== issuer.subjectKeyId) return false;
  return crlSignedBy(crl, issuer, cache);
}

function crlSignedBy(crl: ParsedCrl, issuer: ParsedCertificate, cache: ValidationCache | undefined): boolean {
  const check = () => signatureValid(crl.tbs, crl.signatureAlgorithm, crl.signature, issuer, cache);
  return cache ? cache.signature(`r${crl.fingerprint}:${issuer.fingerprint}`, check) : check();
}

function mayIssue(child: ParsedCertificate, candidate: ParsedCertificate): boolean {
  if (!bytesEqual(child.issuerDer, candidate.subjectDer)) return false;
  return !(child.authorityKeyId && candidate.subjectKeyId && child.authorityKeyId !== candidate.subjectKeyId);
}

interface PathSearch {
  readonly paths: ParsedCertificate[][];
  /** A certificate whose issuer was found by name but whose signature did not verify. */
  badSignature: ParsedCertificate | undefined;
}

/** All paths leaf → … → trusted root (depth-first, intermediates used at most once per path). */
function buildPaths(
  leaf: ParsedCertificate,
  pool: readonly ParsedCertificate[],
  roots: readonly ParsedCertificate[],
  cache: ValidationCache | undefined,
): PathSearch {
  const search: PathSearch = { paths: [], badSignature: undefined };
  if (roots.some((r) => r.fingerprint === leaf.fingerprint)) {
    search.paths.push([leaf]);
    return search;
  }
  let budget = MAX_SIGNATURE_CHECKS;
  const signedBy = (child: ParsedCertificate, issuer: ParsedCertificate): boolean => budget-- > 0 && certSignedBy(child, issuer, cache);
  const walk = (path: ParsedCertificate[]): void => {
    if (search.paths.length >= 4 || path.length > MAX_PATH || budget <= 0) return;
    const current = path[path.length - 1] as ParsedCertificate;
    for (const root of roots) {
      if (!mayIssue(current, root)) continue;
      if (signedBy(current, root)) search.paths.push([...path, root]);
      else search.badSignature ??= current;
    }
    for (const inter of pool) {
      if (path.some((p) => p.fingerprint === inter.fingerprint) || roots.some((r) => r.fingerprint === inter.fingerprint)) continue;
      if (!mayIssue(current, inter)) continue;
      if (signedBy(current, inter)) walk([...path, inter]);
      else search.badSignature ??= current;
    }
  };
  walk([leaf]);
  return search;
}

const quote = (c: ParsedCertificate) => `"${c.subject}"`;

interface UsageRule {
  readonly curve: KeyAlgorithm;
  /** At least one of these key usage bits. */
  readonly keyUsage: readonly KeyUsageBit[];
  /** All of these key purposes. */
  readonly purposes: readonly string[];
  readonly needsRole?: boolean;
  readonly needsEmail?: boolean;
  readonly needsKeyVersion?: boolean;
}

const USAGE: Record<Exclude<IntendedUse, 'any'>, UsageRule> = {
  'org-encryption': { curve: 'secp256k1', keyUsage: ['keyAgreement'], purposes: [EKU.orgEncryption], needsKeyVersion: true },
  'user-encryption': { curve: 'secp256k1', keyUsage: ['keyAgreement'], purposes: [EKU.userEncryption], needsEmail: true },
  'user-signing': { curve: 'p256', keyUsage: ['digitalSignature', 'nonRepudiation'], purposes: [EKU.userSigning], needsEmail: true },
  seal: { curve: 'p256', keyUsage: ['digitalSignature'], purposes: [EKU.seal] },
  'bundle-signing': { curve: 'p256', keyUsage: ['digitalSignature'], purposes: [EKU.bundleSigning] },
  'tls-server': { curve: 'p256', keyUsage: ['digitalSignature'], purposes: [EKU.serverAuth], needsRole: true },
  'tls-client': { curve: 'p256', keyUsage: ['digitalSignature'], purposes: [EKU.clientAuth], needsRole: true },
};

/** Why `leaf` may not serve `use`, or undefined if it may. */
export function usageProblem(leaf: ParsedCertificate, use: IntendedUse, roles?: readonly Role[]): string | undefined {
  if (use === 'any') return undefined;
  const rule = USAGE[use];
  if (!rule) return `unknown intended use "${String(use)}"`;
  if (leaf.isCA) return 'it is a CA certificate';
  if (leaf.keyAlgorithm !== rule.curve) return `its key is ${leaf.keyAlgorithm}, not ${rule.curve}`;
  if (!leaf.keyUsage || !rule.keyUsage.some((b) => leaf.keyUsage?.has(b))) return `its key usage lacks ${rule.keyUsage.join(' or ')}`;
  const missing = rule.purposes.filter((p) => !(leaf.extKeyUsage ?? []).includes(p));
  if (missing.length > 0) return `its extended key usage lacks ${missing.join(', ')}`;
  if (rule.needsEmail && leaf.emails.length === 0) return 'it names no mail address';
  if (rule.needsKeyVersion && leaf.keyVersion === undefined) return 'it carries no key version';
  if (rule.needsRole) {
    const role = roleOf(leaf);
    if (!role) return 'it carries no SSMAX role';
    if (roles && !roles.includes(role)) return `its role "${role}" is not one of ${roles.join(', ')}`;
  }
  return undefined;
}

function checkPath(
  path: readonly ParsedCertificate[],
  crls: readonly ParsedCrl[],
  req: ValidationRequest,
  cache: ValidationCache | undefined,
): ValidationResult {
  const time = req.time.getTime();
  const leaf = path[0] as ParsedCertificate;
  for (const c of path) {
    if (c.unknownCriticalExtensions.length > 0) {
      return {
        status: 'malformed',
        message: `Certificate ${quote(c)} has an unsupported critical extension ${c.unknownCriticalExtensions.join(', ')}`,
      };
    }
  }
  for (let i = 1; i < path.length; i++) {
    const ca = path[i] as ParsedCertificate;
    if (!ca.isCA || (ca.keyUsage && !ca.keyUsage.has('keyCertSign'))) {
      return { status: 'untrusted', message: `Certificate ${quote(ca)} issued ${quote(path[i - 1] as ParsedCertificate)} but is not a CA` };
    }
    const below = path.slice(1, i).filter((c) => !c.selfIssued).length;
    if (ca.pathLen !== undefined && below > ca.pathLen) {
      return {
        status: 'untrusted',
        message: `Certificate ${quote(ca)} allows ${ca.pathLen} intermediate CA(s) below it, the path has ${below}`,
      };
    }
  }
  for (const c of path) {
    if (time > c.notAfter.getTime())
      return {
        status: 'expired',
        certificate: c,
        notAfter: c.notAfter,
        message: `Certificate ${quote(c)} expired at ${c.notAfter.toISOString()}`,
      };
    if (time < c.notBefore.getTime())
      return {
        status: 'not-yet-valid',
        certificate: c,
        notBefore: c.notBefore,
        message: `Certificate ${quote(c)} is not valid before ${c.notBefore.toISOString()}`,
      };
  }
  for (let i = 1; i < path.length; i++) {
    const ca = path[i] as ParsedCertificate;
    if (!ca.nameConstraints) continue;
    for (let j = 0; j < i; j++) {
      const sub = path[j] as ParsedCertificate;
      if (j > 0 && sub.selfIssued) continue; // RFC 5280 §6.1.3 (b): not for self-issued intermediates
      const bad = firstNameOutside(sub, ca.nameConstraints);
      if (bad) {
        return {
          status: 'outside-name-constraints',
          certificate: sub,
          name: bad.value,
          constrainedBy: ca,
          message: `Certificate ${quote(sub)} names "${bad.value}": outside the name constraints of ${quote(ca)}`,
        };
      }
    }
  }
  if ((req.revocation ?? 'require') === 'require') {
    for (let j = 0; j + 1 < path.length; j++) {
      const sub = path[j] as ParsedCertificate;
      const issuer = path[j + 1] as ParsedCertificate;
      const problem = revocationOf(sub, issuer, crls, time, cache);
      if (problem) return problem;
    }
  }
  if (req.use !== 'any' && !publicKeyIsValid(leaf.spki, leaf.keyAlgorithm)) {
    return { status: 'malformed', message: `Certificate ${quote(leaf)} has a public key that is not a valid ${leaf.keyAlgorithm} point` };
  }
  const usage = usageProblem(leaf, req.use, req.roles);
  if (usage)
    return {
      status: 'wrong-usage',
      certificate: leaf,
      use: req.use,
      message: `Certificate ${quote(leaf)} cannot be used for ${req.use}: ${usage}`,
    };
  const role = roleOf(leaf);
  return { status: 'valid', path, leaf, role, message: `Certificate ${quote(leaf)} is valid for ${req.use} (path of ${path.length})` };
}

/**
 * Why a certificate that failed validation is refused for good, in words that name no certificate (they may reach
 * a sender): a CA of its path (the organisation's CA, or the root) revoked — not merely on hold: certificateHold,
 * removeFromCRL — or expired, a decision no retry changes. Undefined for a failure that may pass later (revocation
 * unknown, a CRL expired, not yet valid, no path found, malformed), and for a revoked or expired end-entity
 * certificate (a peer's key certificate): its organisation replaces it, and a fresh bundle has the new one.
 */
export function finalRefusal(v: ValidationResult): string | undefined {
  if (v.status === 'revoked' && v.certificate.isCA && v.reason !== 'certificateHold' && v.reason !== 'removeFromCRL')
    return `revoked (${v.reason}, at ${v.revokedAt.toISOString()})`;
  if (v.status === 'expired' && v.certificate.isCA) return `expired (at ${v.notAfter.toISOString()})`;
  return undefined;
}

/**
 * Why a refusal is a passing state rather than the certificate's own (words for the operator's log), or undefined:
 * its revocation state cannot be known now (a CRL past its nextUpdate, ours or the issuer's), it is not valid yet
 * (clocks apart, a certificate issued a moment ago), or it is on hold. Mail that depends on it is deferred, not refused.
 */
export function passingRefusal(v: ValidationResult): string | undefined {
  if (v.status === 'revocation-unknown') return 'its revocation state cannot be known now';
  if (v.status === 'not-yet-valid') return `it is not valid before ${v.notBefore.toISOString()}`;
  if (v.status === 'revoked' && v.reason === 'certificateHold') return 'it is on hold';
  return undefined;
}

const COMPROMISE: ReadonlySet<RevocationReason> = new Set(['keyCompromise', 'cACompromise']);

function revocationOf(
  sub: ParsedCertificate,
  issuer: ParsedCertificate,
  crls: readonly ParsedCrl[],
  time: number,
  cache: ValidationCache | undefined,
): ValidationResult | undefined {
  let best: ParsedCrl | undefined;
  let why = `no CRL from ${quote(issuer)}`;
  if (issuer.keyUsage && !issuer.keyUsage.has('cRLSign')) {
    return {
      status: 'revocation-unknown',
      certificate: sub,
      message: `Cannot check revocation of ${quote(sub)}: its issuer may not sign CRLs`,
    };
  }
  for (const crl of crls) {
    if (!crlIssuedBy(crl, issuer.subjectDer)) continue;
    if (crl.authorityKeyId && issuer.subjectKeyId && crl.authorityKeyId !== issuer.subjectKeyId) continue;
    if (!crlSignedBy(crl, issuer, cache)) {
      why = `the CRL of ${quote(issuer)} has a bad signature`;
      continue;
    }
    if (crl.unknownCriticalExtensions.length > 0) {
      why = `the CRL of ${quote(issuer)} has an unsupported critical extension`;
      continue;
    }
    // issued after the time: evidence for that time (RFC 5280 §5.3.2: entries carry their revocation dates); before it: must be current at it
    const later = crl.thisUpdate.getTime() > time;
    if (!later && (!crl.nextUpdate || crl.nextUpdate.getTime() < time)) {
      why = `the CRL of ${quote(issuer)} expired at ${crl.nextUpdate?.toISOString() ?? '(no nextUpdate)'}`;
      continue;
    }
    if (!best || (crl.crlNumber ?? -1n) > (best.crlNumber ?? -1n)) best = crl;
  }
  if (!best) return { status: 'revocation-unknown', certificate: sub, message: `Cannot check revocation of ${quote(sub)}: ${why}` };
  const entry = best.entries.get(sub.serial);
  if (entry && (best.thisUpdate.getTime() <= time || entry.revokedAt.getTime() <= time || COMPROMISE.has(entry.reason))) {
    return {
      status: 'revoked',
      certificate: sub,
      reason: entry.reason,
      revokedAt: entry.revokedAt,
      message: `Certificate ${quote(sub)} was revoked at ${entry.revokedAt.toISOString()} (${entry.reason})`,
    };
  }
  return undefined;
}

function parseAll<T, I>(inputs: readonly I[], parse: (i: I) => T): T[] {
  return inputs.map(parse);
}

/** Validates `req.leaf` for `req.use` at `req.time`; never throws. */
export function validateCertificate(req: ValidationRequest): ValidationResult {
  const cache = req?.cache instanceof ValidationCache ? req.cache : undefined;
  let leaf: ParsedCertificate;
  let pool: ParsedCertificate[];
  let roots: ParsedCertificate[];
  let crls: ParsedCrl[];
  try {
    if (!req || typeof req !== 'object') throw new MalformedCertificateError('Cannot validate: no request');
    if (!(req.time instanceof Date) || Number.isNaN(req.time.getTime()))
      throw new MalformedCertificateError('Cannot validate: the time is not a valid Date');
    if (!INTENDED_USES.includes(req.use)) throw new MalformedCertificateError(`Cannot validate: unknown intended use "${String(req.use)}"`);
    const cert = (i: CertificateInput) => (cache ? cache.certificate(i) : parseCertificate(i));
    const crl = (i: CrlInput) => (cache ? cache.crl(i) : parseCrl(i));
    leaf = cert(req.leaf);
    if ((req.intermediates ?? []).length > MAX_INTERMEDIATES)
      throw new MalformedCertificateError(`Cannot validate: more than ${MAX_INTERMEDIATES} intermediates`);
    pool = parseAll(req.intermediates ?? [], cert);
    roots = parseAll(req.roots ?? [], cert);
    crls = parseAll(req.crls ?? [], crl);
  } catch (err) {
    return { status: 'malformed', message: err instanceof Error ? err.message : String(err) };
  }
  if (roots.length === 0)
    return { status: 'untrusted', message: `Certificate ${quote(leaf)} cannot be trusted: no trusted root was given` };
  // Without a caller's cache, a per-call one still avoids importing an issuer key twice.
  const memo = cache ?? new ValidationCache(64);
  const search = buildPaths(leaf, pool, roots, memo);
  if (search.paths.length === 0) {
    const message = search.badSignature
      ? `Certificate ${quote(search.badSignature)} has a signature that does not verify against its issuer`
      : `Certificate ${quote(leaf)} does not chain to a trusted root`;
    return { status: 'untrusted', message };
  }
  let first: ValidationResult | undefined;
  for (const path of search.paths) {
    const result = checkPath(path, crls, req, memo);
    if (result.status === 'valid') return result;
    first ??= result;
  }
  return first as ValidationResult;
}
