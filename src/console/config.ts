/**
 * `ssmax console`'s configuration: an ini file (config/ssmax-console.ini lists
 * every key with its default; docs/console.md). Relative paths are resolved
 * against the file's folder; every value is checked at startup, with an error
 * naming the key.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'ini';

export interface ConsoleConfig {
  readonly file: string;
  readonly domain: string;
  readonly host: string;
  readonly port: number;
  /** Minutes a session lives after its last request. */
  readonly sessionMinutes: number;
  /** The console's server certificate chain and key (PEM text), and the CAs whose client certificates TLS accepts. */
  readonly tls: { readonly cert: string; readonly key: string; readonly clientCas: readonly string[] };
  /** Validation of administrators' certificates: roots, CRL files (read on each new connection), the organisation's CA. */
  readonly pki: { readonly roots: readonly string[]; readonly crlFiles: readonly string[]; readonly orgCa: string };
  readonly keyd: { readonly url: string; readonly servername?: string; readonly ca: readonly string[]; readonly cert: string; readonly key: string; readonly timeoutMs: number };
  /** Operations listeners (http://host:port) of each service; absent: shown as not configured. */
  readonly ops: Readonly<Partial<Record<'gateway' | 'keyd' | 'publisher' | 'inspector', string>>>;
  /** The gateway's quarantine folder and where a release is re-injected; absent: the page says so. */
  readonly quarantine?: {
    readonly dir: string; readonly smtpHost: string; readonly smtpPort: number; readonly user?: string; readonly passwordFile?: string;
    /** An inspector-role certificate and key (PEM) for keyd's blinded decryption: only with it may an administrator see a held message's content. */
    readonly inspector?: { readonly cert: string; readonly key: string };
  };
  /** An ssmax-directory.ini whose cache_dir is the gateway's directory cache (peers page, refresh now); absent: peers from the gateway's metrics only. */
  readonly directoryConfig?: string;
}

export const CONSOLE_DEFAULTS = { listen: '127.0.0.1:8443', sessionMinutes: 30, keydTimeoutMs: 5000 } as const;

export class ConsoleConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConsoleConfigError';
  }
}

export function loadConsoleConfig(file: string): ConsoleConfig {
  const where = `Config "${file}"`;
  let ini: Record<string, Record<string, unknown>>;
  try {
    ini = parse(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>;
  } catch (err) {
    throw new ConsoleConfigError(`${where}: cannot read it (${(err as Error).message})`);
  }
  const base = dirname(resolve(file));
  const str = (section: string, key: string): string | undefined => {
    const v = ini[section]?.[key];
    return v === undefined || String(v).trim() === '' ? undefined : String(v).trim();
  };
  const need = (section: string, key: string): string => {
    const v = str(section, key);
    if (v === undefined) throw new ConsoleConfigError(`${where}: [${section}] ${key} is required`);
    return v;
  };
  const path = (p: string) => resolve(base, p);
  const read = (section: string, key: string, p: string) => {
    try {
      return readFileSync(path(p), 'utf8');
    } catch (err) {
      throw new ConsoleConfigError(`${where}: [${section}] ${key}: cannot read "${p}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  const list = (section: string, key: string) => need(section, key).split(',').map((s) => s.trim()).filter(Boolean);
  const hostPort = (section: string, key: string, v: string) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(v);
    if (!m || Number(m[2]) > 65535) throw new ConsoleConfigError(`${where}: [${section}] ${key} must be host:port (got "${v}")`);
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  };
  const int = (section: string, key: string, dflt: number, min: number, max: number) => {
    const v = str(section, key);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new ConsoleConfigError(`${where}: [${section}] ${key} must be an integer from ${min} to ${max} (got "${v}")`);
    return n;
  };
  const listen = hostPort('console', 'listen', str('console', 'listen') ?? CONSOLE_DEFAULTS.listen);
  const ops: Partial<Record<'gateway' | 'keyd' | 'publisher' | 'inspector', string>> = {};
  for (const svc of ['gateway', 'keyd', 'publisher', 'inspector'] as const) {
    const v = str('ops', svc);
    if (v === undefined) continue;
    const hp = hostPort('ops', svc, v);
    ops[svc] = `http://${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
  }
  let quarantine: ConsoleConfig['quarantine'];
  const qdir = str('quarantine', 'dir');
  if (qdir !== undefined) {
    const smtp = hostPort('quarantine', 'smtp', need('quarantine', 'smtp'));
    const user = str('quarantine', 'user');
    const passwordFile = str('quarantine', 'password_file');
    if ((user === undefined) !== (passwordFile === undefined)) throw new ConsoleConfigError(`${where}: [quarantine] user and password_file go together`);
    const inspectorCert = str('quarantine', 'inspector_cert');
    const inspectorKey = str('quarantine', 'inspector_key');
    if ((inspectorCert === undefined) !== (inspectorKey === undefined)) throw new ConsoleConfigError(`${where}: [quarantine] inspector_cert and inspector_key go together`);
    quarantine = {
      dir: path(qdir), smtpHost: smtp.host, smtpPort: smtp.port, ...(user ? { user, passwordFile: path(passwordFile!) } : {}),
      ...(inspectorCert ? { inspector: { cert: read('quarantine', 'inspector_cert', inspectorCert), key: read('quarantine', 'inspector_key', inspectorKey!) } } : {}),
    };
  }
  const servername = str('keyd', 'servername');
  const directoryConfig = str('peers', 'directory');
  return {
    file, domain: need('console', 'domain'), host: listen.host, port: listen.port,
    sessionMinutes: int('console', 'session_minutes', CONSOLE_DEFAULTS.sessionMinutes, 1, 24 * 60),
    tls: { cert: read('tls', 'cert', need('tls', 'cert')), key: read('tls', 'key', need('tls', 'key')), clientCas: list('tls', 'client_ca').map((p) => read('tls', 'client_ca', p)) },
    pki: { roots: list('pki', 'roots').map((p) => read('pki', 'roots', p)), crlFiles: list('pki', 'crls').map(path), orgCa: read('pki', 'org_ca', need('pki', 'org_ca')) },
    keyd: {
      url: need('keyd', 'url'), ...(servername ? { servername } : {}), ca: list('keyd', 'ca').map((p) => read('keyd', 'ca', p)),
      cert: read('keyd', 'cert', need('keyd', 'cert')), key: read('keyd', 'key', need('keyd', 'key')), timeoutMs: int('keyd', 'timeout_ms', CONSOLE_DEFAULTS.keydTimeoutMs, 100, 60000),
    },
    ops, ...(quarantine ? { quarantine } : {}), ...(directoryConfig ? { directoryConfig: path(directoryConfig) } : {}),
  };
}
