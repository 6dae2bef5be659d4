/**
 * keyd's configuration: an ini file (config/ssmax-keyd.ini lists every key
 * with its default), its settings declared in KEYD_SETTINGS. Relative paths
 * are resolved against the file's folder. Every value is checked at startup,
 * with an error naming the file, section and key (ConfigError).
 */
import { IniReader, defineSettings, readIniFile, type ServiceHead, readServiceHead, refuseUnknown } from '../config/ini';
import { CERT_SETTINGS } from './cert-renewal';
import { CRL_SETTINGS } from './renewal';
import { LISTENER_DEFAULTS } from '../net/listener-limits';
import { OPS_DEFAULTS } from '../ops/server';
import type { RequestLimits } from '../net/https-server';

export interface KeydConfig extends ServiceHead {
  readonly dataDir: string;
  readonly masterKeyFile: string;
  readonly tls: { readonly cert: string; readonly key: string; readonly clientCas: readonly string[] };
  readonly pki: {
    readonly roots: readonly string[];
    readonly crls: readonly string[];
    readonly orgCa: string;
    readonly orgCaCert?: string;
    readonly orgCaKey?: string;
    readonly orgCaPassphraseFile?: string;
    /**
     * The org CA's record (ca.json of its `ssmax ca` folder) whose revocations keyd reads beside [pki] crls
     * (src/keyd/ca-revocations.ts): `auto` (absent: the same) the one beside org_ca_cert when there is one, `none`
     * none, else that file or folder, which must then be readable.
     */
    readonly orgCaState?: string;
  };
  readonly keys: { readonly validityMs: number; readonly renewBeforeMs: number; readonly graceMs: number; readonly scheduleMs: number };
  readonly trackingRetentionMs: number;
  readonly limits: RequestLimits & { readonly cryptoThreads: number | 'auto'; readonly maxBatchOps: number };
}

const DAY = 86400000;

export const KEYD_DEFAULTS = {
  listen: '127.0.0.1:7443',
  validity_days: 90,
  renew_before_days: 14,
  grace_days: 30,
  schedule_seconds: 60,
  retention_days: 365,
  // a re-encryption to a peer carries the peer's certificate, chain and CRLs, as much as a whole bundle
  // (MAX_BUNDLE_BYTES, 1 MiB): 2 MiB leaves room for the request around them
  max_body_bytes: 2 * 1024 * 1024,
  max_in_flight: 256,
  request_timeout_ms: 5000,
  headers_timeout_ms: 5000,
  max_header_bytes: 16384,
  max_headers: 64,
  max_connections: LISTENER_DEFAULTS.maxConnections,
  crypto_threads: 'auto',
  max_batch_ops: 64,
} as const;

const DAYS = { type: 'num', min: 0, max: 3650 } as const;
const MS = { type: 'num', min: 100, max: 600000 } as const;

/** The settings of keyd's config file ([crl] and [certificates]: renewal.ts, cert-renewal.ts; [ops]: ops/keyd-ops.ts). Read at start. */
export const KEYD_SETTINGS = defineSettings({
  'keyd.domain': { type: 'str' },
  'keyd.listen': { type: 'str', default: KEYD_DEFAULTS.listen },
  'keyd.data_dir': { type: 'str' },
  'keyd.master_key': { type: 'str' },
  'tls.cert': { type: 'str' },
  'tls.key': { type: 'str' },
  'tls.client_ca': { type: 'list' },
  'pki.org_ca': { type: 'str' },
  'pki.roots': { type: 'list' },
  'pki.crls': { type: 'list', default: [] },
  'pki.org_ca_cert': { type: 'str' },
  'pki.org_ca_key': { type: 'str' },
  'pki.org_ca_passphrase_file': { type: 'str' },
  'pki.org_ca_state': { type: 'str', default: 'auto' },
  'keys.validity_days': { ...DAYS, min: 0.0001, default: KEYD_DEFAULTS.validity_days },
  'keys.renew_before_days': { ...DAYS, default: KEYD_DEFAULTS.renew_before_days },
  'keys.grace_days': { ...DAYS, default: KEYD_DEFAULTS.grace_days },
  'keys.schedule_seconds': { type: 'num', min: 1, max: 86400, default: KEYD_DEFAULTS.schedule_seconds },
  'tracking.retention_days': { ...DAYS, max: 36500, default: KEYD_DEFAULTS.retention_days },
  'limits.max_body_bytes': { type: 'num', min: 1024, max: 16 << 20, whole: true, default: KEYD_DEFAULTS.max_body_bytes },
  'limits.max_in_flight': { type: 'num', min: 1, max: 100000, whole: true, default: KEYD_DEFAULTS.max_in_flight },
  'limits.request_timeout_ms': { ...MS, default: KEYD_DEFAULTS.request_timeout_ms },
  'limits.headers_timeout_ms': { ...MS, default: KEYD_DEFAULTS.headers_timeout_ms },
  'limits.max_header_bytes': { type: 'num', min: 1024, max: 1 << 20, whole: true, default: KEYD_DEFAULTS.max_header_bytes },
  'limits.max_headers': { type: 'num', min: 8, max: 1000, whole: true, default: KEYD_DEFAULTS.max_headers },
  'limits.max_connections': { type: 'num', min: 1, max: 1000000, whole: true, default: KEYD_DEFAULTS.max_connections },
  /** "auto" or a whole number from 0 to 64. */
  'limits.crypto_threads': { type: 'str', default: KEYD_DEFAULTS.crypto_threads },
  'limits.max_batch_ops': { type: 'num', min: 1, max: 1024, whole: true, default: KEYD_DEFAULTS.max_batch_ops },
  'ops.listen': { type: 'str', default: OPS_DEFAULTS.listen },
});

export function loadKeydConfig(file: string): KeydConfig {
  const ini = readIniFile(file, 'keyd config');
  // first: a misspelt key or section stops keyd, named, instead of leaving a default in force ([crl] and [certificates] too)
  refuseUnknown(new IniReader({ ...KEYD_SETTINGS, ...CRL_SETTINGS, ...CERT_SETTINGS }, ini, file));
  const r = new IniReader(KEYD_SETTINGS, ini, file);
  const threads = (): number | 'auto' => {
    const raw = r.get('limits.crypto_threads');
    if (raw === 'auto') return raw;
    if (!/^[0-9]+$/.test(raw) || Number(raw) > 64)
      throw r.fail('limits', 'crypto_threads', `must be "auto" or a whole number from 0 to 64, got '${raw}'`);
    return Number(raw);
  };
  const head = readServiceHead(r, 'keyd');
  const keys = {
    validityMs: r.get('keys.validity_days') * DAY,
    renewBeforeMs: r.get('keys.renew_before_days') * DAY,
    graceMs: r.get('keys.grace_days') * DAY,
    scheduleMs: r.get('keys.schedule_seconds') * 1000,
  };
  if (keys.renewBeforeMs >= keys.validityMs) throw r.fail('keys', 'renew_before_days', 'must be less than validity_days');
  const orgCaCert = r.optPath('pki.org_ca_cert');
  const orgCaKey = r.optPath('pki.org_ca_key');
  const orgCaPassphraseFile = r.optPath('pki.org_ca_passphrase_file');
  const caState = r.get('pki.org_ca_state');
  const orgCaState = caState === 'auto' || caState === 'none' ? caState : r.path('pki.org_ca_state');
  return {
    ...head,
    dataDir: r.path('keyd.data_dir'),
    masterKeyFile: r.path('keyd.master_key'),
    tls: { cert: r.path('tls.cert'), key: r.path('tls.key'), clientCas: r.paths('tls.client_ca') },
    pki: {
      roots: r.paths('pki.roots'),
      crls: r.paths('pki.crls'),
      orgCa: r.path('pki.org_ca'),
      ...(orgCaCert ? { orgCaCert } : {}),
      ...(orgCaKey ? { orgCaKey } : {}),
      ...(orgCaPassphraseFile ? { orgCaPassphraseFile } : {}),
      orgCaState,
    },
    keys,
    trackingRetentionMs: r.get('tracking.retention_days') * DAY,
    limits: {
      maxBodyBytes: r.get('limits.max_body_bytes'),
      maxInFlight: r.get('limits.max_in_flight'),
      requestTimeoutMs: r.get('limits.request_timeout_ms'),
      cryptoThreads: threads(),
      headersTimeoutMs: r.get('limits.headers_timeout_ms'),
      maxHeaderBytes: r.get('limits.max_header_bytes'),
      maxHeaders: r.get('limits.max_headers'),
      maxConnections: r.get('limits.max_connections'),
      maxBatchOps: r.get('limits.max_batch_ops'),
    },
  };
}
