/**
 * The directory's configuration: an ini file (config/ssmax-directory.ini lists
 * every key with its default). Relative paths are resolved against the file's
 * folder. Every value is checked at load, with an error naming the key.
 * `directoryOptions` reads the files it names and gives DirectoryOptions.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'ini';
import { DIRECTORY_DEFAULTS, type DirectoryOptions } from './directory';
import { urlProblem } from './discovery';

export class DirectoryConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DirectoryConfigError';
  }
}

export interface DirectoryConfig {
  readonly file: string;
  readonly roots: readonly string[];
  readonly crls: readonly string[];
  /** Absent: memory only. */
  readonly cacheDir?: string;
  readonly dns: boolean;
  readonly fetchTimeoutMs: number;
  readonly refreshAhead: number;
  readonly refreshJitter: number;
  readonly retryMs: number;
  readonly negativeTtlMs: number;
  readonly dnsRecheckMs: number;
  /** Absent: Node's root store plus the SSMAX roots. */
  readonly tlsCa?: readonly string[];
  readonly peers: Readonly<Record<string, string>>;
  readonly hosts: Readonly<Record<string, string>>;
}

type Section = Record<string, unknown>;

export function loadDirectoryConfig(file: string): DirectoryConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DirectoryConfigError(`Cannot read directory config "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const ini = parse(text) as Record<string, Section>;
  const base = dirname(resolve(file));
  const bad = (s: string, k: string, why: string) => new DirectoryConfigError(`Config "${file}": [${s}] ${k} ${why}`);
  const sec = (name: string): Section => (ini[name] ?? {}) as Section;
  const opt = (s: string, k: string): string | undefined => {
    const v = sec(s)[k];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const paths = (s: string, k: string, required: boolean): string[] => {
    const v = opt(s, k);
    if (v === undefined && required) throw bad(s, k, 'is required');
    return v ? v.split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => resolve(base, x)) : [];
  };
  const num = (k: string, dflt: number, min: number, max: number): number => {
    const raw = opt('directory', k);
    const v = raw === undefined ? dflt : Number(raw);
    if (!Number.isFinite(v) || v < min || v > max) throw bad('directory', k, `must be a number from ${min} to ${max} (got "${raw}")`);
    return v;
  };
  const dnsRaw = (opt('directory', 'dns') ?? 'on').toLowerCase();
  if (!['on', 'off', 'true', 'false', 'yes', 'no'].includes(dnsRaw)) throw bad('directory', 'dns', `must be on or off (got "${dnsRaw}")`);
  const peers: Record<string, string> = {};
  for (const [domain, url] of Object.entries(sec('peers'))) {
    if (typeof url !== 'string') throw bad('peers', domain, 'must be a URL');
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(domain)) throw bad('peers', domain, `"${domain}" is not a domain name`);
    const problem = urlProblem(url.trim());
    if (problem) throw bad('peers', domain, problem);
    peers[domain.toLowerCase()] = url.trim();
  }
  const hosts: Record<string, string> = {};
  for (const [host, address] of Object.entries(sec('hosts'))) {
    if (typeof address !== 'string' || !/^[0-9a-f.:]+$/i.test(address.trim())) throw bad('hosts', host, `must be an IP address (got "${String(address)}")`);
    hosts[host.toLowerCase()] = address.trim();
  }
  const cacheDir = opt('directory', 'cache_dir');
  const tlsCa = paths('tls', 'ca', false);
  return {
    file,
    roots: paths('directory', 'roots', true),
    crls: paths('directory', 'crls', false),
    ...(cacheDir ? { cacheDir: resolve(base, cacheDir) } : {}),
    dns: ['on', 'true', 'yes'].includes(dnsRaw),
    fetchTimeoutMs: num('fetch_timeout_ms', DIRECTORY_DEFAULTS.fetchTimeoutMs, 100, 600000),
    refreshAhead: num('refresh_ahead', DIRECTORY_DEFAULTS.refreshAhead, 0, 1),
    refreshJitter: num('refresh_jitter', DIRECTORY_DEFAULTS.refreshJitter, 0, 1),
    retryMs: num('retry_seconds', DIRECTORY_DEFAULTS.retryMs / 1000, 0, 86400) * 1000,
    negativeTtlMs: num('negative_ttl_seconds', DIRECTORY_DEFAULTS.negativeTtlMs / 1000, 0, 86400) * 1000,
    dnsRecheckMs: num('dns_recheck_seconds', DIRECTORY_DEFAULTS.dnsRecheckMs / 1000, 0, 86400) * 1000,
    ...(tlsCa.length > 0 ? { tlsCa } : {}),
    peers, hosts,
  };
}

function readPem(file: string, label: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new DirectoryConfigError(`Cannot read ${label} "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** DirectoryOptions for this configuration (the PEM files read now). */
export function directoryOptions(config: DirectoryConfig, extra: Partial<DirectoryOptions> = {}): DirectoryOptions {
  return {
    roots: config.roots.map((f) => readPem(f, 'root certificate')),
    crls: config.crls.map((f) => readPem(f, 'CRL')),
    staticPeers: config.peers,
    hosts: config.hosts,
    ...(config.dns ? {} : { resolver: null }),
    ...(config.cacheDir ? { cacheDir: config.cacheDir } : {}),
    fetchTimeoutMs: config.fetchTimeoutMs,
    refreshAhead: config.refreshAhead,
    refreshJitter: config.refreshJitter,
    retryMs: config.retryMs,
    negativeTtlMs: config.negativeTtlMs,
    dnsRecheckMs: config.dnsRecheckMs,
    ...(config.tlsCa ? { tlsCa: config.tlsCa.map((f) => readPem(f, 'TLS CA')) } : {}),
    ...extra,
  };
}
