/**
 * The inspector process's configuration: an ini file
 * (config/ssmax-inspector.ini lists every key with its default). Relative
 * paths are resolved against the file's folder. Every value is checked at
 * startup, with an error naming the key. The inspection rules themselves are
 * the gateway's files: ssmax-inspect.ini and ssmax-dlp.ini (docs/inspection.md).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'ini';

export interface InspectorConfig {
  readonly file: string;
  readonly domain: string;
  readonly host: string;
  readonly port: number;
  /** State folder: the quarantine lives under it (unless ssmax-inspect.ini [quarantine] dir says otherwise). */
  readonly stateDir: string;
  /** The server certificate (inspect.<domain>, inspector role, from the org CA) and the CAs of gateway clients. */
  readonly tls: { readonly cert: string; readonly key: string; readonly clientCas: readonly string[] };
  readonly pki: { readonly roots: readonly string[]; readonly crls: readonly string[] };
  /**
   * Where the organisation's own signed bundle is (docs/security.md): DLEQ proofs are checked against
   * the key it certifies. `url` absent: found by DNS (_ssmax.<domain>), as a gateway finds it;
   * `address`: a fixed address for the URL's host name.
   */
  readonly bundle: { readonly url?: string; readonly address?: string };
  /** keyd, called with the inspector's own inspector-role certificate. */
  readonly keyd: { readonly url: string; readonly servername?: string; readonly ca: readonly string[]; readonly cert: string; readonly key: string; readonly timeoutMs: number };
  /** ssmax-inspect.ini and ssmax-dlp.ini. */
  readonly inspection: { readonly inspect: string; readonly dlpRules: string };
  readonly limits: {
    readonly maxBodyBytes: number; readonly maxInFlight: number; readonly requestTimeoutMs: number;
    /** Time to receive a request's header block (a slower client is answered 408 and dropped); at most requestTimeoutMs. */
    readonly headersTimeoutMs: number;
    /** Largest request header block in bytes (over it: 431). */
    readonly maxHeaderBytes: number;
    /** Most header fields in one request (over it: 431). */
    readonly maxHeaders: number;
  };
}

export class InspectorConfigError extends Error {}

export const INSPECTOR_DEFAULTS = {
  listen: '127.0.0.1:7543',
  state_dir: 'inspector-state',
  timeout_ms: 5000,
  inspect: 'ssmax-inspect.ini',
  dlp_rules: 'ssmax-dlp.ini',
  max_body_bytes: 52428800,
  max_in_flight: 64,
  request_timeout_ms: 30000,
  headers_timeout_ms: 5000,
  max_header_bytes: 16384,
  max_headers: 64,
} as const;

type Section = Record<string, unknown>;

export function loadInspectorConfig(file: string): InspectorConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InspectorConfigError(`Cannot read inspector config "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseInspectorConfig(parse(text) as Record<string, Section>, file);
}

export function parseInspectorConfig(ini: Record<string, Section | undefined>, file: string): InspectorConfig {
  const base = dirname(resolve(file));
  const sec = (name: string): Section => (ini[name] ?? {}) as Section;
  const opt = (s: string, k: string): string | undefined => {
    const v = sec(s)[k];
    if (typeof v === 'number') return String(v);
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const need = (s: string, k: string): string => {
    const v = opt(s, k);
    if (v === undefined) throw new InspectorConfigError(`Config "${file}": [${s}] ${k} is required`);
    return v;
  };
  const path = (p: string) => resolve(base, p);
  const paths = (s: string, k: string, required: boolean) => {
    const v = required ? need(s, k) : opt(s, k);
    return v ? v.split(',').map((x) => x.trim()).filter(Boolean).map(path) : [];
  };
  const num = (s: string, k: 'timeout_ms' | 'max_body_bytes' | 'max_in_flight' | 'request_timeout_ms' | 'headers_timeout_ms' | 'max_header_bytes' | 'max_headers', min: number, max: number): number => {
    const raw = opt(s, k);
    const v = raw === undefined ? INSPECTOR_DEFAULTS[k] : Number(raw);
    if (!Number.isFinite(v) || v < min || v > max) throw new InspectorConfigError(`Config "${file}": [${s}] ${k} must be a number from ${min} to ${max} (got "${raw}")`);
    return v;
  };
  const listen = opt('inspector', 'listen') ?? INSPECTOR_DEFAULTS.listen;
  const m = /^(.+):(\d{1,5})$/.exec(listen);
  if (!m) throw new InspectorConfigError(`Config "${file}": [inspector] listen must be host:port (got "${listen}")`);
  const domain = need('inspector', 'domain').toLowerCase();
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(domain)) throw new InspectorConfigError(`Config "${file}": [inspector] domain "${domain}" is not a domain name`);
  const keydUrl = need('keyd', 'url');
  if (!/^https:\/\/[^/]+\/?$/.test(keydUrl)) throw new InspectorConfigError(`Config "${file}": [keyd] url must be https://host:port (got "${keydUrl}")`);
  const servername = opt('keyd', 'servername');
  return {
    file, domain, host: m[1]!, port: Number(m[2]),
    stateDir: path(opt('inspector', 'state_dir') ?? INSPECTOR_DEFAULTS.state_dir),
    tls: { cert: path(need('tls', 'cert')), key: path(need('tls', 'key')), clientCas: paths('tls', 'client_ca', true) },
    pki: { roots: paths('pki', 'roots', true), crls: paths('pki', 'crls', false) },
    keyd: {
      url: keydUrl, ...(servername ? { servername } : {}), ca: paths('keyd', 'ca', true), cert: path(need('keyd', 'cert')), key: path(need('keyd', 'key')),
      timeoutMs: num('keyd', 'timeout_ms', 100, 600000),
    },
    bundle: { ...(opt('bundle', 'url') ? { url: opt('bundle', 'url') } : {}), ...(opt('bundle', 'address') ? { address: opt('bundle', 'address') } : {}) },
    inspection: { inspect: path(opt('inspection', 'inspect') ?? INSPECTOR_DEFAULTS.inspect), dlpRules: path(opt('inspection', 'dlp_rules') ?? INSPECTOR_DEFAULTS.dlp_rules) },
    limits: {
      maxBodyBytes: num('limits', 'max_body_bytes', 1024, 1 << 30), maxInFlight: num('limits', 'max_in_flight', 1, 100000), requestTimeoutMs: num('limits', 'request_timeout_ms', 100, 600000),
      headersTimeoutMs: num('limits', 'headers_timeout_ms', 100, 600000), maxHeaderBytes: num('limits', 'max_header_bytes', 1024, 1 << 20), maxHeaders: num('limits', 'max_headers', 8, 1000),
    },
  };
}
