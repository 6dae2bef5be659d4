/**
 * Inspection settings of a gateway: config/ssmax-inspect.ini (switches,
 * clamd, quarantine) and config/ssmax-dlp.ini (the DLP rules, one section
 * each). Both ship with every key and default written out.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'ini';
import { ClamdClient } from './clamd';
import { type DlpAction, type DlpRule, parseDlpRules } from './dlp';
import { EXTRACT_DEFAULTS, type ExtractLimits } from './extract';
import type { AvSettings, DlpSettings } from './inspect';

export interface InspectionConfig {
  readonly dlp?: DlpSettings;
  readonly av?: AvSettings;
  /** Where quarantined messages are kept (encrypted). */
  readonly quarantineDir: string;
}

export class InspectConfigError extends Error {}

export const INSPECT_DEFAULTS = { dlp: false, av: false, clamd_timeout_ms: 10000, clamd_max_connections: 4, on_infected: 'reject', on_unavailable: 'tempfail',
  dlp_max_depth: EXTRACT_DEFAULTS.maxDepth, dlp_max_document_bytes: EXTRACT_DEFAULTS.maxDocumentBytes, dlp_max_text_chars: EXTRACT_DEFAULTS.maxTextChars, dlp_timeout_ms: EXTRACT_DEFAULTS.timeoutMs, dlp_on_unreadable: 'quarantine',
  clamd_config: '' } as const;

type Ini = Record<string, Record<string, unknown> | undefined>;

function bool(v: unknown, def: boolean, where: string): boolean {
  if (v === undefined || v === '') return def;
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  throw new InspectConfigError(`ssmax-inspect.ini: ${where} must be true or false`);
}

function count(v: unknown, def: number, where: string, min = 1): number {
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InspectConfigError(`ssmax-inspect.ini: ${where} must be an integer of at least ${min} (got "${String(v)}")`);
  return n;
}

/** `inspect` as parsed from ssmax-inspect.ini, `dlpRules` from ssmax-dlp.ini; `dir` the config folder, `stateDir` the gateway's state folder. */
export function parseInspectionConfig(inspect: Ini, dlpRules: Ini, dir: string, stateDir: string): InspectionConfig {
  const s = (n: string) => (inspect[n] ?? {}) as Record<string, unknown>;
  let dlp: DlpSettings | undefined;
  if (bool(s('dlp').enabled, INSPECT_DEFAULTS.dlp, '[dlp] enabled')) {
    let rules: DlpRule[];
    try {
      rules = parseDlpRules(dlpRules);
    } catch (err) {
      throw new InspectConfigError(`ssmax-dlp.ini: ${(err as Error).message}`, { cause: err });
    }
    const d = s('dlp');
    const limits: ExtractLimits = {
      maxDepth: count(d.max_depth, INSPECT_DEFAULTS.dlp_max_depth, '[dlp] max_depth', 0),
      maxDocumentBytes: count(d.max_document_bytes, INSPECT_DEFAULTS.dlp_max_document_bytes, '[dlp] max_document_bytes'),
      maxTextChars: count(d.max_text_chars, INSPECT_DEFAULTS.dlp_max_text_chars, '[dlp] max_text_chars'),
      timeoutMs: count(d.timeout_ms, INSPECT_DEFAULTS.dlp_timeout_ms, '[dlp] timeout_ms'),
    };
    const onUnreadable = String(d.on_unreadable ?? INSPECT_DEFAULTS.dlp_on_unreadable);
    if (onUnreadable !== 'reject' && onUnreadable !== 'quarantine' && onUnreadable !== 'tag') throw new InspectConfigError('ssmax-inspect.ini: [dlp] on_unreadable must be reject, quarantine or tag');
    dlp = { rules, limits, onUnreadable: onUnreadable as DlpAction };
  }
  let av: AvSettings | undefined;
  if (bool(s('av').enabled, INSPECT_DEFAULTS.av, '[av] enabled')) {
    const clamd = String(s('av').clamd ?? '');
    const m = /^(.+):(\d{1,5})$/.exec(clamd);
    const socketPath = clamd.startsWith('/') ? clamd : undefined;
    if (!m && !socketPath) throw new InspectConfigError(`ssmax-inspect.ini: [av] clamd must be host:port or a socket path (got "${clamd}")`);
    const onInfected = String(s('av').on_infected ?? INSPECT_DEFAULTS.on_infected);
    const onUnavailable = String(s('av').on_unavailable ?? INSPECT_DEFAULTS.on_unavailable);
    if (onInfected !== 'reject' && onInfected !== 'quarantine') throw new InspectConfigError('ssmax-inspect.ini: [av] on_infected must be reject or quarantine');
    if (onUnavailable !== 'tempfail' && onUnavailable !== 'tag') throw new InspectConfigError('ssmax-inspect.ini: [av] on_unavailable must be tempfail or tag');
    const timeoutMs = Number(s('av').timeout_ms ?? INSPECT_DEFAULTS.clamd_timeout_ms);
    const maxConnections = Number(s('av').max_connections ?? INSPECT_DEFAULTS.clamd_max_connections);
    const clamdConfig = String(s('av').clamd_config ?? INSPECT_DEFAULTS.clamd_config);
    av = {
      ...(clamdConfig ? { clamdConfig: resolve(dir, clamdConfig) } : {}),
      client: new ClamdClient({ ...(socketPath ? { socketPath } : { host: m![1]!, port: Number(m![2]) }), timeoutMs, maxConnections }),
      onInfected, onUnavailable,
    };
  }
  const q = s('quarantine').dir;
  return { ...(dlp ? { dlp } : {}), ...(av ? { av } : {}), quarantineDir: typeof q === 'string' && q ? resolve(dir, q) : resolve(stateDir, 'quarantine') };
}

export function readIni(file: string): Ini {
  try {
    return parse(readFileSync(file, 'utf8')) as Ini;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
}
