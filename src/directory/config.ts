/**
 * The directory's configuration: an ini file (config/ssmax-directory.ini lists
 * every key with its default). Relative paths are resolved against the file's
 * folder. Every value is checked at load, with an error naming the key.
 * `directoryOptions` reads the files it names and gives DirectoryOptions.
 */
import { isIP } from 'node:net';
import { ConfigError, IniReader, defineSettings, readConfigText, readIniFile, refuseUnknown } from '../config/ini';
import { DIRECTORY_DEFAULTS, type DirectoryOptions } from './directory';
import { urlProblem } from './discovery';

/** The one configuration error (src/config/ini.ts), under the name this module always exported. */
export const DirectoryConfigError = ConfigError;
export type DirectoryConfigError = ConfigError;

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
  readonly withdrawalGraceMs: number;
  /** Fetch DNS-named bundle URLs from internal addresses too (labs); [peers] and [hosts] are always allowed. */
  readonly allowPrivateAddresses: boolean;
  /** Absent: Node's root store plus the SSMAX roots. */
  readonly tlsCa?: readonly string[];
  readonly peers: Readonly<Record<string, string>>;
  readonly hosts: Readonly<Record<string, string>>;
}

const SECONDS = { type: 'num', min: 0, max: 86400 } as const;

/** The settings of [directory] and [tls]; [peers] and [hosts] take any domain or host name. */
export const DIRECTORY_SETTINGS = defineSettings({
  'directory.roots': { type: 'list' },
  'directory.crls': { type: 'list', default: [] },
  'directory.cache_dir': { type: 'str' },
  'directory.dns': { type: 'bool', default: true },
  'directory.dns_servers': { type: 'list', default: [] },
  'directory.fetch_timeout_ms': { type: 'num', min: 100, max: 600000, default: DIRECTORY_DEFAULTS.fetchTimeoutMs },
  'directory.refresh_ahead': { type: 'num', min: 0, max: 1, default: DIRECTORY_DEFAULTS.refreshAhead },
  'directory.refresh_jitter': { type: 'num', min: 0, max: 1, default: DIRECTORY_DEFAULTS.refreshJitter },
  'directory.retry_seconds': { ...SECONDS, default: DIRECTORY_DEFAULTS.retryMs / 1000 },
  'directory.negative_ttl_seconds': { ...SECONDS, default: DIRECTORY_DEFAULTS.negativeTtlMs / 1000 },
  'directory.dns_recheck_seconds': { ...SECONDS, default: DIRECTORY_DEFAULTS.dnsRecheckMs / 1000 },
  'directory.withdrawal_grace_seconds': { type: 'num', min: 0, max: 30 * 86400, default: DIRECTORY_DEFAULTS.withdrawalGraceMs / 1000 },
  'directory.allow_private_addresses': { type: 'bool', default: false },
  'tls.ca': { type: 'list', default: [] },
});

/** The sections whose keys are any name (a domain, a host name); every other key must be a setting of DIRECTORY_SETTINGS. */
export const FREE_SECTIONS = ['peers', 'hosts'] as const;

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
  const ini = readIniFile(file, 'directory config');
  const r = new IniReader(DIRECTORY_SETTINGS, ini, file);
  // the first value outside any section, unknown section or key, named (src/config/ini.ts)
  refuseUnknown(r, { free: FREE_SECTIONS, otherSections: opts.otherSections ?? [] });
  const peers: Record<string, string> = {};
  for (const [domain, url] of Object.entries(r.free('peers'))) {
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(domain)) throw r.fail('peers', domain, `"${domain}" is not a domain name`);
    const problem = urlProblem(url);
    if (problem) throw r.fail('peers', domain, problem);
    peers[domain.toLowerCase()] = url;
  }
  const hosts: Record<string, string> = {};
  for (const [host, address] of Object.entries(r.free('hosts'))) {
    if (!/^[0-9a-f.:]+$/i.test(address)) throw r.fail('hosts', host, `must be an IP address, got '${address}'`);
    hosts[host.toLowerCase()] = address;
  }
  const dnsServers = r.get('directory.dns_servers');
  for (const s of dnsServers) {
    const problem = dnsServerProblem(s);
    if (problem) throw r.fail('directory', 'dns_servers', problem);
  }
  const cacheDir = r.optPath('directory.cache_dir');
  const tlsCa = r.paths('tls.ca');
  return {
    file,
    roots: r.paths('directory.roots'),
    crls: r.paths('directory.crls'),
    ...(cacheDir ? { cacheDir } : {}),
    dns: r.get('directory.dns'),
    dnsServers,
    fetchTimeoutMs: r.get('directory.fetch_timeout_ms'),
    refreshAhead: r.get('directory.refresh_ahead'),
    refreshJitter: r.get('directory.refresh_jitter'),
    retryMs: r.get('directory.retry_seconds') * 1000,
    negativeTtlMs: r.get('directory.negative_ttl_seconds') * 1000,
    dnsRecheckMs: r.get('directory.dns_recheck_seconds') * 1000,
    withdrawalGraceMs: r.get('directory.withdrawal_grace_seconds') * 1000,
    allowPrivateAddresses: r.get('directory.allow_private_addresses'),
    ...(tlsCa.length > 0 ? { tlsCa } : {}),
    peers,
    hosts,
  };
}

function readPem(file: string, label: string): string {
  return readConfigText(file, label);
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
    withdrawalGraceMs: config.withdrawalGraceMs,
    allowPrivateAddresses: config.allowPrivateAddresses,
    ...(config.tlsCa ? { tlsCa: config.tlsCa.map((f) => readPem(f, 'TLS CA')) } : {}),
    ...extra,
  };
}
