/**
 * The inspector process's configuration: an ini file
 * (config/ssmax-inspector.ini lists every key with its default). Relative
 * paths are resolved against the file's folder. Every value is checked at
 * startup, with an error naming the key. The inspection rules themselves are
 * the gateway's files: ssmax-inspect.ini and ssmax-dlp.ini (docs/inspection.md).
 */
import {
  ConfigError,
  type Ini,
  IniReader,
  defineSettings,
  readIniFile,
  type ServiceHead,
  readServiceHead,
  refuseUnknown,
} from '../config/ini';
import { LISTENER_DEFAULTS } from '../net/listener-limits';
import { OPS_DEFAULTS } from '../ops/server';
import type { RequestLimits } from '../net/https-server';
import { type KeydConnection, keydConnectionSettings, readKeydConnection } from '../keyd/client-settings';

export interface InspectorConfig extends ServiceHead {
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
  /** keyd, called with the inspector's own inspector-role certificate (paths). */
  readonly keyd: KeydConnection;
  /** ssmax-inspect.ini and ssmax-dlp.ini. */
  readonly inspection: { readonly inspect: string; readonly dlpRules: string };
  readonly limits: RequestLimits;
}

/** The one configuration error (src/config/ini.ts), under the name this module always exported. */
export const InspectorConfigError = ConfigError;
export type InspectorConfigError = ConfigError;

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
  max_connections: LISTENER_DEFAULTS.maxConnections,
} as const;

const MS = { type: 'num', min: 100, max: 600000 } as const;

/** The settings of the inspector's config file (read at start; [ops]: ops/service-ops.ts). */
export const INSPECTOR_SETTINGS = defineSettings({
  'inspector.domain': { type: 'str' },
  'inspector.listen': { type: 'str', default: INSPECTOR_DEFAULTS.listen },
  'inspector.state_dir': { type: 'str', default: INSPECTOR_DEFAULTS.state_dir },
  'tls.cert': { type: 'str' },
  'tls.key': { type: 'str' },
  'tls.client_ca': { type: 'list' },
  'pki.roots': { type: 'list' },
  'pki.crls': { type: 'list', default: [] },
  'bundle.url': { type: 'str' },
  'bundle.address': { type: 'str' },
  ...keydConnectionSettings({ ...MS, default: INSPECTOR_DEFAULTS.timeout_ms }),
  'inspection.inspect': { type: 'str', default: INSPECTOR_DEFAULTS.inspect },
  'inspection.dlp_rules': { type: 'str', default: INSPECTOR_DEFAULTS.dlp_rules },
  'limits.max_body_bytes': { type: 'num', min: 1024, max: 1 << 30, whole: true, default: INSPECTOR_DEFAULTS.max_body_bytes },
  'limits.max_in_flight': { type: 'num', min: 1, max: 100000, whole: true, default: INSPECTOR_DEFAULTS.max_in_flight },
  'limits.request_timeout_ms': { ...MS, default: INSPECTOR_DEFAULTS.request_timeout_ms },
  'limits.headers_timeout_ms': { ...MS, default: INSPECTOR_DEFAULTS.headers_timeout_ms },
  'limits.max_header_bytes': { type: 'num', min: 1024, max: 1 << 20, whole: true, default: INSPECTOR_DEFAULTS.max_header_bytes },
  'limits.max_headers': { type: 'num', min: 8, max: 1000, whole: true, default: INSPECTOR_DEFAULTS.max_headers },
  'limits.max_connections': { type: 'num', min: 1, max: 1000000, whole: true, default: INSPECTOR_DEFAULTS.max_connections },
  'ops.listen': { type: 'str', default: OPS_DEFAULTS.listen },
});

export function loadInspectorConfig(file: string): InspectorConfig {
  return parseInspectorConfig(readIniFile(file, 'inspector config'), file);
}

export function parseInspectorConfig(ini: Ini, file: string): InspectorConfig {
  const r = new IniReader(INSPECTOR_SETTINGS, ini, file);
  refuseUnknown(r); // first: a misspelt key or section stops the inspector, named
  const head = readServiceHead(r, 'inspector');
  const keyd = readKeydConnection(r); // first: where keyd is decides what the rest is for
  const url = r.opt('bundle.url');
  const address = r.opt('bundle.address');
  return {
    ...head,
    stateDir: r.path('inspector.state_dir'),
    tls: { cert: r.path('tls.cert'), key: r.path('tls.key'), clientCas: r.paths('tls.client_ca') },
    pki: { roots: r.paths('pki.roots'), crls: r.paths('pki.crls') },
    keyd,
    bundle: { ...(url ? { url } : {}), ...(address ? { address } : {}) },
    inspection: { inspect: r.path('inspection.inspect'), dlpRules: r.path('inspection.dlp_rules') },
    limits: {
      maxBodyBytes: r.get('limits.max_body_bytes'),
      maxInFlight: r.get('limits.max_in_flight'),
      requestTimeoutMs: r.get('limits.request_timeout_ms'),
      headersTimeoutMs: r.get('limits.headers_timeout_ms'),
      maxHeaderBytes: r.get('limits.max_header_bytes'),
      maxHeaders: r.get('limits.max_headers'),
      maxConnections: r.get('limits.max_connections'),
    },
  };
}
