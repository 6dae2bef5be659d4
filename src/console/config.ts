/**
 * `ssmax console`'s configuration: an ini file (config/ssmax-console.ini lists
 * every key with its default; docs/console.md). Relative paths are resolved
 * against the file's folder; every value is checked at startup, with an error
 * naming the key, and so is every key and section (one the console does not
 * read is refused, named: src/config/ini.ts refuseUnknown).
 */
import { listenerSettings } from '../net/listener-limits';
import { resolve } from 'node:path';
import { formatHostPort } from '../config/host-port';
import { readCertificateFile } from '../config/setting-files';
import { ConfigError, IniReader, defineSettings, readIniFile, readSettingFile, refuseUnknown } from '../config/ini';
import { DEFAULT_RELEASE_LEASE_MS } from '../inspect/quarantine';
import { type KeydConnection, keydConnectionSettings, readKeydConnection } from '../keyd/client-settings';

export interface ConsoleConfig {
  readonly file: string;
  readonly domain: string;
  readonly host: string;
  readonly port: number;
  /** Minutes a session lives after its last request. */
  readonly sessionMinutes: number;
  /** The TLS handshake time and the cap on open connections (src/net/listener-limits.ts); absent: the defaults. */
  readonly listener?: { readonly handshakeTimeoutMs: number; readonly maxConnections: number };
  /** The console's server certificate chain and key (PEM text), and the CAs whose client certificates TLS accepts. */
  readonly tls: { readonly cert: string; readonly key: string; readonly clientCas: readonly string[] };
  /** Validation of administrators' certificates: roots, CRL files (checked on each new connection, read when changed: src/pki/crl-files.ts), the organisation's CA. */
  readonly pki: { readonly roots: readonly string[]; readonly crlFiles: readonly string[]; readonly orgCa: string };
  /** keyd, called with the console's own console-role certificate: `ca`, `cert` and `key` are the files' PEM text. */
  readonly keyd: KeydConnection;
  /** Operations listeners (http://host:port) of each service; absent: shown as not configured. */
  readonly ops: Readonly<Partial<Record<'gateway' | 'keyd' | 'publisher' | 'inspector', string>>>;
  /** The gateway's quarantine folder and where a release is re-injected; absent: the page says so. */
  readonly quarantine?: {
    readonly dir: string;
    readonly smtpHost: string;
    readonly smtpPort: number;
    readonly user?: string;
    readonly passwordFile?: string;
    /** STARTTLS to a gateway that is not on loopback (src/mail/release.ts): the CAs (PEM text) its certificate is verified with, and its name. */
    readonly smtpCa?: string;
    readonly smtpServername?: string;
    /** How long a release holds its entry before another may take it over (src/mail/release.ts). */
    readonly releaseLeaseMs: number;
    /** An inspector-role certificate and key (PEM) for keyd's blinded decryption: only with it may an administrator see a held message's content. */
    readonly inspector?: { readonly cert: string; readonly key: string };
  };
  /** An ssmax-directory.ini whose cache_dir is the gateway's directory cache (peers page, refresh now); absent: peers from the gateway's metrics only. */
  readonly directoryConfig?: string;
}

export const CONSOLE_DEFAULTS = {
  listen: '127.0.0.1:8443',
  sessionMinutes: 30,
  keydTimeoutMs: 5000,
  releaseLeaseSeconds: DEFAULT_RELEASE_LEASE_MS / 1000,
} as const;

/** The one configuration error (src/config/ini.ts), under the name this module always exported. */
export const ConsoleConfigError = ConfigError;
export type ConsoleConfigError = ConfigError;

/** The settings of the console's config file (read at start). */
export const CONSOLE_SETTINGS = defineSettings({
  'console.domain': { type: 'str' },
  'console.listen': { type: 'str', default: CONSOLE_DEFAULTS.listen },
  'console.session_minutes': { type: 'num', min: 1, max: 24 * 60, whole: true, default: CONSOLE_DEFAULTS.sessionMinutes },
  ...listenerSettings('console'),
  'tls.cert': { type: 'str' },
  'tls.key': { type: 'str' },
  'tls.client_ca': { type: 'list' },
  'pki.roots': { type: 'list' },
  'pki.crls': { type: 'list' },
  'pki.org_ca': { type: 'str' },
  ...keydConnectionSettings({ type: 'num', min: 100, max: 60000, whole: true, default: CONSOLE_DEFAULTS.keydTimeoutMs }),
  'ops.gateway': { type: 'str' },
  'ops.keyd': { type: 'str' },
  'ops.publisher': { type: 'str' },
  'ops.inspector': { type: 'str' },
  'quarantine.dir': { type: 'str' },
  'quarantine.smtp': { type: 'str' },
  'quarantine.user': { type: 'str' },
  'quarantine.password_file': { type: 'str' },
  'quarantine.smtp_ca': { type: 'list', default: [] },
  'quarantine.smtp_servername': { type: 'str' },
  'quarantine.release_lease_seconds': { type: 'num', min: 1, max: 86400, whole: true, default: CONSOLE_DEFAULTS.releaseLeaseSeconds },
  'quarantine.inspector_cert': { type: 'str' },
  'quarantine.inspector_key': { type: 'str' },
  'peers.directory': { type: 'str' },
});
type Name = keyof typeof CONSOLE_SETTINGS;

export function loadConsoleConfig(file: string): ConsoleConfig {
  const r = new IniReader(CONSOLE_SETTINGS, readIniFile(file, 'console config'), file);
  refuseUnknown(r); // a misspelt key or section stops the console, named
  const read = (name: Name, p: string) => readSettingFile(file, name, resolve(r.base, p));
  const file1 = (name: Name) => read(name, r.get(name) as string);
  const files = (name: Name) => (r.get(name) as string[]).map((p) => read(name, p));
  const listen = r.hostPort('console.listen');
  const ops: Partial<Record<'gateway' | 'keyd' | 'publisher' | 'inspector', string>> = {};
  for (const svc of ['gateway', 'keyd', 'publisher', 'inspector'] as const) {
    const v = r.opt(`ops.${svc}`);
    if (v === undefined) continue;
    ops[svc] = `http://${formatHostPort(r.hostPortOf(`ops.${svc}`, v, 1))}`;
  }
  let quarantine: ConsoleConfig['quarantine'];
  const qdir = r.optPath('quarantine.dir');
  if (qdir !== undefined) {
    const smtp = r.hostPort('quarantine.smtp', 1);
    const user = r.opt('quarantine.user');
    const passwordFile = r.optPath('quarantine.password_file');
    if ((user === undefined) !== (passwordFile === undefined))
      throw r.fail('quarantine', 'user', 'must be given together with password_file');
    const inspectorCert = r.opt('quarantine.inspector_cert');
    const inspectorKey = r.opt('quarantine.inspector_key');
    if ((inspectorCert === undefined) !== (inspectorKey === undefined))
      throw r.fail('quarantine', 'inspector_cert', 'must be given together with inspector_key');
    const smtpCa = (r.get('quarantine.smtp_ca') as string[]).map((p) =>
      readCertificateFile(file, 'quarantine.smtp_ca', resolve(r.base, p)),
    );
    const smtpServername = r.opt('quarantine.smtp_servername');
    quarantine = {
      dir: qdir,
      smtpHost: smtp.host,
      smtpPort: smtp.port,
      releaseLeaseMs: r.get('quarantine.release_lease_seconds') * 1000,
      ...(user ? { user, passwordFile: passwordFile! } : {}),
      ...(smtpCa.length > 0 ? { smtpCa: smtpCa.join('\n') } : {}),
      ...(smtpServername ? { smtpServername } : {}),
      ...(inspectorCert
        ? { inspector: { cert: read('quarantine.inspector_cert', inspectorCert), key: read('quarantine.inspector_key', inspectorKey!) } }
        : {}),
    };
  }
  const keyd = readKeydConnection(r);
  const directoryConfig = r.optPath('peers.directory');
  return {
    file,
    domain: r.get('console.domain'),
    host: listen.host,
    port: listen.port,
    sessionMinutes: r.get('console.session_minutes'),
    listener: { handshakeTimeoutMs: r.get('console.handshake_timeout_ms'), maxConnections: r.get('console.max_connections') },
    tls: { cert: file1('tls.cert'), key: file1('tls.key'), clientCas: files('tls.client_ca') },
    pki: { roots: files('pki.roots'), crlFiles: r.paths('pki.crls'), orgCa: file1('pki.org_ca') },
    keyd: {
      ...keyd,
      ca: keyd.ca.map((p) => read('keyd.ca', p)),
      cert: read('keyd.cert', keyd.cert),
      key: read('keyd.key', keyd.key),
    },
    ops,
    ...(quarantine ? { quarantine } : {}),
    ...(directoryConfig ? { directoryConfig } : {}),
  };
}
