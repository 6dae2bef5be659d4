/**
 * `ssmax setup`: provisions one organisation into a folder, from its org CA
 * (an `ssmax ca init-org` directory certified by an SSMAX root) and the
 * root's CRL. One sub-folder per service, so that on one host everything runs
 * from the folder, and split across hosts each host gets `pki/` and its own
 * sub-folder (docs/deploy.md):
 *
 *   pki/        public material every service reads: root.pem, org-ca.pem, the CRLs, seal.cert.pem
 *   keyd/       keyd.ini, keyd's TLS server certificate, master key, the org CA key (keyd certifies
 *               the organisation's encryption keys), data/
 *   publisher/  publisher.ini, its TLS certificate with the chain, bundle signer, admin client certificate
 *   gateway/    the Haraka folder (made first by `haraka -i`): config/plugins (auth/flat_file, ssmax;
 *               haraka -i's conflicting defaults off), listen in smtp.ini, me, ssmax.ini,
 *               auth_flat_file.ini, the inspection rules, config/pki/ (gateway, seal, inspector keys)
 *   inspector/  (inspection=remote) inspector.ini, its certificate and rules
 *   admin/      ssmax-abuse.ini for `ssmax registry` and `ssmax abuse`, admin client certificate
 *
 * Every ini file is the shipped one (config/*.ini: every key and its default)
 * with the organisation's values set. Private keys are written 0600. Nothing
 * is overwritten without `force`.
 */
import { isLoopbackAddress } from '../net/loopback';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { generateP256KeyPair } from '../crypto/ecdsa';
import { createMasterKeyFile, loadMasterKey } from '../keyd/master-key';
import { wrapOrgCaKey } from '../keyd/org-ca-key';
import { parseCertificate } from '../pki/certificate';
import { type CaState, CaStateError, legacyCrlNumber, readCaState, recordedRevocations, updateCaState } from '../pki/ca-state';
import { writeFileAtomic } from '../fs/atomic';
import { ensurePrivateFolder, writeSecretFile } from '../fs/secret-file';
import { type ParsedCrl, createCrl, crlIssuedBy, crlSuccessor, parseCrl } from '../pki/crl';
import { type SigningAuthority, issueBundleSignerCertificate, issueSealingCertificate } from '../pki/issue';
import { privateKeyFromPem, privateKeyToPem } from '../pki/keys';
import type { Role } from '../pki/oids';
import { fromPemAll } from '../pki/pem';
import { issueTlsCredentials } from '../pki/tls-credentials';
import { cannotRead } from '../errors/errno';
import { HostPortError, parseHostPort } from '../config/host-port';

const DAY = 86_400_000;
/** The shipped config files (config/ of the checkout or of the installed package). */
export const SHIPPED_CONFIG = resolve(__dirname, '..', '..', 'config');

/** The folders of this layout that hold private keys (set 0700); Haraka's own config/ is left as `haraka -i` made it. */
const KEY_FOLDERS = new Set(['keyd', 'publisher', 'admin', 'inspector', join('gateway', 'config', 'pki')]);

export class SetupError extends Error {
  constructor(
    message: string,
    readonly kind: 'usage' | 'input' | 'missing' | 'exists' | 'busy' = 'input',
  ) {
    super(message);
  }
}

export interface SetupOptions {
  /** Output folder (created). */
  readonly dir: string;
  readonly domain: string;
  /** The org CA directory (`ssmax ca init-org`: ca.cert.pem, ca.key.pem, chain.pem, ca.json). */
  readonly orgCaDir: string;
  readonly orgCaPassphrase?: string;
  /** The file orgCaPassphrase came from: ssmax-abuse.ini's [registry] ca_passphrase_file, so `ssmax registry` can sign with the key. */
  readonly orgCaPassphraseFile?: string;
  /** The SSMAX root's current CRL (from the root's operator: `ssmax ca crl --ca ROOT`). */
  readonly rootCrl: string;
  /** keyd's listen address; default 127.0.0.1:7443. */
  readonly keydListen?: string;
  /**
   * The loopback health and metrics listeners ([ops] listen, docs/operations.md): gateway on this
   * port, keyd +1, publisher +2, inspector +3 (the compose healthchecks use 9520). Absent: none.
   */
  readonly opsPort?: number;
  /** How the other services reach keyd; default https://<keydListen>. Its certificate names keyd.<domain>. */
  readonly keydUrl?: string;
  /** The publisher's listen address; default 0.0.0.0:443. */
  readonly publisherListen?: string;
  /** The gateway's SMTP listen address; default [::0]:25. */
  readonly smtpListen?: string;
  /** Inspection in the gateway (inline, default) or in a separate inspector process (remote). */
  readonly inspection?: 'inline' | 'remote';
  /** The inspector's listen address (remote); default 127.0.0.1:7543. */
  readonly inspectorListen?: string;
  /** How the gateway reaches the inspector (remote); default https://<inspectorListen>. */
  readonly inspectorUrl?: string;
  /** The mailbox store the gateway delivers local mail to (host:port); default 127.0.0.1:2525. */
  readonly delivery?: string;
  /** How: smtp (default; Postfix, any SMTP server) or lmtp (Dovecot's LMTP service). */
  readonly deliveryProtocol?: 'smtp' | 'lmtp';
  /** Accept a `delivery` host that is not a loopback address ([delivery] allow_plaintext_over_network=true). */
  readonly deliveryOverNetwork?: boolean;
  /** Static peers (domain → bundle URL), fixed addresses of host names, next hops (closed networks without DNS). */
  readonly peers?: Readonly<Record<string, string>>;
  readonly hosts?: Readonly<Record<string, string>>;
  readonly routes?: Readonly<Record<string, string>>;
  /** Validity of the certificates issued, days (clamped to the org CA's); default 365. */
  readonly days?: number;
  readonly force?: boolean;
  readonly now?: Date;
}

export interface SetupResult {
  readonly dir: string;
  readonly files: readonly string[];
  /** What to do next, for the operator. */
  readonly next: string;
}

/**
 * Sets keys of one section of a shipped ini file: an existing line for the key
 * (commented `;key=` or not) is replaced; otherwise the line is added at the
 * end of the section (which is added when missing).
 */
export function setIniKeys(text: string, section: string, values: Readonly<Record<string, string>>): string {
  const lines = text.split('\n');
  let start = lines.findIndex((l) => l.trim() === `[${section}]`);
  if (start < 0) {
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    lines.push('', `[${section}]`, '');
    start = lines.length - 2;
  }
  let end = lines.findIndex((l, i) => i > start && /^\s*\[[^\]]+\]\s*$/.test(l));
  if (end < 0) end = lines.length;
  const escape = (k: string) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const [key, value] of Object.entries(values)) {
    const re = new RegExp(`^\\s*;?\\s*${escape(key)}\\s*=`);
    const at = lines.findIndex((l, i) => i > start && i < end && re.test(l));
    if (at >= 0) lines[at] = `${key}=${value}`;
    else {
      let insert = end;
      while (insert > start + 1 && lines[insert - 1]!.trim() === '') insert--;
      lines.splice(insert, 0, `${key}=${value}`);
      end++;
    }
  }
  return lines.join('\n');
}

/** haraka -i's defaults that would answer in the ssmax plugin's place. */
const CONFLICTING = ['mail_from.is_resolvable', 'rcpt_to.in_host_list', 'queue/smtp_forward'];

/**
 * The Haraka folder made by `haraka -i`: its config files are Haraka's own (a file written here
 * replaces Haraka's whole), so they are edited, not replaced: config/plugins (the conflicting
 * defaults commented out; auth/flat_file and ssmax last), listen in config/smtp.ini, config/me, and
 * spool_after=-1 in config/connection.ini.
 */
function harakaConfig(harakaDir: string, smtpListen: string, domain: string): void {
  const cfg = join(harakaDir, 'config');
  const pluginsFile = join(cfg, 'plugins');
  const lines = (existsSync(pluginsFile) ? readFileSync(pluginsFile, 'utf8') : '')
    .split('\n')
    .map((l) => (CONFLICTING.includes(l.trim()) ? `# ${l.trim()}   (off: the ssmax plugin answers instead)` : l))
    .filter((l) => l.trim() !== 'auth/flat_file' && l.trim() !== 'ssmax');
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  lines.push(
    '',
    '# ssmax setup: relaying needs authentication (auth/flat_file, users in auth_flat_file.ini;',
    '# any Haraka auth plugin works), then the ssmax gateway',
    'auth/flat_file',
    'ssmax',
    '',
  );
  writeFileSync(pluginsFile, lines.join('\n'));
  const smtpFile = join(cfg, 'smtp.ini');
  const smtp = (existsSync(smtpFile) ? readFileSync(smtpFile, 'utf8') : '').split('\n').filter((l) => !/^\s*listen\s*=/.test(l));
  writeFileSync(smtpFile, [`listen=${smtpListen}`, ...smtp].join('\n'));
  writeFileSync(join(cfg, 'me'), `mx.${domain}\n`);
  // messages stay in memory while received (a plain client's submission is plaintext): never spooled to
  // spool_dir, whatever [max] bytes is raised to (docs/inspection.md); the README's block does the same
  const connFile = join(cfg, 'connection.ini');
  const connLines = (existsSync(connFile) ? readFileSync(connFile, 'utf8') : '').split('\n');
  const isSpool = (l: string) => /^\s*;?\s*spool_after\s*=/.test(l);
  const first = connLines.findIndex(isSpool);
  const conn = connLines.filter((l) => !isSpool(l));
  conn.splice(Math.max(first, 0), 0, 'spool_after=-1'); // where haraka -i's commented one was, else first ([main])
  writeFileSync(connFile, conn.join('\n'));
}

/** A host:port option (src/config/host-port.ts), the port from 1; a usage error naming the option otherwise. */
function hostPort(v: string, what: string): { host: string; port: number } {
  try {
    return parseHostPort(v, 1);
  } catch (err) {
    if (err instanceof HostPortError) throw new SetupError(`${what} ${err.message}`, 'usage');
    throw err;
  }
}

/** The organisation's own bundle URL (by name), and the publisher's address when it listens on a fixed IP. */
function ownBundle(domain: string, publisherListen: string): { url: string; address?: string } {
  const { host, port } = hostPort(publisherListen, '--publisher-listen');
  const url = `https://ssmax.${domain}${port === 443 ? '' : `:${port}`}/.well-known/ssmax/bundle`;
  const wildcard = host === '0.0.0.0' || host === '::' || host === '::0';
  return isIP(host) && !wildcard ? { url, address: host } : { url };
}

function urlOf(listen: string, what: string): string {
  const { host, port } = hostPort(listen, what);
  const h = host === '0.0.0.0' || host === '::0' || host === '::' ? '127.0.0.1' : host;
  return `https://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

function readFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new SetupError(cannotRead(what, path, err), 'missing');
  }
}

/** Loads the org CA directory: its authority, the root certificate (chain.pem), and its CRL number. */
function loadOrgCa(dir: string, passphrase?: string): { ca: SigningAuthority; rootPem: string; state: CaState } {
  let certificate;
  try {
    certificate = parseCertificate(readFile(join(dir, 'ca.cert.pem'), 'org CA certificate'));
  } catch (err) {
    if (err instanceof SetupError) throw err;
    throw new SetupError(`Cannot read the org CA certificate "${join(dir, 'ca.cert.pem')}": ${(err as Error).message}`);
  }
  let privateKey;
  try {
    privateKey = privateKeyFromPem(readFile(join(dir, 'ca.key.pem'), 'org CA key'), passphrase);
  } catch (err) {
    if (err instanceof SetupError) throw err;
    throw new SetupError(`Cannot read the org CA key "${join(dir, 'ca.key.pem')}": ${(err as Error).message}`);
  }
  const chain = fromPemAll(readFile(join(dir, 'chain.pem'), 'org CA chain'), 'CERTIFICATE').map((der) => parseCertificate(der));
  const root = chain[chain.length - 1];
  if (chain.length < 2 || !root || root.subject === certificate.subject)
    throw new SetupError(
      `"${join(dir, 'chain.pem')}" does not end with the SSMAX root certificate (make the org CA with ssmax ca init-org)`,
    );
  let state: CaState;
  try {
    state = readCaState(dir);
  } catch (err) {
    if (err instanceof CaStateError)
      throw new SetupError(`Cannot use the org CA: ${err.message}`, err.reason === 'busy' ? 'busy' : 'input');
    throw err;
  }
  if (state.kind !== 'org') throw new SetupError(`"${dir}" is not an organisation CA (ca.json kind is "${String(state.kind)}")`);
  return { ca: { certificate, privateKey }, rootPem: root.pem, state };
}

export async function setupOrganisation(opts: SetupOptions): Promise<SetupResult> {
  const now = opts.now ?? new Date();
  const domain = opts.domain.toLowerCase();
  if (!/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/.test(domain))
    throw new SetupError(`--domain "${opts.domain}" is not a domain name`, 'usage');
  const dir = resolve(opts.dir);
  const orgCaDir = resolve(opts.orgCaDir);
  const keydListen = opts.keydListen ?? '127.0.0.1:7443';
  const keydUrl = opts.keydUrl ?? urlOf(keydListen, '--keyd-listen');
  const publisherListen = opts.publisherListen ?? '0.0.0.0:443';
  const smtpListen = opts.smtpListen ?? '[::0]:25';
  const inspection = opts.inspection ?? 'inline';
  const inspectorListen = opts.inspectorListen ?? '127.0.0.1:7543';
  const inspectorUrl = opts.inspectorUrl ?? urlOf(inspectorListen, '--inspector-listen');
  const delivery = opts.delivery ?? '127.0.0.1:2525';
  for (const [v, what] of [
    [keydListen, '--keyd-listen'],
    [publisherListen, '--publisher-listen'],
    [smtpListen, '--smtp-listen'],
    [inspectorListen, '--inspector-listen'],
  ] as const)
    hostPort(v, what);
  // the gateway refuses a store off this machine at start (src/gateway/config.ts): said here, before anything is written
  const deliveryOverNetwork = !isLoopbackAddress(hostPort(delivery, '--delivery').host);
  if (deliveryOverNetwork && opts.deliveryOverNetwork !== true)
    throw new SetupError(
      `--delivery ${delivery} is not a loopback address: the gateway hands the mailbox store the decrypted copies for users without an SSMAX client in cleartext, which would cross the network; use a store (or a relay to it) on the gateway's machine, or add --delivery-over-network to accept that (docs/delivery.md)`,
      'usage',
    );
  for (const [v, what] of [
    [keydUrl, '--keyd-url'],
    [inspectorUrl, '--inspector-url'],
  ] as const)
    if (!/^https:\/\/[^/]+\/?$/.test(v)) throw new SetupError(`${what} must be https://host:port (got "${v}")`, 'usage');

  const { ca, rootPem } = loadOrgCa(orgCaDir, opts.orgCaPassphrase);
  const rootCrlPem = readFile(resolve(opts.rootCrl), 'root CRL');
  if (!/-----BEGIN X509 CRL-----/.test(rootCrlPem)) throw new SetupError(`"${opts.rootCrl}" is not a CRL (PEM "X509 CRL")`);
  const caPem = ca.certificate.pem;
  const harakaDir = join(dir, 'gateway');
  if (!existsSync(join(harakaDir, 'config', 'connection.ini'))) {
    throw new SetupError(
      `No Haraka folder at "${harakaDir}": make it first with "haraka -i ${harakaDir}" (ssmax setup adds to Haraka's own config files)`,
      'missing',
    );
  }

  const files: string[] = [];
  const write = (rel: string, text: string, secret = false) => {
    const path = join(dir, rel);
    if (existsSync(path) && !opts.force)
      throw new SetupError(`Cannot write "${path}": the file exists (use --force to replace it)`, 'exists');
    // setup's own folders for private keys are 0700 whatever the umask, also when they exist (not Haraka's config/)
    if (KEY_FOLDERS.has(dirname(rel))) ensurePrivateFolder(dirname(path));
    else mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // a secret: a new 0600 file renamed over the path (with --force an existing file or symlink is replaced, never written into)
    if (secret) writeSecretFile(path, text);
    else writeFileAtomic(path, text, 0o644); // read meanwhile (keyd's CRL, a running gateway's files): never half written
    files.push(rel);
  };
  const shipped = (name: string) => readFile(join(SHIPPED_CONFIG, name), 'shipped config file');
  const s = Math.floor(now.getTime() / 1000) * 1000;
  const validity = {
    notBefore: new Date(Math.max(s - 3_600_000, ca.certificate.notBefore.getTime())),
    notAfter: new Date(Math.min(s + (opts.days ?? 365) * DAY, ca.certificate.notAfter.getTime())),
  };
  const tls = (role: Role, hosts?: string[]) => issueTlsCredentials(ca, role, validity, hosts);

  // pki/: public material; the org CA's first CRL (the CA's state records its number)
  // one CRL counter: the number in the CA's crl.pem (keyd's renewals and ssmax ca crl continue it); ca.json's is a legacy floor
  // numbered and written under the CA folder's lock (src/pki/ca-state.ts), as ssmax ca crl does: no CRL number twice
  const caCrl = join(orgCaDir, 'crl.pem');
  const keydCrl = join(dir, 'pki', 'org-ca.crl.pem');
  try {
    await updateCaState(orgCaDir, (state) => {
      // every CRL of this CA: its crl.pem, keyd's copy here (a setup run again with --force: keyd renews and revokes into
      // it) and the copies ca.json names — their revocations kept, numbered above them all, as ssmax ca crl does
      const files = [...new Set([caCrl, keydCrl, ...(state.crlCopies ?? [])])];
      const current: ParsedCrl[] = [];
      for (const f of files) {
        if (!existsSync(f)) continue;
        let crl: ParsedCrl;
        try {
          crl = parseCrl(readFileSync(f, 'utf8'));
        } catch {
          continue; // not a CRL (a file setup will replace): nothing of it to keep
        }
        if (crlIssuedBy(crl, ca.certificate.subjectDer)) current.push(crl);
      }
      // the new CRL keeps every revocation the CA made (ca.json and every CRL above): a higher number replaces the older CRL everywhere
      const { crlNumber, entries } = crlSuccessor(current, recordedRevocations(state), legacyCrlNumber(state));
      const orgCrl = createCrl(ca, { entries, thisUpdate: new Date(s), nextUpdate: new Date(s + 7 * DAY), crlNumber });
      write('pki/root.pem', rootPem);
      write('pki/org-ca.pem', caPem);
      write('pki/org-ca.crl.pem', orgCrl.pem);
      write('pki/root.crl.pem', rootCrlPem);
      // the CA folder learns where keyd's copy of its CRL is: ssmax ca crl merges it (revocations keyd made, its number)
      state.crlCopies = [...new Set([...(state.crlCopies ?? []), keydCrl])];
      writeFileAtomic(caCrl, orgCrl.pem);
    });
  } catch (err) {
    if (err instanceof CaStateError)
      throw new SetupError(`Cannot use the org CA: ${err.message}`, err.reason === 'busy' ? 'busy' : 'input');
    throw err;
  }
  const seal = generateP256KeyPair();
  write('pki/seal.cert.pem', issueSealingCertificate(ca, { ...validity, domain, host: `mx.${domain}`, publicKey: seal.publicKey }).pem);

  // keyd/
  const keydTls = tls('keyd', [`keyd.${domain}`]);
  write('keyd/keyd.pem', keydTls.cert + caPem);
  write('keyd/keyd.key', keydTls.key, true);
  // an existing master key is never replaced, not even with force: keyd's stored keys are sealed with it
  const masterKey = join(dir, 'keyd', 'master.key');
  if (!existsSync(masterKey)) {
    mkdirSync(join(dir, 'keyd'), { recursive: true, mode: 0o700 });
    createMasterKeyFile(masterKey);
    files.push('keyd/master.key');
  }
  // keyd's copy of the org CA key is a private key at rest: encrypted under the master key (src/keyd/org-ca-key.ts)
  write('keyd/org-ca.key', wrapOrgCaKey(ca.privateKey, loadMasterKey(masterKey)), true);
  let keydIni = shipped('ssmax-keyd.ini');
  keydIni = setIniKeys(keydIni, 'keyd', { domain, listen: keydListen, data_dir: 'data', master_key: 'master.key' });
  keydIni = setIniKeys(keydIni, 'tls', { cert: 'keyd.pem', key: 'keyd.key', client_ca: '../pki/org-ca.pem,../pki/root.pem' });
  keydIni = setIniKeys(keydIni, 'pki', {
    roots: '../pki/root.pem',
    crls: '../pki/org-ca.crl.pem,../pki/root.crl.pem',
    org_ca: '../pki/org-ca.pem',
    org_ca_cert: '../pki/org-ca.pem',
    org_ca_key: 'org-ca.key',
  });
  // health and metrics on loopback (docs/operations.md); the compose healthchecks call /health/ready there
  if (opts.opsPort) keydIni = setIniKeys(keydIni, 'ops', { listen: `127.0.0.1:${opts.opsPort + 1}` });
  write('keyd/keyd.ini', keydIni);

  const keydClient = { url: keydUrl, servername: `keyd.${domain}` };
  // publisher/
  const pubTls = tls('keyd', [`ssmax.${domain}`]);
  write('publisher/publisher.pem', pubTls.cert + caPem + rootPem);
  write('publisher/publisher.key', pubTls.key, true);
  const signer = generateP256KeyPair();
  write('publisher/signer.cert.pem', issueBundleSignerCertificate(ca, { ...validity, domain, publicKey: signer.publicKey }).pem);
  write('publisher/signer.key.pem', privateKeyToPem(signer.privateKey), true);
  const admin = tls('admin');
  write('publisher/admin.pem', admin.cert);
  write('publisher/admin.key', admin.key, true);
  let pubIni = shipped('ssmax-publisher.ini');
  pubIni = setIniKeys(pubIni, 'publisher', { domain, listen: publisherListen, state_file: 'publisher-state.json' });
  pubIni = setIniKeys(pubIni, 'tls', { cert: 'publisher.pem', key: 'publisher.key' });
  pubIni = setIniKeys(pubIni, 'signer', { cert: 'signer.cert.pem', key: 'signer.key.pem' });
  pubIni = setIniKeys(pubIni, 'keyd', { ...keydClient, cert: 'admin.pem', key: 'admin.key', ca: '../pki/org-ca.pem,../pki/root.pem' });
  pubIni = setIniKeys(pubIni, 'pki', {
    roots: '../pki/root.pem',
    org_ca_chain: '../pki/org-ca.pem',
    sealing_certificates: '../pki/seal.cert.pem',
    crls: '../pki/org-ca.crl.pem,../pki/root.crl.pem',
  });
  if (opts.opsPort) pubIni = setIniKeys(pubIni, 'ops', { listen: `127.0.0.1:${opts.opsPort + 2}` });
  write('publisher/publisher.ini', pubIni);

  // admin/: the operator's tools (ssmax registry, ssmax abuse)
  write('admin/admin.pem', admin.cert);
  write('admin/admin.key', admin.key, true);
  let abuseIni = shipped('ssmax-abuse.ini');
  abuseIni = setIniKeys(abuseIni, 'abuse', { domain, from: `abuse@${domain}` });
  abuseIni = setIniKeys(abuseIni, 'keyd', { ...keydClient, ca: '../pki/org-ca.pem,../pki/root.pem', cert: 'admin.pem', key: 'admin.key' });
  abuseIni = setIniKeys(abuseIni, 'registry', {
    ca_dir: orgCaDir,
    ...(opts.orgCaPassphraseFile !== undefined ? { ca_passphrase_file: resolve(opts.orgCaPassphraseFile) } : {}),
    crl: '../pki/org-ca.crl.pem',
    root: '../pki/root.pem',
  });
  abuseIni = setIniKeys(abuseIni, 'directory', { roots: '../pki/root.pem' });
  // this organisation's own bundle: resolve checks seal i=1 with it, and `registry add --profile` puts it in the profile
  const ownPub = ownBundle(domain, publisherListen);
  abuseIni = setIniKeys(abuseIni, 'peers', { [domain]: ownPub.url });
  if (ownPub.address ?? opts.hosts?.[`ssmax.${domain}`])
    abuseIni = setIniKeys(abuseIni, 'hosts', { [`ssmax.${domain}`]: (opts.hosts?.[`ssmax.${domain}`] ?? ownPub.address) as string });
  write('admin/ssmax-abuse.ini', abuseIni);

  // gateway/: the Haraka folder
  const gw = tls('gateway', [`mx.${domain}`]);
  write('gateway/config/pki/gateway.pem', gw.cert);
  write('gateway/config/pki/gateway.key', gw.key, true);
  write('gateway/config/pki/seal.key.pem', privateKeyToPem(seal.privateKey), true);
  const inspector = tls('inspector', [`inspect.${domain}`]);
  if (inspection === 'inline') {
    write('gateway/config/pki/inspector.pem', inspector.cert);
    write('gateway/config/pki/inspector.key', inspector.key, true);
    write('gateway/config/ssmax-inspect.ini', shipped('ssmax-inspect.ini'));
    write('gateway/config/ssmax-dlp.ini', shipped('ssmax-dlp.ini'));
  }
  const shared = (f: string) => `../../pki/${f}`;
  let gwIni = shipped('ssmax.ini');
  gwIni = setIniKeys(gwIni, 'main', { domain });
  gwIni = setIniKeys(gwIni, 'keyd', {
    ...keydClient,
    ca: `${shared('org-ca.pem')},${shared('root.pem')}`,
    cert: 'pki/gateway.pem',
    key: 'pki/gateway.key',
    ...(inspection === 'inline' ? { inspector_cert: 'pki/inspector.pem', inspector_key: 'pki/inspector.key' } : {}),
  });
  gwIni = setIniKeys(gwIni, 'seal', { cert: shared('seal.cert.pem'), key: 'pki/seal.key.pem' });
  gwIni = setIniKeys(gwIni, 'pki', { roots: shared('root.pem'), crls: `${shared('org-ca.crl.pem')},${shared('root.crl.pem')}` });
  gwIni = setIniKeys(
    gwIni,
    'inspection',
    inspection === 'remote'
      ? { mode: 'remote', inspector_url: inspectorUrl, inspector_servername: `inspect.${domain}` }
      : { mode: 'inline' },
  );
  gwIni = setIniKeys(gwIni, 'delivery', {
    host: delivery,
    ...(opts.deliveryProtocol ? { protocol: opts.deliveryProtocol } : {}),
    ...(deliveryOverNetwork ? { allow_plaintext_over_network: 'true' } : {}),
  });
  // The gateway checks keyd's proofs against its own organisation's bundle (docs/security.md): it reaches its
  // own publisher directly, by name, and at the publisher's address when that is a fixed IP.
  const own = ownBundle(domain, publisherListen);
  gwIni = setIniKeys(gwIni, 'peers', { ...opts.peers, [domain]: own.url });
  const hosts = { ...(own.address ? { [`ssmax.${domain}`]: own.address } : {}), ...opts.hosts };
  if (Object.keys(hosts).length > 0) gwIni = setIniKeys(gwIni, 'hosts', hosts);
  if (opts.routes && Object.keys(opts.routes).length > 0) gwIni = setIniKeys(gwIni, 'routes', opts.routes);
  if (opts.opsPort) gwIni = setIniKeys(gwIni, 'ops', { listen: `127.0.0.1:${opts.opsPort}` });
  write('gateway/config/ssmax.ini', gwIni);
  harakaConfig(harakaDir, smtpListen, domain);
  write(
    'gateway/config/auth_flat_file.ini',
    [
      '; Users who may relay through the gateway (SMTP AUTH). Add one line per user:',
      '; address=password (or use another Haraka auth plugin in config/plugins).',
      '[core]',
      'methods=PLAIN,LOGIN',
      "; Haraka's check of the envelope sender's domain; the gateway itself lets a user send only as",
      '; the address they log in with (From and envelope sender), so each login is an address',
      'constrain_sender=true',
      '',
      '[users]',
      '',
    ].join('\n'),
    true,
  );
  // Haraka's TLS files (its tls plugin, and its outbound as a client): the gateway certificate with its
  // chain. STARTTLS is offered once `tls` is added at the top of config/plugins; mail clients of other
  // networks need a certificate they trust (a public CA's) in these two files instead.
  write('gateway/config/tls_cert.pem', gw.cert + caPem + rootPem);
  write('gateway/config/tls_key.pem', gw.key, true);

  // inspector/ (remote inspection)
  if (inspection === 'remote') {
    write('inspector/inspector.pem', inspector.cert + caPem);
    write('inspector/inspector.key', inspector.key, true);
    write('inspector/ssmax-inspect.ini', shipped('ssmax-inspect.ini'));
    write('inspector/ssmax-dlp.ini', shipped('ssmax-dlp.ini'));
    let insIni = shipped('ssmax-inspector.ini');
    insIni = setIniKeys(insIni, 'inspector', { domain, listen: inspectorListen, state_dir: 'state' });
    insIni = setIniKeys(insIni, 'tls', { cert: 'inspector.pem', key: 'inspector.key', client_ca: '../pki/org-ca.pem,../pki/root.pem' });
    insIni = setIniKeys(insIni, 'pki', { roots: '../pki/root.pem', crls: '../pki/org-ca.crl.pem,../pki/root.crl.pem' });
    insIni = setIniKeys(insIni, 'keyd', {
      ...keydClient,
      ca: '../pki/org-ca.pem,../pki/root.pem',
      cert: 'inspector.pem',
      key: 'inspector.key',
    });
    insIni = setIniKeys(insIni, 'inspection', { inspect: 'ssmax-inspect.ini', dlp_rules: 'ssmax-dlp.ini' });
    const own = ownBundle(domain, publisherListen);
    const address = opts.hosts?.[`ssmax.${domain}`] ?? own.address;
    insIni = setIniKeys(insIni, 'bundle', { url: own.url, ...(address ? { address } : {}) });
    if (opts.opsPort) insIni = setIniKeys(insIni, 'ops', { listen: `127.0.0.1:${opts.opsPort + 3}` });
    write('inspector/inspector.ini', insIni);
  }

  // the paths below as --dir was given: absolute stays absolute; relative ones are relative to this folder
  const d = isAbsolute(opts.dir) ? dir : relative(process.cwd(), dir) || '.';
  const { port: pubPort } = hostPort(publisherListen, '--publisher-listen');
  const next = [
    `Organisation ${domain} provisioned in ${d}.`,
    '',
    isAbsolute(opts.dir)
      ? 'Next (absolute paths, as --dir was given):'
      : `Next (paths relative to ${process.cwd()}, where ssmax setup ran, as --dir was given):`,
    `  1. start keyd:         ssmax keyd run --config ${d}/keyd/keyd.ini`,
    `  2. start the publisher: ssmax publish --config ${d}/publisher/publisher.ini`,
    ...(inspection === 'remote' ? [`     start the inspector: ssmax inspector run --config ${d}/inspector/inspector.ini`] : []),
    `  3. users who may relay: add address=password lines to ${d}/gateway/config/auth_flat_file.ini, and register each at keyd:`,
    `       ssmax registry add --config ${d}/admin/ssmax-abuse.ini ADDRESS --code CODE --identity-ref REF --plain`,
    `     (an SSMAX client user: --profile DIR instead of --plain; docs/deploy.md, "Users")`,
    `  4. start the gateway (haraka-plugin-ssmax installed beside Haraka): haraka -c ${d}/gateway`,
    `     local mail goes to the mailbox store at ${delivery} (${opts.deliveryProtocol ?? 'smtp'}), which must be running: docs/deploy.md`,
    `  5. DNS: MX ${domain} -> mx.${domain}; A/AAAA for mx.${domain} and ssmax.${domain}; and`,
    `       _ssmax.${domain}. TXT "v=ssmax1; u=https://ssmax.${domain}${pubPort === 443 ? '' : `:${pubPort}`}/.well-known/ssmax/bundle"`,
    `  Split across hosts: copy ${d}/pki with each of keyd/, publisher/, gateway/${inspection === 'remote' ? ', inspector/' : ''} to its host (same layout);`,
    `  keyd/org-ca.key and keyd/master.key stay on the keyd host only. docs/deploy.md has the whole walkthrough.`,
  ].join('\n');
  return { dir, files, next };
}
