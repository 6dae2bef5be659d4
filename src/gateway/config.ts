/**
 * The gateway's configuration, from config/ssmax.ini of the Haraka folder
 * (the shipped config/ssmax.ini lists every key and default). Paths are
 * relative to that config folder. Checked at register(); a bad value stops
 * Haraka with a message naming the key. When Haraka reloads a changed file,
 * `reloadGatewayConfig` takes the settings marked `reload` at once and
 * reports the others as waiting for a restart.
 */
import { isIP } from 'node:net';
import { isLoopbackAddress } from '../net/loopback';
import { canonicalDomain } from '../chain/alignment';
import { ConfigError, IniReader, readSettingFile, changedSettings, defineSettings } from '../config/ini';
import { BATCH_DEFAULTS, type BatchSettings } from '../keyd/client-batch';
import { type KeydConnection, keydConnectionSettings, readKeydConnection } from '../keyd/client-settings';
import { KEYD_ANSWER_MAX_BYTES } from '../keyd/client';
import { NOT_FOUND_TTL_MS } from '../keyd/client-ops';
import { QUARANTINE_CAPS } from '../inspect/quarantine';
import { DELIVERED_RECORD_SECONDS } from './delivered-record';

export type EncryptionPolicy = 'require' | 'opportunistic' | 'none';

export interface GatewayConfig {
  readonly domain: string;
  readonly localDomains: readonly string[];
  readonly hookTimeoutMs: number;
  /** CPU budget of reading one message for verification (ms). */
  readonly cpuBudgetMs: number;
  /** The most bytes the copies of one message may take together (each recipient's or member's copy is the whole message). */
  readonly maxCopyBytes: number;
  readonly tcpNoDelay: boolean;
  /** keyd, called with the gateway-role certificate (paths); `inspectorCert`/`inspectorKey`: an inspector-role one for inline inspection. */
  readonly keyd: KeydConnection & {
    readonly inspectorCert?: string;
    readonly inspectorKey?: string;
    readonly userFactsTtlMs: number;
    /** How long keyd's "neither a user nor a list" for an address is reused (0: ask every time). */
    readonly notFoundTtlMs: number;
    /** The most bytes of one keyd answer read; a longer one is a temporary fault (4xx). */
    readonly maxAnswerBytes: number;
    readonly batch: BatchSettings;
  };
  readonly seal: { readonly cert: string; readonly key: string };
  readonly pki: { readonly roots: readonly string[]; readonly crls: readonly string[] };
  readonly policy: { readonly default: EncryptionPolicy; readonly domains: Readonly<Record<string, EncryptionPolicy>> };
  readonly peers: Readonly<Record<string, string>>;
  readonly directory: {
    readonly dns: boolean;
    readonly dnsServers: readonly string[];
    readonly fetchTimeoutMs: number;
    readonly retryMs: number;
    readonly hosts: Readonly<Record<string, string>>;
    /** Fetch DNS-named bundle URLs from internal addresses too (labs); [peers] and [hosts] are always allowed. */
    readonly allowPrivateAddresses: boolean;
  };
  readonly routes: Readonly<Record<string, { host: string; port: number }>>;
  /** `delayNoticeMs`: a peer copy still queued this long gets one delay notice to its local sender (dsn.ts). */
  readonly delivery: {
    readonly host: string;
    readonly port: number;
    readonly protocol: 'smtp' | 'lmtp';
    readonly timeoutMs: number;
    readonly delayNoticeMs: number;
    readonly deliveryId: boolean;
    /**
     * [delivery] allow_plaintext_over_network: the store is not on this machine and the operator accepted that
     * the decrypted copies cross the network in cleartext (refused at start otherwise; logged at every start).
     */
    readonly plaintextOverNetwork: boolean;
    /** The setting itself ([delivery] allow_plaintext_over_network). */
    readonly allowPlaintextOverNetwork: boolean;
  };
  /** Addresses (IPs or CIDR blocks) of the organisation's own MTAs: they may relay, and their null-sender mail to local users is accepted. */
  readonly trustedRelays: readonly string[];
  /** SMTP AUTH logins of the organisation's own MTAs: a session authenticated with one is treated as from a trusted relay. */
  readonly trustedRelayLogins: readonly string[];
  /** Key versions on the wire (docs/key-exchange.md). */
  readonly keyExchange: {
    readonly advertise: boolean;
    readonly probe: boolean;
    readonly probeIntervalMs: number;
    readonly probeTimeoutMs: number;
    readonly refreshMinIntervalMs: number;
  };
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
  /** The caps of the moderation queue of mailing lists (bytes held in all, by one sender, posts held; docs/lists.md); absent: the store's defaults. */
  readonly moderation?: { readonly maxBytes: number; readonly maxBytesPerSender: number; readonly maxEntries: number };
}

export type InspectionSettings =
  | { readonly mode: 'inline' }
  | {
      readonly mode: 'remote';
      readonly url: string;
      readonly servername: string;
      readonly ca: readonly string[];
      readonly timeoutMs: number;
    };

type Ini = Record<string, Record<string, unknown> | undefined>;

export const GATEWAY_DEFAULTS = {
  hook_timeout_ms: 25000,
  cpu_budget_ms: 5000,
  max_copy_bytes: 2 ** 31,
  tcp_nodelay: true,
  keyd_timeout_ms: 5000,
  user_facts_ttl_ms: 5000,
  not_found_ttl_ms: NOT_FOUND_TTL_MS,
  keyd_max_answer_bytes: KEYD_ANSWER_MAX_BYTES,
  keyd_batch_window_ms: 0,
  keyd_batch_max_ops: 8,
  policy: 'opportunistic',
  delivery_timeout_ms: 10000,
  delivery_protocol: 'smtp',
  delay_notice_seconds: 14400,
  advertise: true,
  probe: true,
  probe_interval_seconds: 30,
  probe_timeout_ms: 2000,
  refresh_min_interval_seconds: 5,
  inspection_mode: 'inline',
  inspector_timeout_ms: 15000,
  max_seal_age_seconds: 518400,
  moderation_max_bytes: QUARANTINE_CAPS.maxBytes,
  moderation_max_bytes_per_sender: QUARANTINE_CAPS.maxBytesPerSender,
  moderation_max_entries: QUARANTINE_CAPS.maxEntries,
} as const;

/** How long delivery.ts keeps its record of delivered (arrival, recipient) pairs: the seal age window must not exceed it. */
export { DELIVERED_RECORD_SECONDS };

const MS = { type: 'num', min: 1, max: 3600000, whole: true } as const;
const SECONDS = { type: 'num', min: 0.001, max: 30 * 86400 } as const;
const BYTES = { type: 'num', min: 1, max: 2 ** 50, whole: true } as const;

/**
 * The settings of ssmax.ini. `reload: true`: read at each use, so a running
 * gateway takes a new value when Haraka reloads the file (docs/configuration.md);
 * any other change is logged as needing a restart. [policy] takes any domain
 * as a key (reloaded too); [peers], [hosts] and [routes] any domain or host
 * name (restart).
 */
export const GATEWAY_SETTINGS = defineSettings({
  'main.domain': { type: 'str' },
  'main.local_domains': { type: 'list', default: [], reload: true },
  'main.hook_timeout_ms': { ...MS, default: GATEWAY_DEFAULTS.hook_timeout_ms, reload: true },
  'main.cpu_budget_ms': { ...MS, default: GATEWAY_DEFAULTS.cpu_budget_ms, reload: true },
  'main.max_copy_bytes': { ...BYTES, default: GATEWAY_DEFAULTS.max_copy_bytes, reload: true },
  'main.tcp_nodelay': { type: 'bool', default: GATEWAY_DEFAULTS.tcp_nodelay },
  'main.trusted_relays': { type: 'list', default: [], reload: true },
  'main.trusted_relay_logins': { type: 'list', default: [], reload: true },
  ...keydConnectionSettings({ ...MS, default: GATEWAY_DEFAULTS.keyd_timeout_ms }),
  'keyd.inspector_cert': { type: 'str' },
  'keyd.inspector_key': { type: 'str' },
  'keyd.user_facts_ttl_ms': { ...MS, min: 0, default: GATEWAY_DEFAULTS.user_facts_ttl_ms },
  'keyd.not_found_ttl_ms': { ...MS, min: 0, default: GATEWAY_DEFAULTS.not_found_ttl_ms },
  'keyd.max_answer_bytes': { ...BYTES, min: 65536, max: 2 ** 30, default: GATEWAY_DEFAULTS.keyd_max_answer_bytes },
  'keyd.batch_window_ms': { type: 'num', min: 0, max: 1000, whole: true, default: GATEWAY_DEFAULTS.keyd_batch_window_ms },
  'keyd.batch_max_ops': { type: 'num', min: 1, max: 1024, whole: true, default: GATEWAY_DEFAULTS.keyd_batch_max_ops },
  'seal.cert': { type: 'str' },
  'seal.key': { type: 'str' },
  'pki.roots': { type: 'list' },
  'pki.crls': { type: 'list', default: [] },
  'policy.default': { type: 'enum', values: ['require', 'opportunistic', 'none'], default: GATEWAY_DEFAULTS.policy, reload: true },
  'directory.dns': { type: 'bool', default: true },
  'directory.dns_servers': { type: 'list', default: [] },
  'directory.fetch_timeout_ms': { ...MS, default: 5000 },
  'directory.retry_ms': { ...MS, default: 2000 },
  'directory.allow_private_addresses': { type: 'bool', default: false },
  'key_exchange.advertise': { type: 'bool', default: GATEWAY_DEFAULTS.advertise },
  'key_exchange.probe': { type: 'bool', default: GATEWAY_DEFAULTS.probe },
  'key_exchange.probe_interval_seconds': { ...SECONDS, default: GATEWAY_DEFAULTS.probe_interval_seconds },
  'key_exchange.probe_timeout_ms': { ...MS, default: GATEWAY_DEFAULTS.probe_timeout_ms },
  'key_exchange.refresh_min_interval_seconds': { ...SECONDS, default: GATEWAY_DEFAULTS.refresh_min_interval_seconds },
  'chain.max_seal_age_seconds': {
    type: 'num',
    min: 1,
    max: DELIVERED_RECORD_SECONDS,
    default: GATEWAY_DEFAULTS.max_seal_age_seconds,
    reload: true,
    note: 'at most how long the record of delivered messages is kept',
  },
  'chain.resealers': { type: 'list', default: [], reload: true },
  'lists.moderation_max_bytes': { ...BYTES, default: GATEWAY_DEFAULTS.moderation_max_bytes },
  'lists.moderation_max_bytes_per_sender': { ...BYTES, default: GATEWAY_DEFAULTS.moderation_max_bytes_per_sender },
  'lists.moderation_max_entries': { ...BYTES, max: 2 ** 32, default: GATEWAY_DEFAULTS.moderation_max_entries },
  'inspection.mode': { type: 'enum', values: ['inline', 'remote'], default: GATEWAY_DEFAULTS.inspection_mode },
  'inspection.inspector_url': { type: 'str' },
  'inspection.inspector_servername': { type: 'str' },
  'inspection.inspector_ca': { type: 'list', default: [] },
  'inspection.inspector_timeout_ms': { ...MS, default: GATEWAY_DEFAULTS.inspector_timeout_ms },
  'delivery.host': { type: 'str' },
  'delivery.protocol': { type: 'enum', values: ['smtp', 'lmtp'], default: GATEWAY_DEFAULTS.delivery_protocol },
  /** Default: true with protocol=lmtp, false with smtp. */
  'delivery.delivery_id': { type: 'bool', default: false },
  'delivery.allow_plaintext_over_network': { type: 'bool', default: false },
  'delivery.timeout_ms': { ...MS, default: GATEWAY_DEFAULTS.delivery_timeout_ms },
  'delivery.delay_notice_seconds': { ...SECONDS, default: GATEWAY_DEFAULTS.delay_notice_seconds, reload: true },
  /** Read by the operations listener (src/ops/gateway-ops.ts). */
  'ops.listen': { type: 'str', default: '' },
});

/** Sections whose keys are domain or host names, not declared one by one. */
export const GATEWAY_FREE_SECTIONS = ['policy', 'peers', 'hosts', 'routes'] as const;

/** The one configuration error (src/config/ini.ts), under the name this module always exported. */
export const GatewayConfigError = ConfigError;
export type GatewayConfigError = ConfigError;

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
  const r = new IniReader(GATEWAY_SETTINGS, ini, 'ssmax.ini', dir);
  // every domain of the settings in the one spelling a message's domains are compared in (an internationalised
  // name in its ASCII form: src/chain/alignment.ts canonicalDomain); one that is no domain name is refused
  const domainOf = (section: string, key: string, spelt: string): string => {
    const d = canonicalDomain(spelt.trim());
    if (!d) throw r.fail(section, key, `'${spelt}' is not a domain name`);
    return d;
  };
  const policies = ['require', 'opportunistic', 'none'];
  const policyDomains: Record<string, EncryptionPolicy> = {};
  for (const [k, v] of Object.entries(r.free('policy', ['default']))) {
    if (!policies.includes(v.toLowerCase())) throw r.fail('policy', k, `must be require, opportunistic or none, got '${v}'`);
    policyDomains[domainOf('policy', k, k)] = v.toLowerCase() as EncryptionPolicy;
  }
  const lower = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]));
  const routes: Record<string, { host: string; port: number }> = {};
  for (const [k, v] of Object.entries(r.free('routes'))) {
    routes[domainOf('routes', k, k)] = r.hostPortOf(`routes.${k}`, v, 1);
  }
  const domain = domainOf('main', 'domain', r.get('main.domain'));
  const inspectorCert = r.optPath('keyd.inspector_cert');
  const inspectorKey = r.optPath('keyd.inspector_key');
  let inspection: InspectionSettings = { mode: 'inline' };
  if (r.get('inspection.mode') === 'remote') {
    const url = r.opt('inspection.inspector_url');
    if (!url || !/^https:\/\/[^/]+\/?$/.test(url))
      throw r.fail('inspection', 'inspector_url', `must be https://host:port when mode=remote, got '${url ?? ''}'`);
    const ca = r.paths('inspection.inspector_ca');
    inspection = {
      mode: 'remote',
      url,
      servername: r.opt('inspection.inspector_servername') ?? `inspect.${domain}`,
      ca: ca.length > 0 ? ca : r.paths('keyd.ca'),
      timeoutMs: r.get('inspection.inspector_timeout_ms'),
    };
  }
  const deliveryProtocol = r.get('delivery.protocol');
  // the copies for plain-client users are the decrypted messages, handed over in cleartext: to this machine only,
  // unless the operator accepts that they cross the network (as for clamd, docs/inspection.md)
  const deliveryTo = r.hostPort('delivery.host');
  const deliveryOffMachine = !isLoopbackAddress(deliveryTo.host);
  const allowPlaintextOverNetwork = r.get('delivery.allow_plaintext_over_network');
  if (deliveryOffMachine && !allowPlaintextOverNetwork)
    throw r.fail(
      'delivery',
      'host',
      `${r.get('delivery.host')} is not a loopback address: the gateway hands the mailbox store the decrypted copies for users without an SSMAX client, in cleartext over ${deliveryProtocol.toUpperCase()}, which would cross the network; run the store (or a relay to it) on this machine (127.0.0.1 or [::1]), or set [delivery] allow_plaintext_over_network=true to accept that (docs/delivery.md)`,
    );
  const trustedRelays = r.get('main.trusted_relays');
  for (const t of trustedRelays)
    if (!isAddressOrBlock(t)) throw r.fail('main', 'trusted_relays', `must list IP addresses or CIDR blocks, got '${t}'`);
  return {
    domain,
    localDomains: r
      .get('main.local_domains')
      .map((d) => domainOf('main', 'local_domains', d))
      .concat([domain])
      .filter((d, i, a) => a.indexOf(d) === i),
    hookTimeoutMs: r.get('main.hook_timeout_ms'),
    cpuBudgetMs: r.get('main.cpu_budget_ms'),
    maxCopyBytes: r.get('main.max_copy_bytes'),
    tcpNoDelay: r.get('main.tcp_nodelay'),
    keyd: {
      ...readKeydConnection(r),
      ...(inspectorCert ? { inspectorCert } : {}),
      ...(inspectorKey ? { inspectorKey } : {}),
      userFactsTtlMs: r.get('keyd.user_facts_ttl_ms'),
      notFoundTtlMs: r.get('keyd.not_found_ttl_ms'),
      maxAnswerBytes: r.get('keyd.max_answer_bytes'),
      batch: { ...BATCH_DEFAULTS, windowMs: r.get('keyd.batch_window_ms'), maxOps: r.get('keyd.batch_max_ops') },
    },
    seal: { cert: r.path('seal.cert'), key: r.path('seal.key') },
    pki: { roots: r.paths('pki.roots'), crls: r.paths('pki.crls') },
    policy: { default: r.get('policy.default'), domains: policyDomains },
    peers: Object.fromEntries(Object.entries(r.free('peers')).map(([k, v]) => [domainOf('peers', k, k), v])),
    directory: {
      dns: r.get('directory.dns'),
      dnsServers: r.get('directory.dns_servers'),
      fetchTimeoutMs: r.get('directory.fetch_timeout_ms'),
      retryMs: r.get('directory.retry_ms'),
      hosts: lower(r.free('hosts')),
      allowPrivateAddresses: r.get('directory.allow_private_addresses'),
    },
    routes,
    delivery: {
      ...deliveryTo,
      plaintextOverNetwork: deliveryOffMachine,
      allowPlaintextOverNetwork,
      protocol: deliveryProtocol,
      timeoutMs: r.get('delivery.timeout_ms'),
      delayNoticeMs: r.get('delivery.delay_notice_seconds') * 1000,
      deliveryId: r.has('delivery.delivery_id') ? r.get('delivery.delivery_id') : deliveryProtocol === 'lmtp',
    },
    trustedRelays,
    trustedRelayLogins: r.get('main.trusted_relay_logins'),
    keyExchange: {
      advertise: r.get('key_exchange.advertise'),
      probe: r.get('key_exchange.probe'),
      probeIntervalMs: r.get('key_exchange.probe_interval_seconds') * 1000,
      probeTimeoutMs: r.get('key_exchange.probe_timeout_ms'),
      refreshMinIntervalMs: r.get('key_exchange.refresh_min_interval_seconds') * 1000,
    },
    inspection,
    chain: {
      maxSealAgeMs: r.get('chain.max_seal_age_seconds') * 1000,
      resealers: r.get('chain.resealers').map((d) => domainOf('chain', 'resealers', d)),
    },
    moderation: {
      maxBytes: r.get('lists.moderation_max_bytes'),
      maxBytesPerSender: r.get('lists.moderation_max_bytes_per_sender'),
      maxEntries: r.get('lists.moderation_max_entries'),
    },
  };
}

/** What a reload of ssmax.ini did: the settings ("section.key") taken at once, and those that wait for a restart. */
export interface Reload {
  readonly applied: readonly string[];
  readonly restart: readonly string[];
}

type Settings = typeof GATEWAY_SETTINGS;
/** The names of the settings marked `reload`. */
type ReloadedSetting = { [K in keyof Settings]: Settings[K] extends { readonly reload: true } ? K : never }[keyof Settings];
type Running = { -readonly [K in keyof GatewayConfig]: GatewayConfig[K] };

/**
 * What a reload does for each setting marked `reload` (and for a domain's
 * [policy]): takes its new value from `next` into the running configuration.
 * The type asks for one entry per setting marked `reload` and allows no other,
 * so what the log line names as "in effect now" (the marks) and what is
 * applied (this table) cannot differ.
 */
const APPLY: { readonly [K in ReloadedSetting]: (running: Running, next: GatewayConfig) => void } = {
  // the organisation's domain stays the one the gateway started with
  'main.local_domains': (running, next) => {
    running.localDomains = next.localDomains
      .filter((d) => d !== next.domain)
      .concat([running.domain])
      .filter((d, i, a) => a.indexOf(d) === i);
  },
  'main.hook_timeout_ms': (running, next) => (running.hookTimeoutMs = next.hookTimeoutMs),
  'main.cpu_budget_ms': (running, next) => (running.cpuBudgetMs = next.cpuBudgetMs),
  'main.max_copy_bytes': (running, next) => (running.maxCopyBytes = next.maxCopyBytes),
  'main.trusted_relays': (running, next) => (running.trustedRelays = next.trustedRelays),
  'main.trusted_relay_logins': (running, next) => (running.trustedRelayLogins = next.trustedRelayLogins),
  'policy.default': (running, next) => (running.policy = { ...running.policy, default: next.policy.default }),
  'chain.max_seal_age_seconds': (running, next) => (running.chain = { ...running.chain, maxSealAgeMs: next.chain.maxSealAgeMs }),
  'chain.resealers': (running, next) => (running.chain = { ...running.chain, resealers: next.chain.resealers }),
  'delivery.delay_notice_seconds': (running, next) =>
    (running.delivery = { ...running.delivery, delayNoticeMs: next.delivery.delayNoticeMs }),
};
/** The free sections taken at once, each with what a reload does for any of its keys: a domain's [policy]. */
const APPLY_FREE: Readonly<Record<string, (running: Running, next: GatewayConfig) => void>> = {
  policy: (running, next) => (running.policy = { ...running.policy, domains: next.policy.domains }),
};

/**
 * What a reload does for a changed setting ("section.key"): its entry in
 * APPLY (a setting marked `reload`), or its free section's in APPLY_FREE;
 * undefined for any other name, which waits for a restart — a name is never
 * applied by another setting's entry. One table decides both what is applied
 * and what the log line names as in effect now.
 */
export function reloadApplier(name: string): ((running: Running, next: GatewayConfig) => void) | undefined {
  if (Object.hasOwn(APPLY, name)) return APPLY[name as ReloadedSetting];
  const dot = name.indexOf('.');
  const section = dot > 0 ? name.slice(0, dot) : '';
  if (dot > 0 && dot < name.length - 1 && !Object.hasOwn(GATEWAY_SETTINGS, name) && Object.hasOwn(APPLY_FREE, section))
    return APPLY_FREE[section];
  return undefined;
}

/**
 * Takes a changed ssmax.ini into the running configuration `current` (the
 * object the hooks and the gateway's steps read at each use): the settings
 * marked `reload` that changed take their new values (APPLY); a change to any
 * other is reported in `restart` and waits for a restart. A file that does not
 * parse throws ConfigError and changes nothing.
 */
export function reloadGatewayConfig(current: GatewayConfig, before: Ini, after: Ini, dir: string): Reload {
  const next = parseGatewayConfig(after, dir);
  const changed = changedSettings(GATEWAY_SETTINGS, before, after, 'ssmax.ini', GATEWAY_FREE_SECTIONS);
  const applied: string[] = [];
  const restart: string[] = [];
  for (const n of changed) {
    const apply = reloadApplier(n);
    if (!apply) {
      restart.push(n);
      continue;
    }
    apply(current as Running, next);
    applied.push(n);
  }
  return { applied, restart };
}

/** The gateway's file, as its errors name it. */
const GATEWAY_INI_NAME = 'ssmax.ini';

/** A file a setting of ssmax.ini names ("section.key"): its text; an error naming the setting and the file otherwise. */
export function readText(file: string, setting: string): string {
  return readSettingFile(GATEWAY_INI_NAME, setting, file);
}

export function policyFor(config: GatewayConfig, domain: string): EncryptionPolicy {
  return config.policy.domains[canonicalDomain(domain) || domain.toLowerCase()] ?? config.policy.default;
}
