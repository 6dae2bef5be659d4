/**
 * `ssmax ca …`: the CA tool (docs/pki.md "CLI"). It only parses
 * arguments, reads and writes files, and calls src/pki. The clock is read here,
 * once per command, and passed down.
 *
 * A CA directory (made 0700) holds `ca.cert.pem`, `ca.key.pem` (0600, PKCS#8,
 * optionally passphrase-encrypted) and `ca.json` (kind, CRL number,
 * revocations, issued serials). Nothing is overwritten without `--force`;
 * a private key is always a new 0600 file renamed into place
 * (src/fs/secret-file.ts).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createBundle, verifyBundle, type KeyState } from '../pki/bundle';
import { type ParsedCertificate, parseCertificate } from '../pki/certificate';
import {
  type CaState,
  CaStateError,
  createCaState,
  legacyCrlNumber,
  readCaState,
  recordRevocations,
  recordedRevocations,
  updateCaState,
} from '../pki/ca-state';
import { type ParsedCrl, createCrl, crlIssuedBy, crlSuccessor, isRevocationReason, parseCrl, REVOCATION_REASONS } from '../pki/crl';
import {
  type SigningAuthority,
  createOrgCa,
  createRootCa,
  issueBundleSignerCertificate,
  issueEncryptionKeyCertificate,
  issueSealingCertificate,
  issueTlsCertificate,
  issueUserCertificate,
} from '../pki/issue';
import { type PublicKeyInput } from '../pki/issue';
import {
  compressedPointFromSpki,
  generateP256KeyPair,
  generateSecp256k1KeyPair,
  privateKeyFromPem,
  privateKeyToPem,
  spkiOf,
} from '../pki/keys';
import { ROLES, type Role } from '../pki/oids';
import { fromPemAll } from '../pki/pem';
import { INTENDED_USES, type IntendedUse, validateCertificate } from '../pki/validate';
import { CliError, type CliIo, type CommandGroup, EXIT, newKeyPassphrase, readInputText, readPassphrase } from './command';
import { loadSigningAuthority } from './ca-files';
import { writeFileAtomic } from '../fs/atomic';
import { createPrivateFolder, writeSecretFile } from '../fs/secret-file';
import { errnoText } from '../errors/errno';

const DAY = 86_400_000;
/** Allowance for clocks slightly behind ours (RFC 5280 gives no rule; one hour is common practice). */
const BACKDATE_MS = 3_600_000;

// ---------------------------------------------------------------------------
// Small file helpers

function writeOut(path: string, text: string, opts: { secret?: boolean; force?: boolean } = {}): void {
  if (existsSync(path) && !opts.force)
    throw new CliError(`Cannot write "${path}": the file exists (use --force to replace it)`, EXIT.cantCreate);
  if (opts.secret) {
    // a new 0600 file renamed over the path: an existing file (of another mode, or a symlink) is replaced, never written into
    try {
      writeSecretFile(path, text);
    } catch (err) {
      throw new CliError(`Cannot write "${path}": ${errnoText(err)}`, EXIT.cantCreate);
    }
    return;
  }
  writeFileSync(path, text, { mode: 0o644 });
}

/** Makes a CA folder (it holds the CA's private key): a new one 0700; an existing one open to others is warned about. */
function caFolder(dir: string, io: CliIo): void {
  let folder: ReturnType<typeof createPrivateFolder>;
  try {
    folder = createPrivateFolder(dir);
  } catch (err) {
    throw new CliError(`Cannot create folder "${dir}": ${errnoText(err)}`, EXIT.cantCreate);
  }
  if (folder.open)
    io.err(
      `warning: "${dir}" is mode ${folder.mode.toString(8).padStart(4, '0')}: the CA's private key is in it; make it 0700 (chmod 700 ${dir})`,
    );
}

function loadAuthority(dir: string, passphraseFile: string | undefined): SigningAuthority {
  return loadSigningAuthority(join(dir, 'ca.cert.pem'), join(dir, 'ca.key.pem'), passphraseFile);
}

function stateError(err: unknown): unknown {
  if (!(err instanceof CaStateError)) return err;
  const exit =
    err.reason === 'missing' || err.reason === 'unreadable' ? EXIT.noInput : err.reason === 'busy' ? EXIT.tempFail : EXIT.dataErr;
  return new CliError(err.message, exit);
}

/** Reads ca.json before changing it (a missing or malformed record is said before any other work). */
function loadState(dir: string): CaState {
  try {
    return readCaState(dir);
  } catch (err) {
    throw stateError(err);
  }
}

/** Changes ca.json under the CA folder's lock (src/pki/ca-state.ts): what another command changed meanwhile is kept. */
async function changeState<T>(dir: string, change: (state: CaState) => T | Promise<T>): Promise<T> {
  try {
    return await updateCaState(dir, change);
  } catch (err) {
    throw stateError(err);
  }
}

async function newState(dir: string, state: CaState): Promise<void> {
  try {
    await createCaState(dir, state);
  } catch (err) {
    throw stateError(err);
  }
}

function parseCertificateFile(path: string, what: string): ParsedCertificate {
  try {
    return parseCertificate(readInputText(path, what));
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`Cannot read ${what} "${path}": ${(err as Error).message}`, EXIT.dataErr);
  }
}

function certificatesInFile(path: string): string[] {
  try {
    return fromPemAll(readInputText(path, 'certificate file'), 'CERTIFICATE').map((der) => parseCertificate(der).pem);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`Cannot read certificate file "${path}": ${(err as Error).message}`, EXIT.dataErr);
  }
}

/**
 * The most days any --days may give: 100 years. Beyond it a certificate's or CRL's time would reach the years X.509
 * cannot write (GeneralizedTime ends at 9999), and the command failed late with a vague error, after making its folder.
 */
const MAX_DAYS = 36525;

function positiveInt(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v)))
    throw new CliError(`Cannot use --${name} "${v}": not a positive integer`, EXIT.usage);
  return Number(v);
}

/** --days: a positive integer, at most MAX_DAYS. */
function daysOption(v: string | undefined, dflt: number): number {
  const days = positiveInt(v, 'days', dflt);
  if (days > MAX_DAYS) throw new CliError(`Cannot use --days "${v}": at most ${MAX_DAYS} (100 years)`, EXIT.usage);
  return days;
}

function parseTimeOption(v: string | undefined, now: Date): Date {
  if (v === undefined) return now;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new CliError(`Cannot use --at "${v}": not an ISO 8601 time`, EXIT.usage);
  return d;
}

/** Validity of a new certificate: backdated an hour, clamped to the issuer's validity. */
function validityUnder(issuer: ParsedCertificate | undefined, now: Date, days: number): { notBefore: Date; notAfter: Date } {
  const s = Math.floor(now.getTime() / 1000) * 1000;
  let notBefore = new Date(s - BACKDATE_MS);
  let notAfter = new Date(s + days * DAY);
  if (issuer) {
    if (notBefore < issuer.notBefore) notBefore = issuer.notBefore;
    if (notAfter > issuer.notAfter) notAfter = issuer.notAfter;
  }
  return { notBefore, notAfter };
}

function recordIssued(state: CaState, cert: ParsedCertificate, domains?: string[]): void {
  state.issued.push({ serial: cert.serial, subject: cert.subject, notAfter: cert.notAfter.toISOString(), ...(domains ? { domains } : {}) });
}

// ---------------------------------------------------------------------------
// Subcommands

interface Sub {
  readonly summary: string;
  readonly usage: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  readonly positionals?: boolean;
  run(
    values: Record<string, string | boolean | string[] | undefined>,
    positionals: string[],
    io: CliIo,
    now: Date,
  ): number | Promise<number>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
function need(v: unknown, name: string): string {
  const s = str(v);
  if (s === undefined || s === '') throw new CliError(`Missing --${name}`, EXIT.usage);
  return s;
}

const common = { help: { type: 'boolean', short: 'h' }, force: { type: 'boolean' } } as const;

const initRoot: Sub = {
  summary: 'Create the SSMAX root CA (self-signed)',
  usage: `Usage: ssmax ca init-root --dir DIR [options]

Creates DIR/ca.cert.pem, DIR/ca.key.pem (0600) and DIR/ca.json. A new DIR is made 0700; an
existing DIR open to group or others is warned about. With --force, ca.key.pem is replaced by a
new 0600 file (an existing file or symlink there is never written into).

Options:
  --dir DIR               Directory of the new root CA (created if missing)
  --name CN               Common name (default "SSMAX Root CA")
  --org O                 Organisation (default "SSMAX")
  --days N                Validity in days (default 3650)
  --passphrase-file F     Encrypt the private key (PKCS#8, AES-256) with the passphrase in F
  --unencrypted-key       Write the private key unencrypted (refused without this or --passphrase-file)
  --force                 Replace existing files`,
  options: {
    ...common,
    dir: { type: 'string' },
    name: { type: 'string' },
    org: { type: 'string' },
    days: { type: 'string' },
    'passphrase-file': { type: 'string' },
    'unencrypted-key': { type: 'boolean' },
  },
  async run(v, _p, io, now) {
    const dir = need(v.dir, 'dir');
    const days = daysOption(str(v.days), 3650); // before the folder is made
    const passphrase = newKeyPassphrase(v, 'passphrase-file', 'root CA');
    caFolder(dir, io);
    const { privateKey } = generateP256KeyPair();
    const root = createRootCa({
      privateKey,
      ...validityUnder(undefined, now, days),
      ...(str(v.name) ? { commonName: str(v.name) } : {}),
      ...(str(v.org) ? { organisation: str(v.org) } : {}),
    });
    writeOut(join(dir, 'ca.key.pem'), privateKeyToPem(privateKey, passphrase), { secret: true, force: v.force === true });
    writeOut(join(dir, 'ca.cert.pem'), root.certificate.pem, { force: v.force === true });
    await newState(dir, { kind: 'root', revoked: [], issued: [] });
    io.out(
      `Created root CA "${root.certificate.subject}" in ${dir} (serial ${root.certificate.serial}, until ${root.certificate.notAfter.toISOString()})`,
    );
    return EXIT.ok;
  },
};

const initOrg: Sub = {
  summary: 'Create an organisation CA certified by the root, limited to its domains',
  usage: `Usage: ssmax ca init-org --root ROOTDIR --dir DIR --domain DOMAIN [--domain DOMAIN…] --org NAME [options]

Options:
  --root DIR                   The root CA directory (init-root)
  --dir DIR                    Directory of the new organisation CA (a new one is made 0700)
  --domain DOMAIN              A mail domain of the organisation (repeatable); the CA's name constraints
  --org NAME                   Organisation name
  --days N                     Validity in days (default 1825, at most the root's)
  --root-passphrase-file F     Passphrase of the root key
  --passphrase-file F          Encrypt the new CA key (PKCS#8, AES-256) with the passphrase in F
  --unencrypted-key            Write the new CA key unencrypted (refused without this or --passphrase-file)
  --second-ca-for-domain       Certify this CA although the root already certified another, unexpired and
                               unrevoked, organisation CA for one of these domains (refused otherwise: two
                               CAs for one domain can each speak for it)
  --force                      Replace existing files`,
  options: {
    ...common,
    root: { type: 'string' },
    dir: { type: 'string' },
    domain: { type: 'string', multiple: true },
    org: { type: 'string' },
    days: { type: 'string' },
    'root-passphrase-file': { type: 'string' },
    'passphrase-file': { type: 'string' },
    'unencrypted-key': { type: 'boolean' },
    'second-ca-for-domain': { type: 'boolean' },
  },
  async run(v, _p, io, now) {
    const rootDir = need(v.root, 'root');
    const dir = need(v.dir, 'dir');
    const domains = list(v.domain);
    if (domains.length === 0) throw new CliError('Missing --domain', EXIT.usage);
    const organisation = need(v.org, 'org');
    const days = daysOption(str(v.days), 1825); // before anything is made
    const passphrase = newKeyPassphrase(v, 'passphrase-file', 'organisation CA');
    const root = loadAuthority(rootDir, str(v['root-passphrase-file']));
    loadState(rootDir); // a missing or malformed record is said before anything is made
    const wanted = new Set(domains.map((d) => d.toLowerCase()));
    // the check for another CA of these domains and the record of this one under the root folder's lock:
    // two init-org at once for one domain cannot both pass the check
    const { org, clash } = await changeState(rootDir, async (rootState) => {
      const clash = rootState.issued.find(
        (i) => i.domains?.some((d) => wanted.has(d)) && new Date(i.notAfter) > now && !rootState.revoked.some((r) => r.serial === i.serial),
      );
      if (clash && v['second-ca-for-domain'] !== true) {
        throw new CliError(
          `Cannot create the organisation CA: the root already certified "${clash.subject}" (serial ${clash.serial}) for ${clash.domains!.filter((d) => wanted.has(d)).join(', ')}, valid until ${clash.notAfter}; revoke it first, or pass --second-ca-for-domain to certify a second CA for the same domain`,
          EXIT.usage,
        );
      }
      const { privateKey } = generateP256KeyPair();
      const org = createOrgCa(root, {
        domains,
        organisation,
        privateKey,
        ...validityUnder(root.certificate, now, days),
      });
      caFolder(dir, io);
      writeOut(join(dir, 'ca.key.pem'), privateKeyToPem(privateKey, passphrase), { secret: true, force: v.force === true });
      writeOut(join(dir, 'ca.cert.pem'), org.certificate.pem, { force: v.force === true });
      writeOut(join(dir, 'chain.pem'), org.certificate.pem + root.certificate.pem, { force: v.force === true });
      await newState(dir, { kind: 'org', revoked: [], issued: [] });
      recordIssued(rootState, org.certificate, [...wanted]);
      return { org, clash };
    });
    if (clash)
      io.err(
        `warning: ${[...wanted].join(', ')} now has a second organisation CA (the root also certified "${clash.subject}", serial ${clash.serial})`,
      );
    io.out(`Created organisation CA "${org.certificate.subject}" for ${domains.join(', ')} in ${dir} (serial ${org.certificate.serial})`);
    return EXIT.ok;
  },
};

const ISSUE_KINDS = [
  'user',
  'gateway',
  'keyd',
  'inspector',
  'console',
  'admin',
  'disclosure',
  'seal',
  'encryption',
  'bundle-signer',
] as const;
type IssueKind = (typeof ISSUE_KINDS)[number];

function publicKeyOption(v: string | undefined): PublicKeyInput | undefined {
  if (v === undefined) return undefined;
  if (/^(02|03)[0-9a-fA-F]{64}$/.test(v) || /^04[0-9a-fA-F]{128}$/.test(v)) return new Uint8Array(Buffer.from(v, 'hex'));
  const text = readInputText(v, 'public key');
  const begin = text.indexOf('-----BEGIN PUBLIC KEY-----'); // indexOf, not a lazy BEGIN…END pattern (quadratic without an END)
  const end = begin < 0 ? -1 : text.indexOf('-----END PUBLIC KEY-----', begin + 26);
  if (end < 0) throw new CliError(`Cannot read public key "${v}": expected a hex point or a PEM "PUBLIC KEY" file`, EXIT.dataErr);
  return new Uint8Array(Buffer.from(text.slice(begin + 26, end).replace(/\s+/g, ''), 'base64'));
}

const issue: Sub = {
  summary: 'Issue an end-entity certificate: user | gateway | keyd | inspector | admin | disclosure | seal | encryption | bundle-signer',
  usage: `Usage: ssmax ca issue KIND --ca DIR --out PREFIX [options]

Writes PREFIX.cert.pem and, unless --public-key is given, a new key PREFIX.key.pem (0600).

Kinds and their options:
  user           --email ADDR --pseudonym NAME --code CODE --purpose signing|encryption
                 (pseudonym: never a real name; code: org-assigned, never an identity number)
  gateway|keyd|inspector|console
                 --host HOST (repeatable): TLS server+client certificate carrying the role
                 (console: the web console, docs/console.md)
  admin|disclosure
                 --name PSEUDONYM: TLS client certificate carrying the role
  seal           --domain DOMAIN [--host HOST]: gateway sealing certificate
  encryption     --domain DOMAIN --version N: organisation encryption key (secp256k1)
  bundle-signer  --domain DOMAIN: the key that signs the organisation bundle

Options:
  --ca DIR                  Organisation CA directory (init-org)
  --out PREFIX              Output file prefix
  --days N                  Validity in days (default 365, at most the CA's)
  --public-key HEX|FILE     Certify this key instead of generating one (hex compressed
                            secp256k1 point, or a PEM SubjectPublicKeyInfo file)
  --ca-passphrase-file F    Passphrase of the CA key
  --passphrase-file F       Encrypt the new key with the passphrase in F
  --force                   Replace existing files`,
  positionals: true,
  options: {
    ...common,
    ca: { type: 'string' },
    out: { type: 'string' },
    days: { type: 'string' },
    'public-key': { type: 'string' },
    'ca-passphrase-file': { type: 'string' },
    'passphrase-file': { type: 'string' },
    email: { type: 'string' },
    pseudonym: { type: 'string' },
    code: { type: 'string' },
    purpose: { type: 'string' },
    host: { type: 'string', multiple: true },
    name: { type: 'string' },
    domain: { type: 'string' },
    version: { type: 'string' },
  },
  async run(v, positionals, io, now) {
    const kind = positionals[0] as IssueKind | undefined;
    if (!kind || !ISSUE_KINDS.includes(kind))
      throw new CliError(`Cannot issue "${kind ?? ''}": the kind must be one of ${ISSUE_KINDS.join(', ')}`, EXIT.usage);
    if (positionals.length > 1) throw new CliError(`Unexpected argument "${positionals[1]}"`, EXIT.usage);
    const dir = need(v.ca, 'ca');
    const out = need(v.out, 'out');
    const ca = loadAuthority(dir, str(v['ca-passphrase-file']));
    loadState(dir); // a missing or malformed record is said before anything is written
    const validity = validityUnder(ca.certificate, now, daysOption(str(v.days), 365));
    const secp = kind === 'encryption' || (kind === 'user' && str(v.purpose) === 'encryption');
    const given = publicKeyOption(str(v['public-key']));
    const generated = given ? undefined : secp ? generateSecp256k1KeyPair() : generateP256KeyPair();
    const publicKey: PublicKeyInput = given ?? (secp ? compressedPointFromSpki(spkiOf(generated!.publicKey)) : generated!.publicKey);
    let cert: ParsedCertificate;
    switch (kind) {
      case 'user': {
        const purpose = need(v.purpose, 'purpose');
        if (purpose !== 'signing' && purpose !== 'encryption')
          throw new CliError(`Cannot use --purpose "${purpose}": signing or encryption`, EXIT.usage);
        cert = issueUserCertificate(ca, {
          email: need(v.email, 'email'),
          pseudonym: need(v.pseudonym, 'pseudonym'),
          code: need(v.code, 'code'),
          purpose,
          publicKey,
          ...validity,
        });
        break;
      }
      case 'gateway':
      case 'keyd':
      case 'inspector':
      case 'console':
        cert = issueTlsCertificate(ca, { role: kind, hosts: list(v.host), publicKey, ...validity });
        break;
      case 'admin':
      case 'disclosure':
        cert = issueTlsCertificate(ca, { role: kind, commonName: need(v.name, 'name'), publicKey, ...validity });
        break;
      case 'seal': {
        const hosts = list(v.host);
        if (hosts.length > 1) throw new CliError('Cannot issue seal: give at most one --host', EXIT.usage);
        cert = issueSealingCertificate(ca, {
          domain: need(v.domain, 'domain'),
          ...(hosts[0] ? { host: hosts[0] } : {}),
          publicKey,
          ...validity,
        });
        break;
      }
      case 'encryption':
        cert = issueEncryptionKeyCertificate(ca, {
          domain: need(v.domain, 'domain'),
          version: positiveInt(need(v.version, 'version'), 'version', 1),
          publicKey,
          ...validity,
        });
        break;
      case 'bundle-signer':
        cert = issueBundleSignerCertificate(ca, { domain: need(v.domain, 'domain'), publicKey, ...validity });
        break;
    }
    if (generated)
      writeOut(`${out}.key.pem`, privateKeyToPem(generated.privateKey, readPassphrase(str(v['passphrase-file']))), {
        secret: true,
        force: v.force === true,
      });
    writeOut(`${out}.cert.pem`, cert.pem, { force: v.force === true });
    const issued = cert;
    await changeState(dir, (state) => recordIssued(state, issued));
    io.out(
      `Issued ${kind} certificate "${cert.subject}" serial ${cert.serial} until ${cert.notAfter.toISOString()}: ${out}.cert.pem${generated ? ` (key ${out}.key.pem)` : ''}`,
    );
    return EXIT.ok;
  },
};

const revoke: Sub = {
  summary: 'Record the revocation of a certificate (then run `ssmax ca crl`)',
  usage: `Usage: ssmax ca revoke --ca DIR (--cert FILE | --serial HEX) [--reason REASON]

Reasons: ${Object.keys(REVOCATION_REASONS).join(', ')} (default unspecified)`,
  options: { ...common, ca: { type: 'string' }, cert: { type: 'string' }, serial: { type: 'string' }, reason: { type: 'string' } },
  async run(v, _p, io, now) {
    const dir = need(v.ca, 'ca');
    loadState(dir); // a missing or malformed record is said first
    const caCert = parseCertificateFile(join(dir, 'ca.cert.pem'), 'CA certificate');
    let serial: string;
    if (str(v.cert)) {
      const cert = parseCertificateFile(str(v.cert) as string, 'certificate');
      if (Buffer.compare(Buffer.from(cert.issuerDer), Buffer.from(caCert.subjectDer)) !== 0)
        throw new CliError(`Cannot revoke "${cert.subject}": it was not issued by "${caCert.subject}"`, EXIT.dataErr);
      serial = cert.serial;
    } else {
      serial = need(v.serial, 'serial or --cert').toLowerCase().replace(/:/g, '');
      if (!/^([0-9a-f]{2})+$/.test(serial)) throw new CliError(`Cannot revoke serial "${serial}": not hex bytes`, EXIT.usage);
    }
    const reason = str(v.reason) ?? 'unspecified';
    if (!isRevocationReason(reason))
      throw new CliError(`Cannot use reason "${reason}": one of ${Object.keys(REVOCATION_REASONS).join(', ')}`, EXIT.usage);
    // the check and the record under the CA folder's lock: a revocation another command records meanwhile is kept
    await changeState(dir, (state) => {
      if (state.revoked.some((r) => r.serial === serial))
        throw new CliError(`Cannot revoke serial "${serial}": already revoked`, EXIT.dataErr);
      state.revoked.push({ serial, revokedAt: new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString(), reason });
    });
    io.out(`Revoked serial ${serial} (${reason}); run \`ssmax ca crl --ca ${dir}\` to publish`);
    return EXIT.ok;
  },
};

/** The CRL of `ca` that `file` holds; undefined when there is no such file. */
function crlIn(file: string, ca: SigningAuthority): ParsedCrl | undefined {
  if (!existsSync(file)) return undefined;
  let c;
  try {
    c = parseCrl(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError(`Cannot read the CRL "${file}" to continue its CRL number: ${(err as Error).message}`, EXIT.dataErr);
  }
  if (!crlIssuedBy(c, ca.certificate.subjectDer))
    throw new CliError(`Cannot replace "${file}": it holds a CRL of "${c.issuer}", not of this CA`, EXIT.dataErr);
  return c;
}

const crl: Sub = {
  summary: "Write the CA's CRL (signed, with the next CRL number)",
  usage: `Usage: ssmax ca crl --ca DIR [--days N] [--out FILE] [--merge FILE]…

Options:
  --ca DIR                  The CA directory (root or organisation)
  --days N                  Days until nextUpdate (default 7)
  --out FILE                Output (default DIR/crl.pem, replaced atomically)
  --merge FILE              Another CRL file of this CA whose revocations and number
                            count too (repeatable), e.g. the one keyd renews
  --ca-passphrase-file F    Passphrase of the CA key

The CRL holds the revocations of ca.json and every revocation in every CRL
file of this CA it knows: DIR/crl.pem, --out, each --merge, and the copies
ca.json names (ssmax setup records there the pki/org-ca.crl.pem that keyd
renews and revokes users into). ca.json then records them too; the number is
above all of theirs, so the new CRL can replace any of those files. A copy or
--merge file older than another CRL read is named in a warning: where keyd
runs on another host, merge a fresh copy of keyd's file.`,
  options: {
    ...common,
    ca: { type: 'string' },
    days: { type: 'string' },
    out: { type: 'string' },
    merge: { type: 'string', multiple: true },
    'ca-passphrase-file': { type: 'string' },
  },
  async run(v, _p, io, now) {
    const dir = need(v.ca, 'ca');
    const authority = loadAuthority(dir, str(v['ca-passphrase-file']));
    loadState(dir); // a missing or malformed record is said first
    const thisUpdate = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const out = str(v.out) ?? join(dir, 'crl.pem');
    const merged = list(v.merge);
    for (const f of merged) if (!existsSync(f)) throw new CliError(`Cannot merge "${f}": no such file`, EXIT.noInput);
    const days = daysOption(str(v.days), 7);
    // ca.json and the CRL files read, numbered and written under the CA folder's lock: a revocation recorded
    // meanwhile is not dropped, and two CRLs never get one number
    const { number, entries, files } = await changeState(dir, (state) => {
      // a copy ca.json names that is gone (its setup folder moved) is said, not a failure: the others still count
      const copies = (state.crlCopies ?? []).filter((f) => {
        if (existsSync(f)) return true;
        io.err(`Note: the CRL copy "${f}" named in ca.json is not there; not merged`);
        return false;
      });
      // one counter above every CRL of this CA written before, in any of its files (keyd renews its own: docs/operations.md)
      const files = [...new Set([out, join(dir, 'crl.pem'), ...copies, ...merged])];
      const read = files.map((f) => crlIn(f, authority));
      const current = read.filter((c): c is ParsedCrl => c !== undefined);
      // a copy older than another CRL read here may be stale: keyd on another host writes its own file (docs/deploy.md, split layout)
      const newest = Math.max(0, ...current.map((c) => c.thisUpdate.getTime()));
      for (const [i, f] of files.entries()) {
        const at = read[i]?.thisUpdate;
        if (at && at.getTime() < newest && (copies.includes(f) || merged.includes(f)))
          io.err(
            `Warning: the CRL copy "${f}" (thisUpdate ${at.toISOString()}) is older than another CRL of this CA read here (${new Date(newest).toISOString()}); if keyd runs on another host, merge a fresh copy of keyd's file (--merge) so that no revocation it made is lost`,
          );
      }
      // one counter above every CRL of this CA written before, and every revocation those files hold (keyd revokes
      // users into its file: docs/keyd-api.md), recorded in ca.json too
      const { crlNumber: number, entries } = crlSuccessor(current, recordedRevocations(state), legacyCrlNumber(state));
      recordRevocations(state, entries);
      const signed = createCrl(authority, {
        entries,
        thisUpdate,
        nextUpdate: new Date(thisUpdate.getTime() + days * DAY),
        crlNumber: number,
      });
      if (existsSync(out) && !(str(v.out) === undefined || v.force === true))
        throw new CliError(`Cannot write "${out}": the file exists (use --force to replace it)`, EXIT.cantCreate);
      // atomically: the publisher, keyd and the gateways read this file while it is replaced
      writeFileAtomic(out, signed.pem, 0o644);
      return { number, entries, files };
    });
    const others = files.filter((f) => f !== out && existsSync(f));
    io.out(
      `Wrote CRL number ${number} of "${authority.certificate.subject}" with ${entries.length} revocation(s) to ${out}${others.length > 0 ? ` (merged ${others.join(', ')})` : ''}`,
    );
    return EXIT.ok;
  },
};

const bundle: Sub = {
  summary: 'Build and sign the organisation bundle',
  usage: `Usage: ssmax ca bundle --ca DIR --signer PREFIX --domain DOMAIN --key FILE[:STATE]… --abuse mailto:ADDR --serial N [options]

Options:
  --ca DIR                      Organisation CA directory (its certificate heads the chain)
  --signer PREFIX               Bundle-signer PREFIX.cert.pem and PREFIX.key.pem (issue bundle-signer)
  --domain DOMAIN               The domain the bundle is for
  --key FILE[:STATE]            Encryption-key certificate; STATE current (default), next or retired (repeatable)
  --seal FILE                   Gateway sealing certificate (repeatable)
  --crl FILE                    CRL to include (repeatable; default DIR/crl.pem): every CA of the
                                chain needs its CRL, the root's included, or peers cannot check it
  --root FILE                   SSMAX root to check the bundle against before it is written
                                (default: the root at the end of DIR/chain.pem)
  --abuse mailto:ADDR           Abuse contact
  --serial N                    Bundle serial; must grow with every publication
  --days N                      Validity in days (default 7)
  --encryption MODE             Inbound policy: required (default) or opportunistic
  --seal-policy MODE            Inbound policy: required (default) or optional
  --max-message-bytes N         Inbound policy (default 26214400)
  --out FILE                    Output (default stdout)
  --signer-passphrase-file F    Passphrase of the signer key`,
  options: {
    ...common,
    ca: { type: 'string' },
    signer: { type: 'string' },
    domain: { type: 'string' },
    key: { type: 'string', multiple: true },
    seal: { type: 'string', multiple: true },
    crl: { type: 'string', multiple: true },
    abuse: { type: 'string' },
    serial: { type: 'string' },
    days: { type: 'string' },
    encryption: { type: 'string' },
    'seal-policy': { type: 'string' },
    'max-message-bytes': { type: 'string' },
    out: { type: 'string' },
    'signer-passphrase-file': { type: 'string' },
    root: { type: 'string', multiple: true },
  },
  run(v, _p, io, now) {
    const dir = need(v.ca, 'ca');
    const signerPrefix = need(v.signer, 'signer');
    const caCert = parseCertificateFile(join(dir, 'ca.cert.pem'), 'CA certificate');
    const signerCert = parseCertificateFile(`${signerPrefix}.cert.pem`, 'signer certificate');
    let signerKey;
    try {
      signerKey = privateKeyFromPem(
        readInputText(`${signerPrefix}.key.pem`, 'signer key'),
        readPassphrase(str(v['signer-passphrase-file'])),
      );
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError((err as Error).message, EXIT.dataErr);
    }
    const keys = list(v.key).map((spec) => {
      const m = /^(.*?)(?::(current|next|retired))?$/.exec(spec);
      return { certificate: parseCertificateFile(m?.[1] ?? spec, 'encryption-key certificate'), state: (m?.[2] ?? 'current') as KeyState };
    });
    if (keys.length === 0) throw new CliError('Missing --key', EXIT.usage);
    const serialText = need(v.serial, 'serial');
    if (!/^\d+$/.test(serialText)) throw new CliError(`Cannot use --serial "${serialText}": not a non-negative integer`, EXIT.usage);
    const crlFiles = list(v.crl).length > 0 ? list(v.crl) : [join(dir, 'crl.pem')];
    const encryption = str(v.encryption) ?? 'required';
    const sealPolicy = str(v['seal-policy']) ?? 'required';
    if (encryption !== 'required' && encryption !== 'opportunistic')
      throw new CliError(`Cannot use --encryption "${encryption}": required or opportunistic`, EXIT.usage);
    if (sealPolicy !== 'required' && sealPolicy !== 'optional')
      throw new CliError(`Cannot use --seal-policy "${sealPolicy}": required or optional`, EXIT.usage);
    const issued = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const text = createBundle(
      {
        domain: need(v.domain, 'domain'),
        serial: Number(serialText),
        issued,
        expires: new Date(issued.getTime() + daysOption(str(v.days), 7) * DAY),
        orgCaChain: [caCert],
        encryptionKeys: keys,
        sealingCertificates: list(v.seal).map((f) => parseCertificateFile(f, 'sealing certificate')),
        crls: crlFiles.flatMap((f) => fromPemAll(readInputText(f, 'CRL'), 'X509 CRL')),
        abuseContact: need(v.abuse, 'abuse'),
        inboundPolicy: {
          encryption,
          seal: sealPolicy,
          maxMessageBytes: positiveInt(str(v['max-message-bytes']), 'max-message-bytes', 26_214_400),
        },
      },
      { certificate: signerCert, privateKey: signerKey },
    );
    // Check it as `ca verify` and every peer will, so a bundle peers would reject is never written.
    const roots = bundleRoots(list(v.root), dir);
    const check = verifyBundle(text, { domain: need(v.domain, 'domain'), roots, time: issued });
    if (check.status !== 'valid') {
      const hint = /revocation-unknown|CRL/i.test(check.message)
        ? ` (give --crl for every CA of the chain: the org CA's ${join(dir, 'crl.pem')} and the root's CRL)`
        : '';
      throw new CliError(`Cannot write the bundle: it would not verify: ${check.status}: ${check.message}${hint}`, EXIT.dataErr);
    }
    const out = str(v.out);
    if (out) {
      writeOut(out, text, { force: v.force === true });
      io.out(`Wrote bundle for ${str(v.domain)} (serial ${serialText}) to ${out}`);
    } else {
      io.out(text);
    }
    return EXIT.ok;
  },
};

/** The roots a new bundle is checked against: --root, else the self-signed certificate at the end of DIR/chain.pem (ca init-org writes it). */
function bundleRoots(files: readonly string[], dir: string): string[] {
  if (files.length > 0) return files.flatMap(certificatesInFile);
  const chainFile = join(dir, 'chain.pem');
  if (!existsSync(chainFile))
    throw new CliError(`Missing --root: the SSMAX root is needed to check the bundle ("${chainFile}" does not exist)`, EXIT.usage);
  const last = certificatesInFile(chainFile).at(-1);
  const cert = last === undefined ? undefined : parseCertificate(last);
  if (!cert || Buffer.compare(Buffer.from(cert.subjectDer), Buffer.from(cert.issuerDer)) !== 0)
    throw new CliError(`Missing --root: "${chainFile}" does not end with a root certificate`, EXIT.usage);
  return [last as string];
}

const verifyCmd: Sub = {
  summary: 'Verify a certificate (chain, CRLs, use) or an organisation bundle',
  usage: `Usage: ssmax ca verify --root FILE --cert FILE [--chain FILE…] [--crl FILE…] [--use USE] [--role ROLE…] [--at TIME]
       ssmax ca verify --root FILE --bundle FILE --domain DOMAIN [--crl FILE…] [--min-serial N] [--at TIME]

Prints the result (valid, expired, not-yet-valid, revoked, revocation-unknown,
wrong-usage, outside-name-constraints, untrusted, malformed; for bundles also
bad-signature, signer-not-certified, wrong-domain, replayed, invalid-content)
and exits 0 only when valid.

Options:
  --root FILE          Trusted SSMAX root certificate(s) (repeatable)
  --cert FILE          Certificate to verify
  --chain FILE         Intermediate certificates, any order (repeatable)
  --crl FILE           CRLs (repeatable)
  --use USE            ${INTENDED_USES.join(', ')} (default any)
  --role ROLE          For tls-server/tls-client: accepted roles (${ROLES.join(', ')})
  --bundle FILE        Organisation bundle (JSON) to verify instead
  --domain DOMAIN      The domain the bundle must be for
  --min-serial N       Reject a bundle older than this serial
  --at TIME            Verify at this ISO 8601 time instead of now`,
  options: {
    ...common,
    root: { type: 'string', multiple: true },
    cert: { type: 'string' },
    chain: { type: 'string', multiple: true },
    crl: { type: 'string', multiple: true },
    use: { type: 'string' },
    role: { type: 'string', multiple: true },
    bundle: { type: 'string' },
    domain: { type: 'string' },
    'min-serial': { type: 'string' },
    at: { type: 'string' },
  },
  run(v, _p, io, now) {
    const roots = list(v.root).flatMap(certificatesInFile);
    if (roots.length === 0) throw new CliError('Missing --root', EXIT.usage);
    const time = parseTimeOption(str(v.at), now);
    const crls = list(v.crl).flatMap((f) => {
      try {
        return fromPemAll(readInputText(f, 'CRL'), 'X509 CRL');
      } catch (err) {
        if (err instanceof CliError) throw err;
        throw new CliError(`Cannot read CRL "${f}": ${(err as Error).message}`, EXIT.dataErr);
      }
    });
    if (str(v.bundle)) {
      const minSerial = str(v['min-serial']);
      if (minSerial !== undefined && !/^\d+$/.test(minSerial))
        throw new CliError(`Cannot use --min-serial "${minSerial}": not a non-negative integer`, EXIT.usage);
      const r = verifyBundle(readInputText(str(v.bundle) as string, 'bundle'), {
        domain: need(v.domain, 'domain'),
        roots,
        crls,
        time,
        ...(minSerial !== undefined ? { minSerial: Number(minSerial) } : {}),
      });
      (r.status === 'valid' ? io.out : io.err)(`${r.status}: ${r.message}`);
      return r.status === 'valid' ? EXIT.ok : EXIT.failure;
    }
    const use = (str(v.use) ?? 'any') as IntendedUse;
    if (!INTENDED_USES.includes(use)) throw new CliError(`Cannot use --use "${use}": one of ${INTENDED_USES.join(', ')}`, EXIT.usage);
    const roles = list(v.role);
    for (const r of roles)
      if (!ROLES.includes(r as Role)) throw new CliError(`Cannot use --role "${r}": one of ${ROLES.join(', ')}`, EXIT.usage);
    const r = validateCertificate({
      leaf: readInputText(need(v.cert, 'cert'), 'certificate'),
      intermediates: list(v.chain).flatMap(certificatesInFile),
      roots,
      crls,
      use,
      time,
      ...(roles.length > 0 ? { roles: roles as Role[] } : {}),
    });
    (r.status === 'valid' ? io.out : io.err)(`${r.status}: ${r.message}`);
    return r.status === 'valid' ? EXIT.ok : EXIT.failure;
  },
};

const SUBCOMMANDS: Record<string, Sub> = { 'init-root': initRoot, 'init-org': initOrg, issue, revoke, crl, bundle, verify: verifyCmd };

function groupUsage(): string {
  const width = Math.max(...Object.keys(SUBCOMMANDS).map((n) => n.length));
  return [
    'Usage: ssmax ca <subcommand> [options]',
    '',
    'Subcommands:',
    ...Object.entries(SUBCOMMANDS).map(([n, s]) => `  ${n.padEnd(width)}  ${s.summary}`),
    '',
    'Run `ssmax ca <subcommand> --help` for its options.',
  ].join('\n');
}

/** Runs one subcommand; `now` is injectable for tests (the CLI passes the real time). */
export async function runCa(argv: string[], io: CliIo, now: Date = new Date()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(groupUsage());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const sub = SUBCOMMANDS[name];
  if (!sub) {
    io.err(`ssmax ca: unknown subcommand "${name}"\n\n${groupUsage()}`);
    return EXIT.usage;
  }
  let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options: sub.options, allowPositionals: sub.positionals === true, strict: true }) as typeof parsed;
  } catch (err) {
    throw new CliError(`${(err as Error).message.replace(/\.$/, '')}\n\n${sub.usage}`, EXIT.usage);
  }
  if (parsed.values.help === true) {
    io.out(sub.usage);
    return EXIT.ok;
  }
  try {
    return await sub.run(parsed.values, parsed.positionals, io, now);
  } catch (err) {
    if (err instanceof CliError) throw err;
    // Library refusals (profile checks) are the user's input problems: report them as they are.
    throw new CliError(err instanceof Error ? err.message : String(err), EXIT.dataErr);
  }
}

export const caCommand: CommandGroup = {
  summary: 'Certificate authority: root, organisation CAs, certificates, CRLs, bundles',
  run: (argv, io) => runCa(argv, io),
};
