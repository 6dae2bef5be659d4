/**
 * The directory's configuration: an ini file (config/ssmax-directory.ini lists
 * every key with its default). Relative paths are resolved against the file's
 * folder. Every value is checked at load, with an error naming the key.
 * `directoryOptions` reads the files it names and gives DirectoryOptions.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isIP } from 'node:net';
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
  /** DNS servers (IP or IP:port) for TXT discovery and the publishers' host names; empty: the system's. */
  readonly dnsServers: readonly string[];
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

/** The keys of each fixed section; [peers] and [hosts] take any name. Anything else is refused, never ignored. */
const KNOWN_KEYS: Readonly<Record<string, readonly string[] | undefined>> = {
  directory: ['roots', 'crls', 'cache_dir', 'dns', 'dns_servers', 'fetch_timeout_ms', 'refresh_ahead', 'refresh_jitter', 'retry_seconds', 'negative_ttl_seconds', 'dns_recheck_seconds'],
  tls: ['ca'],
  peers: undefined,
  hosts: undefined,
};

/** `IP` or `IP:port` (`[IPv6]:port`), as node:dns setServers takes them. */
function dnsServerProblem(s: string): string | undefined {
  const m = /^\[([0-9a-f:.]+)\](?::(\d{1,5}))?$/i.exec(s) ?? /^([0-9.]+)(?::(\d{1,5}))?$/.exec(s) ?? /^([0-9a-f:]+)()$/i.exec(s);
  if (!m || isIP(m[1] as string) === 0) return `"${s}" is not an IP address or IP:port`;
  if (m[2] && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return `"${s}" has a port outside 1-65535`;
  return undefined;
}

/**
 * `otherSections`: sections the file may hold for another reader (the abuse
 * tools' file shares these sections with theirs); any other unknown section,
 * and any unknown key in [directory] or [tls], is an error naming it.
 */
export function loadDirectoryConfig(file: string, opts: { otherSections?: readonly string[] } = {}): DirectoryConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DirectoryConfigError(`Cannot read directory config "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const ini = parse(text) as Record<string, Section>;
  const base = dirname(resolve(file));
  const bad = (s: string, k: string, why: string) => new DirectoryConfigError(`Config "${file}": [${s}] ${k} ${why}`);
  for (const [section, body] of Object.entries(ini)) {
    if (typeof body !== 'object' || body === null) throw new DirectoryConfigError(`Config "${file}": "${section}" is outside any section`);
    if (!(section in KNOWN_KEYS)) {
      if (opts.otherSections?.includes(section)) continue;
      throw new DirectoryConfigError(`Config "${file}": unknown section [${section}] (known: ${Object.keys(KNOWN_KEYS).map((k) => `[${k}]`).join(', ')})`);
    }
    const keys = KNOWN_KEYS[section];
    if (keys) for (const key of Object.keys(body)) if (!keys.includes(key)) throw bad(section, key, `is not a known setting (known: ${keys.join(', ')})`);
  }
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
  const dnsServers = (opt('directory', 'dns_servers') ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const s of dnsServers) {
    const problem = dnsServerProblem(s);
    if (problem) throw bad('directory', 'dns_servers', problem);
  }
  const cacheDir = opt('directory', 'cache_dir');
  const tlsCa = paths('tls', 'ca', false);
  return {
    file,
    roots: paths('directory', 'roots', true),
    crls: paths('directory', 'crls', false),
    ...(cacheDir ? { cacheDir: resolve(base, cacheDir) } : {}),
    dns: ['on', 'true', 'yes'].includes(dnsRaw),
    dnsServers,
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
    ...(config.dnsServers.length > 0 ? { dnsServers: config.dnsServers } : {}),
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
