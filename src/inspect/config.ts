/**
 * Inspection settings of a gateway: config/ssmax-inspect.ini (switches,
 * clamd, quarantine) and config/ssmax-dlp.ini (the DLP rules, one section
 * each). Both ship with every key and default written out.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'ini';
import { ClamdClient } from './clamd';
import { type DlpRule, parseDlpRules } from './dlp';
import type { AvSettings, DlpSettings } from './inspect';

export interface InspectionConfig {
  readonly dlp?: DlpSettings;
  readonly av?: AvSettings;
  /** Where quarantined messages are kept (encrypted). */
  readonly quarantineDir: string;
}

export class InspectConfigError extends Error {}

export const INSPECT_DEFAULTS = { dlp: false, av: false, clamd_timeout_ms: 10000, clamd_max_connections: 4, on_infected: 'reject', on_unavailable: 'tempfail' } as const;

type Ini = Record<string, Record<string, unknown> | undefined>;

function bool(v: unknown, def: boolean, where: string): boolean {
  if (v === undefined || v === '') return def;
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  throw new InspectConfigError(`ssmax-inspect.ini: ${where} must be true or false`);
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
    dlp = { rules };
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
    av = {
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
