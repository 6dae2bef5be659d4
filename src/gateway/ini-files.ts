/**
 * The plugin's ini files (ssmax.ini; ssmax-inspect.ini and ssmax-dlp.ini for
 * inline inspection) read through Haraka's config loader and its watch, which
 * calls back a few seconds after a file changes (docs/configuration.md,
 * "Reload").
 *
 * ssmax.ini and ssmax-inspect.ini are the site's own, read from Haraka's
 * config folder alone, whether the plugin is installed as a package or as the
 * project's copy: Haraka's loader would otherwise take a package's own
 * `config/` files as defaults under the site's, key by key, and the shipped
 * ssmax.ini is an example organisation's (its domain, its keyd, its paths) —
 * a site file missing a required setting, or emptied, would have run as that
 * organisation, its [policy] rules gone. Only the DLP rules (ssmax-dlp.ini,
 * read whole) take the package's shipped rules when the site has none.
 *
 * On a change of ssmax.ini the settings that can change at run time are taken
 * into the running configuration at once (`reloadGatewayConfig`); a change of
 * any other setting, or of the inspection files, is logged as waiting for a
 * restart. A changed file that is not valid changes nothing and is logged.
 */
import { ConfigError, type Ini, type KnownNames, duplicateKeys, findUnknown, knownNamesOf, parseIni } from '../config/ini';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DLP_KNOWN } from '../inspect/dlp';
import { INSPECT_SETTINGS } from '../inspect/config';
import { GATEWAY_FREE_SECTIONS, GATEWAY_SETTINGS, type GatewayConfig, reloadGatewayConfig } from './config';

/** Haraka's config loader as a plugin has it (haraka-config's get(name, [type], [callback], [options])). */
export interface HarakaConfigLoader {
  get(name: string, ...args: unknown[]): unknown;
  /** haraka-config: a loader rooted at `<dir>/config`, with no defaults under it when `overrides` is not given. */
  module_config?(dir: string, overrides?: string): HarakaConfigLoader;
}

/**
 * The loader of the site's own files: Haraka's config folder (`<haraka>/config`) alone, never a plugin package's
 * shipped files under it. `plugin` is the loader Haraka gave the plugin (for a package, its files as defaults).
 */
export function siteLoader(plugin: HarakaConfigLoader, haraka: string): HarakaConfigLoader {
  if (typeof plugin.module_config !== 'function')
    throw new Error("Haraka's config loader has no module_config: this Haraka is not supported");
  return plugin.module_config(haraka);
}

export const GATEWAY_INI = 'ssmax.ini';
/** The names each file may hold (any other is logged, with the nearest known name: src/config/ini.ts findUnknown). */
const KNOWN: Record<string, KnownNames> = {
  [GATEWAY_INI]: knownNamesOf(GATEWAY_SETTINGS, { free: GATEWAY_FREE_SECTIONS }),
  'ssmax-inspect.ini': knownNamesOf(INSPECT_SETTINGS),
  'ssmax-dlp.ini': DLP_KNOWN,
};
/** Files read whole (Haraka's "data" type), the plugin package's copy when the site has none (the shipped DLP rules). */
const WHOLE_FILES = ['ssmax-dlp.ini'];

/** A site file's text, or undefined when there is none to read (missing: read as empty, as Haraka does). */
function siteText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

export class HarakaIniFiles {
  private readonly last = new Map<string, Ini>();
  /** Per file, the lines logged for its unknown names at its last reading (readiness repeats those about [delivery]). */
  private readonly unknownLines = new Map<string, readonly string[]>();
  private running: GatewayConfig | undefined;
  /** Called after reloaded settings were applied (the plugin rebuilds what it derives from them). */
  onApplied: () => void = () => {};

  constructor(
    /** The loader Haraka gave the plugin: for a package, its shipped files as defaults (read for WHOLE_FILES only). */
    private readonly loader: HarakaConfigLoader,
    /** The site's own files, Haraka's config folder alone (siteLoader): ssmax.ini and ssmax-inspect.ini. */
    private readonly site: HarakaConfigLoader,
    /** The config folder (relative paths of ssmax.ini are resolved against it). */
    private readonly dir: string,
    private readonly log: (line: string) => void,
    private readonly logerror: (line: string) => void,
  ) {}

  /** A file as Haraka's ini reader parses it, watched for changes; a missing file reads as empty. */
  read(name: string): Ini {
    const ini = this.get(name);
    this.last.set(name, ini);
    this.unknown(name, ini);
    return ini;
  }

  /**
   * A key or section the gateway does not read is logged, with the nearest known name when one is close (a misspelt
   * name would otherwise go unnoticed); it is ignored: refusing to start, or a reload, would stop mail.
   */
  private unknown(name: string, ini: Ini): void {
    const known = KNOWN[name];
    if (!known) return;
    const lines: string[] = [];
    for (const u of findUnknown(ini, known)) {
      const where = u.kind === 'section' ? `[${u.section}]` : u.kind === 'outside' ? u.key : `[${u.section}] ${u.key}`;
      const what = u.kind === 'section' ? 'not a section of the gateway' : 'not a setting of the gateway';
      const mean = u.suggestion === undefined ? '' : `, did you mean ${u.kind === 'section' ? `[${u.suggestion}]` : u.suggestion}?`;
      lines.push(`${name} ${where}: ${what}, ignored${mean}`);
      this.logerror(`ssmax: ${name} ${where}: ${what}, ignored${mean} (docs/configuration.md)`);
    }
    this.unknownLines.set(name, lines);
  }

  /** The unknown names of `name` found at its last reading, one line each (as logged, without the prefix). */
  unknownNames(name: string): readonly string[] {
    return this.unknownLines.get(name) ?? [];
  }

  /** From now on, changes of ssmax.ini are applied to `config` (the object the running gateway reads). */
  applyTo(config: GatewayConfig): void {
    this.running = config;
  }

  private get(name: string): Ini {
    const changed = (err?: unknown) => this.changed(name, err);
    // Haraka's reader keeps the last of a key given twice, without a word: the site's file is read as it is, once more,
    // to say so
    const text = siteText(join(this.dir, name));
    if (text !== undefined) {
      if (text.startsWith('\uFEFF'))
        throw new ConfigError(
          `${name}: starts with a byte order mark (U+FEFF), which Haraka's reader takes for part of the first line; save it without one`,
        );
      for (const d of duplicateKeys(text, name)) this.logerror(`ssmax: WARNING: ${d} (docs/configuration.md)`);
    }
    // rules: a site's file replaces the shipped one as a whole (Haraka merges ini files key by key),
    // read with the project's parser, as the inspector process reads it
    if (WHOLE_FILES.includes(name)) return parseIni(((this.loader.get(name, 'data', changed) as string[] | null) ?? []).join('\n'));
    const ini = { ...((this.site.get(name, 'ini', changed) as Ini | null) ?? {}) };
    // Haraka puts keys outside any section into [main]: an empty one is no section of the file
    if (ini.main && Object.keys(ini.main).length === 0) delete ini.main;
    return ini;
  }

  private changed(name: string, err: unknown): void {
    try {
      if (err) throw err;
      const before = this.last.get(name) ?? {};
      const after = this.get(name);
      if (name !== GATEWAY_INI || !this.running) {
        if (JSON.stringify(before) !== JSON.stringify(after))
          this.logerror(`ssmax: ${name} changed: the change takes effect after a restart of Haraka`);
        this.last.set(name, after);
        return;
      }
      const r = reloadGatewayConfig(this.running, before, after, this.dir);
      this.last.set(name, after);
      this.unknown(name, after);
      if (r.applied.length > 0) {
        this.onApplied();
        this.log(`ssmax: ${name} reloaded: ${r.applied.join(', ')} in effect now`);
      }
      if (r.restart.length > 0)
        this.logerror(
          `ssmax: ${name} changed: ${r.restart.join(', ')} take${r.restart.length === 1 ? 's' : ''} effect after a restart of Haraka (the running gateway keeps the old value)`,
        );
    } catch (e) {
      const why = e instanceof ConfigError || e instanceof Error ? e.message : String(e);
      this.logerror(`ssmax: ${name} changed but cannot be used; the running configuration is kept: ${why}`);
    }
  }
}
