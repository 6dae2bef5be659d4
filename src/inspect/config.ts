/**
 * Inspection settings of a gateway: config/ssmax-inspect.ini (switches,
 * clamd, quarantine) and config/ssmax-dlp.ini (the DLP rules, one section
 * each). Both ship with every key and default written out.
 */
import { resolve } from 'node:path';
import { ConfigError, type Ini, IniReader, defineSettings, knownNamesOf, readIniFile, settingError, unknownError } from '../config/ini';
import { ClamdClient } from './clamd';
import { isLoopbackAddress } from '../net/loopback';
import { clamdSettingsFindings } from './clamd-settings';
import { DLP_KNOWN, type DlpAction, type DlpRule, parseDlpRules } from './dlp';
import { EXTRACT_DEFAULTS, type ExtractLimits } from './extract';
import type { AvSettings, DlpSettings } from './inspect';
import { QUARANTINE_CAPS, type QuarantineCaps } from './quarantine';

export interface InspectionConfig {
  readonly dlp?: DlpSettings;
  readonly av?: AvSettings;
  /** Where quarantined messages are kept (encrypted). */
  readonly quarantineDir: string;
  /**
   * The quarantine's caps: bytes held in all, by one envelope sender, and messages held (over one: 4xx, 4.3.1, retry
   * later; a message that alone is over a byte cap: 552 5.3.4).
   */
  readonly quarantineCaps?: QuarantineCaps;
}

/** The one configuration error (src/config/ini.ts), under the name this module always exported. */
export const InspectConfigError = ConfigError;
export type InspectConfigError = ConfigError;

export const INSPECT_DEFAULTS = {
  dlp: false,
  av: false,
  clamd_timeout_ms: 10000,
  clamd_max_connections: 4,
  on_infected: 'reject',
  on_unavailable: 'tempfail',
  dlp_max_depth: EXTRACT_DEFAULTS.maxDepth,
  dlp_max_document_bytes: EXTRACT_DEFAULTS.maxDocumentBytes,
  dlp_max_text_chars: EXTRACT_DEFAULTS.maxTextChars,
  dlp_timeout_ms: EXTRACT_DEFAULTS.timeoutMs,
  dlp_on_unreadable: 'quarantine',
  clamd_config: '',
  allow_plaintext_on_disk: false,
  allow_plaintext_over_network: false,
  clamd: '127.0.0.1:3310',
  quarantine_max_bytes: QUARANTINE_CAPS.maxBytes,
  quarantine_max_bytes_per_sender: QUARANTINE_CAPS.maxBytesPerSender,
  quarantine_max_entries: QUARANTINE_CAPS.maxEntries,
} as const;

const COUNT = { type: 'num', min: 1, max: 2 ** 40, whole: true } as const;

/** The settings of ssmax-inspect.ini (read once at start: a change takes effect after a restart). */
export const INSPECT_SETTINGS = defineSettings({
  'dlp.enabled': { type: 'bool', default: INSPECT_DEFAULTS.dlp },
  'dlp.max_depth': { ...COUNT, min: 0, max: 100, default: INSPECT_DEFAULTS.dlp_max_depth },
  'dlp.max_document_bytes': { ...COUNT, default: INSPECT_DEFAULTS.dlp_max_document_bytes },
  'dlp.max_text_chars': { ...COUNT, default: INSPECT_DEFAULTS.dlp_max_text_chars },
  'dlp.timeout_ms': { ...COUNT, max: 3600000, default: INSPECT_DEFAULTS.dlp_timeout_ms },
  'dlp.on_unreadable': { type: 'enum', values: ['reject', 'quarantine', 'tag'], default: INSPECT_DEFAULTS.dlp_on_unreadable },
  'av.enabled': { type: 'bool', default: INSPECT_DEFAULTS.av },
  'av.clamd': { type: 'str', default: INSPECT_DEFAULTS.clamd },
  'av.timeout_ms': { ...COUNT, max: 3600000, default: INSPECT_DEFAULTS.clamd_timeout_ms },
  'av.max_connections': { ...COUNT, max: 1024, default: INSPECT_DEFAULTS.clamd_max_connections },
  'av.on_infected': { type: 'enum', values: ['reject', 'quarantine'], default: INSPECT_DEFAULTS.on_infected },
  'av.on_unavailable': { type: 'enum', values: ['tempfail', 'tag'], default: INSPECT_DEFAULTS.on_unavailable },
  'av.clamd_config': { type: 'str', default: INSPECT_DEFAULTS.clamd_config },
  'av.allow_plaintext_on_disk': { type: 'bool', default: INSPECT_DEFAULTS.allow_plaintext_on_disk },
  'av.allow_plaintext_over_network': { type: 'bool', default: INSPECT_DEFAULTS.allow_plaintext_over_network },
  'quarantine.dir': { type: 'str' },
  'quarantine.max_bytes': { ...COUNT, max: 2 ** 50, default: INSPECT_DEFAULTS.quarantine_max_bytes },
  'quarantine.max_bytes_per_sender': { ...COUNT, max: 2 ** 50, default: INSPECT_DEFAULTS.quarantine_max_bytes_per_sender },
  'quarantine.max_entries': { ...COUNT, max: 2 ** 32, default: INSPECT_DEFAULTS.quarantine_max_entries },
});

/** `inspect` as parsed from ssmax-inspect.ini, `dlpRules` from ssmax-dlp.ini; `dir` the config folder, `stateDir` the gateway's state folder. */
export function parseInspectionConfig(inspect: Ini, dlpRules: Ini, dir: string, stateDir: string): InspectionConfig {
  const r = new IniReader(INSPECT_SETTINGS, inspect, 'ssmax-inspect.ini', dir);
  let dlp: DlpSettings | undefined;
  if (r.get('dlp.enabled')) {
    let rules: DlpRule[];
    try {
      rules = parseDlpRules(dlpRules);
    } catch (err) {
      throw new ConfigError(`ssmax-dlp.ini: ${(err as Error).message}`, { file: 'ssmax-dlp.ini' }, { cause: err });
    }
    const limits: ExtractLimits = {
      maxDepth: r.get('dlp.max_depth'),
      maxDocumentBytes: r.get('dlp.max_document_bytes'),
      maxTextChars: r.get('dlp.max_text_chars'),
      timeoutMs: r.get('dlp.timeout_ms'),
    };
    dlp = { rules, limits, onUnreadable: r.get('dlp.on_unreadable') as DlpAction };
  }
  let av: AvSettings | undefined;
  if (r.get('av.enabled')) {
    const clamd = r.get('av.clamd');
    const socketPath = clamd.startsWith('/') ? clamd : undefined;
    // host:port (an IPv6 address in brackets: src/config/host-port.ts), or a socket path
    const hp = socketPath ? undefined : r.hostPortOf('av.clamd', clamd, 1);
    // every setting read (a bad value named) before the checks of where the mail goes
    const timeoutMs = r.get('av.timeout_ms');
    const maxConnections = r.get('av.max_connections');
    const onInfected = r.get('av.on_infected');
    const onUnavailable = r.get('av.on_unavailable');
    // the gateway hands clamd decrypted mail: over TCP in cleartext, so only to this machine unless the operator opts in
    const allowNetwork = r.get('av.allow_plaintext_over_network');
    const allowDisk = r.get('av.allow_plaintext_on_disk');
    const remote = hp !== undefined && !isLoopbackAddress(hp.host);
    if (remote && !allowNetwork)
      throw settingError(
        'ssmax-inspect.ini',
        'av',
        'clamd',
        `${clamd} is not a loopback address: clamd is sent the decrypted mail in cleartext over TCP, which would cross the network; use clamd on this machine (127.0.0.1, [::1] or its unix socket path), or set [av] allow_plaintext_over_network=true to accept that (docs/inspection.md)`,
      );
    const clamdConfigSetting = r.get('av.clamd_config');
    const clamdConfig = clamdConfigSetting ? resolve(dir, clamdConfigSetting) : undefined;
    // and clamd writes what it scans to its TemporaryDirectory: refused unless that is shown to be in memory, or opted in
    const found = clamdSettingsFindings(clamdConfig);
    if (found.plaintextOnDisk.length > 0 && !allowDisk)
      throw settingError(
        'ssmax-inspect.ini',
        'av',
        'clamd_config',
        `${found.plaintextOnDisk.join('; ')}. Antivirus is on, and clamd may write the decrypted mail it scans to a disk: point [av] clamd_config at a clamd.conf whose TemporaryDirectory is on a tmpfs (with LeaveTemporaryFiles no), or set [av] allow_plaintext_on_disk=true to accept that (docs/inspection.md)`,
      );
    av = {
      ...(clamdConfig ? { clamdConfig } : {}),
      ...(found.streamMaxBytes !== undefined ? { streamMaxBytes: found.streamMaxBytes } : {}),
      allowPlaintextOnDisk: allowDisk,
      allowPlaintextOverNetwork: allowNetwork,
      startWarnings: [
        ...(remote
          ? [
              `clamd ${clamd} is not on this machine: the decrypted mail is sent to it in cleartext (accepted: [av] allow_plaintext_over_network=true)`,
            ]
          : []),
        ...found.plaintextOnDisk.map((w) => `${w} (accepted: [av] allow_plaintext_on_disk=true)`),
        ...found.warnings,
      ],
      client: new ClamdClient({
        ...(hp ? { host: hp.host, port: hp.port } : { socketPath: socketPath! }),
        timeoutMs,
        maxConnections,
      }),
      onInfected,
      onUnavailable,
    };
  }
  return {
    ...(dlp ? { dlp } : {}),
    ...(av ? { av } : {}),
    quarantineDir: r.optPath('quarantine.dir') ?? resolve(stateDir, 'quarantine'),
    quarantineCaps: {
      maxBytes: r.get('quarantine.max_bytes'),
      maxBytesPerSender: r.get('quarantine.max_bytes_per_sender'),
      maxEntries: r.get('quarantine.max_entries'),
    },
  };
}

/** An ini file, parsed ({} when it does not exist). */
export function readIni(file: string): Ini {
  return readIniFile(file, 'inspection config', true);
}

/**
 * The inspector process refuses a key or section of ssmax-inspect.ini or a DLP rule's key of ssmax-dlp.ini that it
 * does not read, named with the nearest known name (src/config/ini.ts findUnknown); the gateway logs them instead
 * (src/gateway/ini-files.ts), as refusing would stop mail.
 */
export function refuseUnknownInspection(inspectFile: string, inspect: Ini, dlpFile: string, dlp: Ini): void {
  const err = unknownError(inspectFile, inspect, knownNamesOf(INSPECT_SETTINGS)) ?? unknownError(dlpFile, dlp, DLP_KNOWN);
  if (err) throw err;
}
