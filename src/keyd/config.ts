/**
 * keyd's configuration: an ini file (config/ssmax-keyd.ini lists every key
 * with its default). Relative paths are resolved against the file's folder.
 * Every value is checked at startup, with an error naming the key.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'ini';
import { KeydError } from './errors';

export interface KeydConfig {
  readonly file: string;
  readonly domain: string;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly masterKeyFile: string;
  readonly tls: { readonly cert: string; readonly key: string; readonly clientCas: readonly string[] };
  readonly pki: { readonly roots: readonly string[]; readonly crls: readonly string[]; readonly orgCa: string; readonly orgCaCert?: string; readonly orgCaKey?: string; readonly orgCaPassphraseFile?: string };
  readonly keys: { readonly validityMs: number; readonly renewBeforeMs: number; readonly graceMs: number; readonly scheduleMs: number };
  readonly trackingRetentionMs: number;
  readonly limits: {
    readonly maxBodyBytes: number; readonly maxInFlight: number; readonly requestTimeoutMs: number; readonly cryptoThreads: number | 'auto';
    readonly headersTimeoutMs: number; readonly maxHeaderBytes: number; readonly maxHeaders: number; readonly maxBatchOps: number;
  };
}

const DAY = 86400000;

export const KEYD_DEFAULTS = {
  listen: '127.0.0.1:7443',
  validity_days: 90,
  renew_before_days: 14,
  grace_days: 30,
  schedule_seconds: 60,
  retention_days: 365,
  max_body_bytes: 65536,
  max_in_flight: 256,
  request_timeout_ms: 5000,
  headers_timeout_ms: 5000,
  max_header_bytes: 16384,
  max_headers: 64,
  crypto_threads: 'auto',
  max_batch_ops: 64,
} as const;

type Section = Record<string, unknown>;

export function loadKeydConfig(file: string): KeydConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KeydError('config', `Cannot read keyd config "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const ini = parse(text) as Record<string, Section>;
  const base = dirname(resolve(file));
  const sec = (name: string): Section => (ini[name] ?? {}) as Section;
  const need = (s: string, k: string): string => {
    const v = sec(s)[k];
    if (typeof v !== 'string' || v.trim() === '') throw new KeydError('config', `Config "${file}": [${s}] ${k} is required`);
    return v.trim();
  };
  const opt = (s: string, k: string): string | undefined => {
    const v = sec(s)[k];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const path = (p: string) => resolve(base, p);
  const paths = (s: string, k: string, required: boolean) => {
    const v = required ? need(s, k) : opt(s, k);
    return v ? v.split(',').map((x) => path(x.trim())).filter((x) => x !== base) : [];
  };
  const num = (s: string, k: keyof typeof KEYD_DEFAULTS, min: number, max: number): number => {
    const raw = opt(s, k);
    const v = raw === undefined ? Number(KEYD_DEFAULTS[k]) : Number(raw);
    if (!Number.isFinite(v) || v < min || v > max) throw new KeydError('config', `Config "${file}": [${s}] ${k} must be a number from ${min} to ${max} (got "${raw}")`);
    return v;
  };
  const threads = (): number | 'auto' => {
    const raw = opt('limits', 'crypto_threads') ?? KEYD_DEFAULTS.crypto_threads;
    const v = Number(raw);
    if (raw === 'auto') return raw;
    if (!/^[0-9]+$/.test(raw) || v > 64) throw new KeydError('config', `Config "${file}": [limits] crypto_threads must be "auto" or a whole number from 0 to 64 (got "${raw}")`);
    return v;
  };
  const listen = opt('keyd', 'listen') ?? KEYD_DEFAULTS.listen;
  const m = /^(.+):(\d{1,5})$/.exec(listen);
  if (!m) throw new KeydError('config', `Config "${file}": [keyd] listen must be host:port (got "${listen}")`);
  const domain = need('keyd', 'domain').toLowerCase();
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(domain)) throw new KeydError('config', `Config "${file}": [keyd] domain "${domain}" is not a domain name`);
  const keys = {
    validityMs: num('keys', 'validity_days', 0.0001, 3650) * DAY,
    renewBeforeMs: num('keys', 'renew_before_days', 0, 3650) * DAY,
    graceMs: num('keys', 'grace_days', 0, 3650) * DAY,
    scheduleMs: num('keys', 'schedule_seconds', 1, 86400) * 1000,
  };
  if (keys.renewBeforeMs >= keys.validityMs) throw new KeydError('config', `Config "${file}": [keys] renew_before_days must be less than validity_days`);
  const orgCaCert = opt('pki', 'org_ca_cert');
  const orgCaKey = opt('pki', 'org_ca_key');
  const orgCaPassphraseFile = opt('pki', 'org_ca_passphrase_file');
  return {
    file, domain, host: m[1]!, port: Number(m[2]),
    dataDir: path(need('keyd', 'data_dir')),
    masterKeyFile: path(need('keyd', 'master_key')),
    tls: { cert: path(need('tls', 'cert')), key: path(need('tls', 'key')), clientCas: paths('tls', 'client_ca', true) },
    pki: {
      roots: paths('pki', 'roots', true), crls: paths('pki', 'crls', false), orgCa: path(need('pki', 'org_ca')),
      ...(orgCaCert ? { orgCaCert: path(orgCaCert) } : {}), ...(orgCaKey ? { orgCaKey: path(orgCaKey) } : {}),
      ...(orgCaPassphraseFile ? { orgCaPassphraseFile: path(orgCaPassphraseFile) } : {}),
    },
    keys,
    trackingRetentionMs: num('tracking', 'retention_days', 0, 36500) * DAY,
    limits: { maxBodyBytes: num('limits', 'max_body_bytes', 1024, 16 << 20), maxInFlight: num('limits', 'max_in_flight', 1, 100000), requestTimeoutMs: num('limits', 'request_timeout_ms', 100, 600000), cryptoThreads: threads(),
      headersTimeoutMs: num('limits', 'headers_timeout_ms', 100, 600000), maxHeaderBytes: num('limits', 'max_header_bytes', 1024, 1 << 20), maxHeaders: num('limits', 'max_headers', 8, 1000),
      maxBatchOps: num('limits', 'max_batch_ops', 1, 1024),
    },
  };
}
