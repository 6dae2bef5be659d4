/**
 * The gateway's configuration, from config/ssmax.ini of the Haraka folder
 * (the shipped config/ssmax.ini lists every key and default). Paths are
 * relative to that config folder. Checked once at register(); a bad value
 * stops Haraka with a message naming the key.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { BATCH_DEFAULTS, type BatchSettings } from '../keyd/client-batch';

export type EncryptionPolicy = 'require' | 'opportunistic' | 'none';

export interface GatewayConfig {
  readonly domain: string;
  readonly localDomains: readonly string[];
  readonly hookTimeoutMs: number;
  /** CPU budget of reading one message for verification (ms). */
  readonly cpuBudgetMs: number;
  readonly tcpNoDelay: boolean;
  readonly keyd: { readonly url: string; readonly servername?: string; readonly ca: readonly string[]; readonly cert: string; readonly key: string; readonly inspectorCert?: string; readonly inspectorKey?: string; readonly timeoutMs: number; readonly userFactsTtlMs: number; readonly batch: BatchSettings };
  readonly seal: { readonly cert: string; readonly key: string };
  readonly pki: { readonly roots: readonly string[]; readonly crls: readonly string[] };
  readonly policy: { readonly default: EncryptionPolicy; readonly domains: Readonly<Record<string, EncryptionPolicy>> };
  readonly peers: Readonly<Record<string, string>>;
  readonly directory: { readonly dns: boolean; readonly dnsServers: readonly string[]; readonly fetchTimeoutMs: number; readonly retryMs: number; readonly hosts: Readonly<Record<string, string>> };
  readonly routes: Readonly<Record<string, { host: string; port: number }>>;
  /** `delayNoticeMs`: a peer copy still queued this long gets one delay notice to its local sender (dsn.ts). */
  readonly delivery: { readonly host: string; readonly port: number; readonly protocol: 'smtp' | 'lmtp'; readonly timeoutMs: number; readonly delayNoticeMs: number; readonly deliveryId: boolean };
  /** Addresses (IPs or CIDR blocks) of the organisation's own MTAs: they may relay, and their null-sender mail to local users is accepted. */
  readonly trustedRelays: readonly string[];
  /** SMTP AUTH logins of the organisation's own MTAs: a session authenticated with one is treated as from a trusted relay. */
  readonly trustedRelayLogins: readonly string[];
  /** Key versions on the wire (docs/key-exchange.md). */
  readonly keyExchange: { readonly advertise: boolean; readonly probe: boolean; readonly probeIntervalMs: number; readonly probeTimeoutMs: number; readonly refreshMinIntervalMs: number };
  /**
   * Where the inspection step runs (docs/inspection.md): `inline` in this process (ssmax-inspect.ini,
   * the inspector certificate of [keyd]), or `remote` in the inspector process, called over mutual
   * TLS with this gateway's own gateway-role certificate ([keyd] cert/key).
   */
  readonly inspection: InspectionSettings;
  /**
   * What an arriving chain must prove beyond its signatures (docs/security.md): the newest seal
   * is at most `maxSealAgeMs` old; a seal i>1 by another organisation than seal i=1's is
   * accepted only from the `resealers` named (none by default: lists and forwarders, later).
   */
  readonly chain: { readonly maxSealAgeMs: number; readonly resealers: readonly string[] };
}

export type InspectionSettings =
  | { readonly mode: 'inline' }
  | { readonly mode: 'remote'; readonly url: string; readonly servername: string; readonly ca: readonly string[]; readonly timeoutMs: number };

type Ini = Record<string, Record<string, unknown> | undefined>;

export const GATEWAY_DEFAULTS = { hook_timeout_ms: 25000, cpu_budget_ms: 5000, tcp_nodelay: true, keyd_timeout_ms: 5000, user_facts_ttl_ms: 5000, keyd_batch_window_ms: 0, keyd_batch_max_ops: 8, policy: 'opportunistic', delivery_timeout_ms: 10000, delivery_protocol: 'smtp', delay_notice_seconds: 14400, advertise: true, probe: true, probe_interval_seconds: 30, probe_timeout_ms: 2000, refresh_min_interval_seconds: 5, inspection_mode: 'inline', inspector_timeout_ms: 15000, max_seal_age_seconds: 518400 } as const;

/** How long delivery.ts keeps its record of delivered (arrival, recipient) pairs: the seal age window must not exceed it. */
export const DELIVERED_RECORD_SECONDS = 7 * 86400;

export class GatewayConfigError extends Error {}

function policyOf(v: unknown, where: string): EncryptionPolicy {
  if (v === 'require' || v === 'opportunistic' || v === 'none') return v;
  throw new GatewayConfigError(`ssmax.ini: ${where} must be require, opportunistic or none (got "${String(v)}")`);
}

function hostPort(v: unknown, where: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(String(v ?? ''));
  if (!m) throw new GatewayConfigError(`ssmax.ini: ${where} must be host:port (got "${String(v)}")`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** An IPv4/IPv6 address, or one with a /prefix (CIDR block). */
function isAddressOrBlock(v: string): boolean {
  const [ip, prefix, ...rest] = v.split('/');
  if (rest.length > 0 || !ip) return false;
  const family = isIP(ip);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

export function parseGatewayConfig(ini: Ini, dir: string): GatewayConfig {
  const sec = (n: string) => (ini[n] ?? {}) as Record<string, unknown>;
  const str = (s: string, k: string, required = true): string | undefined => {
    const v = sec(s)[k];
    if (typeof v === 'string' && v.trim() !== '') return v.trim();
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (required) throw new GatewayConfigError(`ssmax.ini: [${s}] ${k} is required`);
    return undefined;
  };
  const path = (p: string) => resolve(dir, p);
  const list = (s: string, k: string, required = true) => (str(s, k, required) ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const num = (s: string, k: string, def: number, zeroAllowed = false) => {
    const raw = str(s, k, false);
    const n = raw === undefined ? def : Number(raw);
    if (!Number.isFinite(n) || n < 0 || (n === 0 && !zeroAllowed)) throw new GatewayConfigError(`ssmax.ini: [${s}] ${k} must be a ${zeroAllowed ? 'non-negative' : 'positive'} number (got "${raw}")`);
    return n;
  };
  const whole = (s: string, k: string, def: number, min: number, max: number) => {
    const raw = str(s, k, false);
    const n = raw === undefined ? def : Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new GatewayConfigError(`ssmax.ini: [${s}] ${k} must be a whole number from ${min} to ${max} (got "${raw}")`);
    return n;
  };
  const bool = (s: string, k: string, def: boolean) => {
    const v = sec(s)[k];
    if (v === undefined || v === '') return def;
    if (v === true || v === 'true' || v === '1' || v === 'yes') return true;
    if (v === false || v === 'false' || v === '0' || v === 'no') return false;
    throw new GatewayConfigError(`ssmax.ini: [${s}] ${k} must be true or false`);
  };
  const domain = str('main', 'domain')!.toLowerCase();
  const policyDomains: Record<string, EncryptionPolicy> = {};
  for (const [k, v] of Object.entries(sec('policy'))) if (k !== 'default') policyDomains[k.toLowerCase()] = policyOf(v, `[policy] ${k}`);
  const peers: Record<string, string> = {};
  for (const [k, v] of Object.entries(sec('peers'))) peers[k.toLowerCase()] = String(v);
  const routes: Record<string, { host: string; port: number }> = {};
  for (const [k, v] of Object.entries(sec('routes'))) routes[k.toLowerCase()] = hostPort(v, `[routes] ${k}`);
  const inspectorCert = str('keyd', 'inspector_cert', false);
  const inspectorKey = str('keyd', 'inspector_key', false);
  const servername = str('keyd', 'servername', false);
  const inspectionMode = str('inspection', 'mode', false) ?? GATEWAY_DEFAULTS.inspection_mode;
  if (inspectionMode !== 'inline' && inspectionMode !== 'remote') throw new GatewayConfigError(`ssmax.ini: [inspection] mode must be inline or remote (got "${inspectionMode}")`);
  let inspection: InspectionSettings = { mode: 'inline' };
  if (inspectionMode === 'remote') {
    const url = str('inspection', 'inspector_url', false);
    if (!url || !/^https:\/\/[^/]+\/?$/.test(url)) throw new GatewayConfigError(`ssmax.ini: [inspection] inspector_url must be https://host:port when mode=remote (got "${url ?? ''}")`);
    const ca = list('inspection', 'inspector_ca', false);
    inspection = {
      mode: 'remote', url, servername: str('inspection', 'inspector_servername', false) ?? `inspect.${domain}`,
      ca: (ca.length > 0 ? ca : list('keyd', 'ca')).map(path), timeoutMs: num('inspection', 'inspector_timeout_ms', GATEWAY_DEFAULTS.inspector_timeout_ms),
    };
  }
  const deliveryProtocol = (str('delivery', 'protocol', false) ?? GATEWAY_DEFAULTS.delivery_protocol).toLowerCase();
  if (deliveryProtocol !== 'smtp' && deliveryProtocol !== 'lmtp') throw new GatewayConfigError(`ssmax.ini: [delivery] protocol must be smtp or lmtp (got "${deliveryProtocol}")`);
  const trustedRelays = list('main', 'trusted_relays', false);
  for (const r of trustedRelays) if (!isAddressOrBlock(r)) throw new GatewayConfigError(`ssmax.ini: [main] trusted_relays must list IP addresses or CIDR blocks (got "${r}")`);
  return {
    domain,
    localDomains: list('main', 'local_domains', false).map((d) => d.toLowerCase()).concat([domain]).filter((d, i, a) => a.indexOf(d) === i),
    hookTimeoutMs: num('main', 'hook_timeout_ms', GATEWAY_DEFAULTS.hook_timeout_ms),
    cpuBudgetMs: num('main', 'cpu_budget_ms', GATEWAY_DEFAULTS.cpu_budget_ms),
    tcpNoDelay: bool('main', 'tcp_nodelay', GATEWAY_DEFAULTS.tcp_nodelay),
    keyd: {
      url: str('keyd', 'url')!, ...(servername ? { servername } : {}),
      ca: list('keyd', 'ca').map(path), cert: path(str('keyd', 'cert')!), key: path(str('keyd', 'key')!),
      ...(inspectorCert ? { inspectorCert: path(inspectorCert) } : {}), ...(inspectorKey ? { inspectorKey: path(inspectorKey) } : {}),
      timeoutMs: num('keyd', 'timeout_ms', GATEWAY_DEFAULTS.keyd_timeout_ms),
      userFactsTtlMs: num('keyd', 'user_facts_ttl_ms', GATEWAY_DEFAULTS.user_facts_ttl_ms, true),
      batch: { ...BATCH_DEFAULTS, windowMs: whole('keyd', 'batch_window_ms', GATEWAY_DEFAULTS.keyd_batch_window_ms, 0, 1000), maxOps: whole('keyd', 'batch_max_ops', GATEWAY_DEFAULTS.keyd_batch_max_ops, 1, 1024) },
    },
    seal: { cert: path(str('seal', 'cert')!), key: path(str('seal', 'key')!) },
    pki: { roots: list('pki', 'roots').map(path), crls: list('pki', 'crls', false).map(path) },
    policy: { default: policyOf(str('policy', 'default', false) ?? GATEWAY_DEFAULTS.policy, '[policy] default'), domains: policyDomains },
    peers,
    directory: { dns: bool('directory', 'dns', true), dnsServers: list('directory', 'dns_servers', false), fetchTimeoutMs: num('directory', 'fetch_timeout_ms', 5000), retryMs: num('directory', 'retry_ms', 2000), hosts: Object.fromEntries(Object.entries(sec('hosts')).map(([k, v]) => [k.toLowerCase(), String(v)])) },
    routes,
    delivery: { ...hostPort(str('delivery', 'host') ?? '', '[delivery] host'), protocol: deliveryProtocol, timeoutMs: num('delivery', 'timeout_ms', GATEWAY_DEFAULTS.delivery_timeout_ms), delayNoticeMs: num('delivery', 'delay_notice_seconds', GATEWAY_DEFAULTS.delay_notice_seconds) * 1000, deliveryId: bool('delivery', 'delivery_id', deliveryProtocol === 'lmtp') },
    trustedRelays,
    trustedRelayLogins: list('main', 'trusted_relay_logins', false),
    keyExchange: {
      advertise: bool('key_exchange', 'advertise', GATEWAY_DEFAULTS.advertise),
      probe: bool('key_exchange', 'probe', GATEWAY_DEFAULTS.probe),
      probeIntervalMs: num('key_exchange', 'probe_interval_seconds', GATEWAY_DEFAULTS.probe_interval_seconds) * 1000,
      probeTimeoutMs: num('key_exchange', 'probe_timeout_ms', GATEWAY_DEFAULTS.probe_timeout_ms),
      refreshMinIntervalMs: num('key_exchange', 'refresh_min_interval_seconds', GATEWAY_DEFAULTS.refresh_min_interval_seconds) * 1000,
    },
    inspection,
    chain: {
      maxSealAgeMs: sealAge(num('chain', 'max_seal_age_seconds', GATEWAY_DEFAULTS.max_seal_age_seconds)) * 1000,
      resealers: list('chain', 'resealers', false).map((d) => d.toLowerCase()),
    },
  };
}

function sealAge(seconds: number): number {
  if (seconds > DELIVERED_RECORD_SECONDS) throw new GatewayConfigError(`ssmax.ini: [chain] max_seal_age_seconds must be at most ${DELIVERED_RECORD_SECONDS} (how long the record of delivered messages is kept; got ${seconds})`);
  return seconds;
}

export function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new GatewayConfigError(`Cannot read ${what} "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function policyFor(config: GatewayConfig, domain: string): EncryptionPolicy {
  return config.policy.domains[domain.toLowerCase()] ?? config.policy.default;
}
