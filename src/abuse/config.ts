/**
 * Configuration of the sender-tracking tools (`ssmax abuse`, `ssmax
 * registry`): one ini file, config/ssmax-abuse.ini, which lists every key
 * with its default. Relative paths are resolved against the file's folder;
 * every value is checked at load, with an error naming the key. The
 * `[directory]`, `[peers]`, `[hosts]` and `[tls]` sections are those of the
 * directory config (docs/directory.md) and are read by `loadDirectoryConfig`.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'ini';
import { KeydClient } from '../keyd/client';
import type { SubmitSettings } from './submit';

export class AbuseConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AbuseConfigError';
  }
}

export interface KeydSettings {
  readonly url: string;
  readonly servername?: string;
  readonly ca: readonly string[];
  /** Operator (admin role) client certificate and key files. */
  readonly cert?: string;
  readonly key?: string;
  /** Disclosure role client certificate and key files. */
  readonly disclosureCert?: string;
  readonly disclosureKey?: string;
  readonly timeoutMs: number;
}

export interface AbuseConfig {
  readonly file: string;
  /** This organisation's domain. */
  readonly domain?: string;
  /** From: of the reports this organisation sends. */
  readonly from?: string;
  readonly reportingMta?: string;
  readonly keyd?: KeydSettings;
  readonly submit?: SubmitSettings;
  readonly server: { readonly host: string; readonly port: number; readonly bearerTokenFile?: string; readonly maxBytes: number };
  /** Whether the file has a [directory] section (needed to verify chains and bundles). */
  readonly hasDirectory: boolean;
  readonly registry: {
    readonly caDir?: string;
    readonly caCert?: string;
    readonly caKey?: string;
    readonly caPassphraseFile?: string;
    readonly crl?: string;
    readonly crlDays: number;
    readonly root?: string;
    readonly bundle?: string;
    readonly profiles?: string;
    readonly certificateDays: number;
  };
}

type Section = Record<string, unknown>;

export function loadAbuseConfig(file: string): AbuseConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AbuseConfigError(`Cannot read config "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const ini = parse(text) as Record<string, Section>;
  const base = dirname(resolve(file));
  const bad = (s: string, k: string, why: string) => new AbuseConfigError(`Config "${file}": [${s}] ${k} ${why}`);
  const opt = (s: string, k: string): string | undefined => {
    const v = (ini[s] ?? {})[k];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const path = (s: string, k: string): string | undefined => {
    const v = opt(s, k);
    return v === undefined ? undefined : resolve(base, v);
  };
  const num = (s: string, k: string, dflt: number, min: number, max: number): number => {
    const raw = opt(s, k);
    const v = raw === undefined ? dflt : Number(raw);
    if (!Number.isInteger(v) || v < min || v > max) throw bad(s, k, `must be a whole number from ${min} to ${max} (got "${raw}")`);
    return v;
  };
  const url = opt('keyd', 'url');
  if (url !== undefined && !/^https:\/\/[^/]+\/?$/.test(url)) throw bad('keyd', 'url', `"${url}" is not an https:// URL of a host`);
  const keyd: KeydSettings | undefined = url === undefined ? undefined : {
    url,
    ...(opt('keyd', 'servername') ? { servername: opt('keyd', 'servername') as string } : {}),
    ca: (opt('keyd', 'ca') ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => resolve(base, x)),
    ...(path('keyd', 'cert') ? { cert: path('keyd', 'cert') as string } : {}),
    ...(path('keyd', 'key') ? { key: path('keyd', 'key') as string } : {}),
    ...(path('keyd', 'disclosure_cert') ? { disclosureCert: path('keyd', 'disclosure_cert') as string } : {}),
    ...(path('keyd', 'disclosure_key') ? { disclosureKey: path('keyd', 'disclosure_key') as string } : {}),
    timeoutMs: num('keyd', 'timeout_ms', 5000, 100, 600000),
  };
  if (keyd && keyd.ca.length === 0) throw bad('keyd', 'ca', 'is required (the CA certificates keyd\'s certificate chains to)');
  let submit: SubmitSettings | undefined;
  const host = opt('submit', 'host');
  if (host !== undefined) {
    const security = opt('submit', 'security');
    if (security !== undefined && !['none', 'starttls', 'tls'].includes(security)) throw bad('submit', 'security', `must be none, starttls or tls (got "${security}")`);
    const pwFile = path('submit', 'password_file');
    let password: string | undefined;
    if (pwFile) {
      try {
        password = readFileSync(pwFile, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        throw bad('submit', 'password_file', `cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    submit = {
      host, port: num('submit', 'port', 587, 1, 65535),
      ...(opt('submit', 'user') ? { user: opt('submit', 'user') as string } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(security ? { security: security as 'none' | 'starttls' | 'tls' } : {}),
    };
  }
  const listen = opt('server', 'listen') ?? '127.0.0.1:8025';
  const m = /^(.+):(\d+)$/.exec(listen);
  if (!m) throw bad('server', 'listen', `must be HOST:PORT (got "${listen}")`);
  const bearer = path('server', 'bearer_token_file');
  const domain = opt('abuse', 'domain')?.toLowerCase();
  return {
    file,
    ...(domain ? { domain } : {}),
    ...(opt('abuse', 'from') ? { from: opt('abuse', 'from') as string } : {}),
    ...(opt('abuse', 'reporting_mta') ? { reportingMta: opt('abuse', 'reporting_mta') as string } : domain ? { reportingMta: `mx.${domain}` } : {}),
    ...(keyd ? { keyd } : {}),
    ...(submit ? { submit } : {}),
    server: { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]), ...(bearer ? { bearerTokenFile: bearer } : {}), maxBytes: num('server', 'max_bytes', 25 * 1024 * 1024, 1024, 1024 * 1024 * 1024) },
    hasDirectory: ini.directory !== undefined,
    registry: {
      ...(path('registry', 'ca_dir') ? { caDir: path('registry', 'ca_dir') as string } : {}),
      ...(path('registry', 'ca_cert') ? { caCert: path('registry', 'ca_cert') as string } : {}),
      ...(path('registry', 'ca_key') ? { caKey: path('registry', 'ca_key') as string } : {}),
      ...(path('registry', 'ca_passphrase_file') ? { caPassphraseFile: path('registry', 'ca_passphrase_file') as string } : {}),
      ...(path('registry', 'crl') ? { crl: path('registry', 'crl') as string } : {}),
      crlDays: num('registry', 'crl_days', 7, 1, 365),
      ...(path('registry', 'root') ? { root: path('registry', 'root') as string } : {}),
      ...(path('registry', 'bundle') ? { bundle: path('registry', 'bundle') as string } : {}),
      ...(path('registry', 'profiles') ? { profiles: path('registry', 'profiles') as string } : {}),
      certificateDays: num('registry', 'certificate_days', 365, 1, 3650),
    },
  };
}

function readFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new AbuseConfigError(`Cannot read ${what} "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A keyd client with the operator (admin) certificate, or the disclosure one. */
export function keydClientFor(config: AbuseConfig, role: 'operator' | 'disclosure', override?: { cert?: string; key?: string }): KeydClient {
  const k = config.keyd;
  if (!k) throw new AbuseConfigError(`Config "${config.file}": [keyd] url is required`);
  const cert = override?.cert ?? (role === 'disclosure' ? k.disclosureCert : k.cert);
  const key = override?.key ?? (role === 'disclosure' ? k.disclosureKey : k.key);
  const names = role === 'disclosure' ? ['disclosure_cert', 'disclosure_key'] : ['cert', 'key'];
  if (!cert) throw new AbuseConfigError(`Config "${config.file}": [keyd] ${names[0]} is required (or --cert)`);
  if (!key) throw new AbuseConfigError(`Config "${config.file}": [keyd] ${names[1]} is required (or --key)`);
  return new KeydClient({
    url: k.url, cert: readFile(cert, 'client certificate'), key: readFile(key, 'client key'), ca: k.ca.map((f) => readFile(f, 'CA certificate')),
    ...(k.servername ? { servername: k.servername } : {}), timeoutMs: k.timeoutMs,
  });
}
