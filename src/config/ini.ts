/**
 * The one way the project reads its ini files (docs/configuration.md).
 * Each reader declares its settings once — "section.key", type (num, bool,
 * str, list, enum), default, range, and whether a running gateway takes a
 * new value without a restart — and reads them through `IniReader`, which
 * checks every value and, for a bad one, throws `ConfigError` naming the
 * file, the section and the key:
 *
 *   keyd.ini [limits] max_in_flight: must be a whole number from 1 to 100000, got 'x'
 *
 * The services parse their files with `parseIni`; the Haraka plugin gets the
 * same shape from Haraka's own config loader (which also turns whole numbers
 * into numbers: `IniReader` takes either).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'ini';
import { cannotRead, errnoCode, errnoText } from '../errors/errno';
import { HostPortError, parseHostPort } from './host-port';

export type IniSection = Record<string, unknown>;
export type Ini = Record<string, IniSection | undefined>;

/** A configuration that cannot be used: a bad or missing value, or a file that cannot be read. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    /** Where, when the error is about one setting. */
    readonly where: { readonly file?: string; readonly section?: string; readonly key?: string } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The error for one setting: "<file> [<section>] <key>: <why>". */
export function settingError(file: string, section: string, key: string, why: string): ConfigError {
  return new ConfigError(`${file} [${section}] ${key}: ${why}`, { file, section, key });
}

/** An ini text as sections of key → value. */
export function parseIni(text: string): Ini {
  return parse(text) as Ini;
}

/** A file's text; `what` names it in the error ("Cannot read keyd config "/etc/…": ENOENT"). */
export function readConfigText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(cannotRead(what, file, err), { file }, { cause: err });
  }
}

/**
 * An ini file, parsed; a missing file reads as empty when `missingIsEmpty`. A key given twice in a section is said
 * on standard error, naming both lines (`duplicateKeys`); the last one is used, as every ini reader does.
 */
export function readIniFile(file: string, what: string, missingIsEmpty = false): Ini {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (missingIsEmpty && (err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError(cannotRead(what, file, err), { file }, { cause: err });
  }
  const body = text.replace(/^\uFEFF/, ''); // a byte order mark some editors write: not part of the first line
  for (const d of duplicateKeys(body, file)) process.stderr.write(`WARNING: ${d}\n`);
  return parseIni(body);
}

/**
 * The keys given twice in one section (a section may be given in several parts), one line each naming both
 * lines: every ini reader keeps the last value without a word, so a `[policy]` rule written again further down —
 * `x.example=require`, later `x.example=none` — quietly replaces the first. Said, not refused: an override
 * appended to a file is a common way of setting a value, and the last one is the one used. One pass over the text.
 */
export function duplicateKeys(text: string, file: string): string[] {
  const seen = new Map<string, number>();
  const found: string[] = [];
  for (const { index, section, key } of iniKeyLines(text)) {
    if (key.endsWith('[]')) continue; // name[]= lists are the readers' own refusal (given once, as one value)
    const id = `${section}\0${key}`;
    const first = seen.get(id);
    if (first !== undefined)
      found.push(
        `${file}${section === '' ? '' : ` [${section}]`} ${key}: given twice (lines ${first} and ${index + 1}); the last one is used`,
      );
    seen.set(id, index + 1);
  }
  return found;
}

/** The lines of an ini text that set a key (comments, blank lines and section headers aside): their index, section and key. */
export function iniKeyLines(text: string): { readonly index: number; readonly section: string; readonly key: string }[] {
  const out: { index: number; section: string; key: string }[] = [];
  let section = '';
  for (const [index, raw] of text
    .replace(/^\uFEFF/, '')
    .split('\n')
    .entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;
    const header = /^\[(.*)\]$/.exec(line);
    if (header) {
      section = header[1]!.trim();
      continue;
    }
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    if (key !== '') out.push({ index, section, key });
  }
  return out;
}

interface Common {
  /** A running gateway takes a new value without a restart (only the Haraka plugin reloads). */
  readonly reload?: boolean;
  /** Why the range is what it is: added to the error for a value outside it. */
  readonly note?: string;
}
/** Absent `default`: the setting is required when read with `get` (optional with `opt`). */
export type Setting = Common &
  (
    | { readonly type: 'num'; readonly default?: number; readonly min: number; readonly max: number; readonly whole?: boolean }
    | { readonly type: 'bool'; readonly default?: boolean }
    | { readonly type: 'str'; readonly default?: string }
    | { readonly type: 'list'; readonly default?: readonly string[] }
    | { readonly type: 'enum'; readonly values: readonly string[]; readonly default?: string }
  );
/** Settings by "section.key". */
export type Schema = Readonly<Record<string, Setting>>;

export type ValueOf<T extends Setting> = T extends { type: 'num' }
  ? number
  : T extends { type: 'bool' }
    ? boolean
    : T extends { type: 'list' }
      ? string[]
      : T extends { type: 'enum'; values: readonly (infer V)[] }
        ? V
        : string;

/** Declares a reader's settings (keeps the literal types of enum values). */
export function defineSettings<const S extends Schema>(settings: S): S {
  return settings;
}

function split(name: string): [string, string] {
  const dot = name.indexOf('.');
  return [name.slice(0, dot), name.slice(dot + 1)];
}

/** A setting's default as the shipped files write it (commented out): "" when it has none. */
export function defaultText(s: Setting): string {
  if (s.default === undefined) return '';
  return Array.isArray(s.default) ? s.default.join(',') : String(s.default);
}

const TRUE = /^(?:true|yes|on|1)$/i;
const FALSE = /^(?:false|no|off|0)$/i;
const NUMBER = /^-?\d+(?:\.\d+)?$/;

/**
 * Reads the settings of `schema` from a parsed file. `file` names the file in
 * errors; relative paths are resolved against `base` (default: the file's folder).
 */
export class IniReader<S extends Schema> {
  readonly base: string;

  constructor(
    readonly schema: S,
    readonly ini: Ini,
    readonly file: string,
    base?: string,
  ) {
    this.base = base ?? dirname(resolve(file));
  }

  /** A section's keys and values ({} when absent). */
  section(name: string): IniSection {
    const s = this.ini[name];
    if (s === undefined || s === null) return {};
    if (typeof s !== 'object') throw new ConfigError(`${this.file}: "${name}" is outside any section`, { file: this.file, key: name });
    return s;
  }

  /** A value's text, trimmed; undefined when absent or empty. */
  text(section: string, key: string): string | undefined {
    const v = this.section(section)[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'object') throw this.fail(section, key, 'must be given once, as one value');
    const t = String(v as string | number | boolean).trim();
    return t === '' ? undefined : t;
  }

  fail(section: string, key: string, why: string): ConfigError {
    return settingError(this.file, section, key, why);
  }

  /** Whether the file gives the setting a (non-empty) value. */
  has(name: keyof S & string): boolean {
    return this.text(...split(name)) !== undefined;
  }

  /** The value, or the default; a setting without a default that is absent is an error ("is required"). */
  get<K extends keyof S & string>(name: K): ValueOf<S[K]> {
    const v = this.opt(name);
    if (v === undefined) throw this.fail(...split(name), 'is required');
    return v;
  }

  /** The value, or the default, or undefined. */
  opt<K extends keyof S & string>(name: K): ValueOf<S[K]> | undefined {
    const s = this.schema[name];
    if (!s) throw new Error(`${this.file}: no setting ${name} is declared`);
    const [section, key] = split(name);
    const raw = this.text(section, key);
    if (raw === undefined) return s.default as ValueOf<S[K]> | undefined;
    const got = `got '${raw}'`;
    switch (s.type) {
      case 'num': {
        const n = Number(raw);
        if (!NUMBER.test(raw) || (s.whole && !Number.isInteger(n)) || n < s.min || n > s.max)
          throw this.fail(
            section,
            key,
            `must be a ${s.whole ? 'whole number' : 'number'} from ${s.min} to ${s.max}, ${got}${s.note ? ` (${s.note})` : ''}`,
          );
        return n as ValueOf<S[K]>;
      }
      case 'bool':
        if (TRUE.test(raw)) return true as ValueOf<S[K]>;
        if (FALSE.test(raw)) return false as ValueOf<S[K]>;
        throw this.fail(section, key, `must be true or false, ${got}`);
      case 'enum': {
        const e = raw.toLowerCase();
        if (!s.values.includes(e))
          throw this.fail(section, key, `must be ${s.values.slice(0, -1).join(', ')} or ${s.values.at(-1)}, ${got}`);
        return e as ValueOf<S[K]>;
      }
      case 'list':
        return raw
          .split(',')
          .map((x) => x.trim())
          .filter((x) => x !== '') as ValueOf<S[K]>;
      case 'str':
        return raw as ValueOf<S[K]>;
    }
  }

  /** A path setting, resolved against the base folder. */
  path(name: keyof S & string): string {
    return resolve(this.base, this.get(name) as string);
  }

  /** An optional path setting, resolved, or undefined. */
  optPath(name: keyof S & string): string | undefined {
    const v = this.opt(name) as string | undefined;
    return v === undefined ? undefined : resolve(this.base, v);
  }

  /** A list of paths, each resolved (required when the setting has no default). */
  paths(name: keyof S & string): string[] {
    return (this.get(name) as string[]).map((p) => resolve(this.base, p));
  }

  /** A host:port setting (src/config/host-port.ts: an IPv6 address in brackets, given back without them). */
  hostPort(name: keyof S & string, minPort = 0): { host: string; port: number } {
    return this.hostPortOf(name, this.get(name) as string, minPort);
  }

  /** `value` of the setting `name` (or of a free section's key, "section.key") as host:port; an error naming the setting otherwise. */
  hostPortOf(name: string, value: string, minPort = 0): { host: string; port: number } {
    try {
      return parseHostPort(value, minPort);
    } catch (err) {
      if (err instanceof HostPortError) throw this.fail(...split(name), err.message);
      throw err;
    }
  }

  /** A domain-name setting, lower-cased (labels of letters, digits and hyphens, at least two). */
  domain(name: keyof S & string): string {
    const domain = (this.get(name) as string).toLowerCase();
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(domain)) throw this.fail(...split(name), `"${domain}" is not a domain name`);
    return domain;
  }

  /** Settings of a section the schema does not name one by one ([peers], [policy] per domain…): key → text. */
  free(section: string, except: readonly string[] = []): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of Object.keys(this.section(section))) {
      if (except.includes(key)) continue;
      const t = this.text(section, key);
      if (t !== undefined) out[key] = t;
    }
    return out;
  }
}

/** What every service's file starts with: its own path, the organisation's domain and the address it listens on. */
export interface ServiceHead {
  readonly file: string;
  readonly domain: string;
  readonly host: string;
  readonly port: number;
}

/** A service's head from its `[<section>]` keys `listen` (host:port) and `domain`. */
export function readServiceHead(r: IniReader<Schema>, section: string): ServiceHead {
  const listen = r.hostPort(`${section}.listen`);
  return { file: r.file, domain: r.domain(`${section}.domain`), host: listen.host, port: listen.port };
}

/**
 * The settings (by "section.key") whose values differ between two parsed
 * versions of a file: the declared ones, and every key of the `free` sections.
 */
export function changedSettings(schema: Schema, before: Ini, after: Ini, file: string, free: readonly string[] = []): string[] {
  const a = new IniReader(schema, before, file, '/');
  const b = new IniReader(schema, after, file, '/');
  const names = new Set(Object.keys(schema));
  for (const s of free) for (const r of [a, b]) for (const k of Object.keys(r.section(s))) names.add(`${s}.${k}`);
  return [...names].filter((n) => a.text(...split(n)) !== b.text(...split(n)));
}

/** The sections `schema` declares settings in, in the order of its first setting of each. */
export function sectionsOf(schema: Schema): string[] {
  return [...new Set(Object.keys(schema).map((name) => split(name)[0]))];
}

/** The sections of a parsed file (empty ones too) that neither `schema` nor `free` names. */
export function unknownSections(schema: Schema, ini: Ini, free: readonly string[] = []): string[] {
  const known = new Set([...sectionsOf(schema), ...free]);
  return Object.entries(ini)
    .filter(([section, body]) => body !== null && typeof body === 'object' && !known.has(section))
    .map(([section]) => section);
}

/** The keys of a parsed file that `schema` does not declare, outside the `free` sections, as "section.key". */
export function unknownSettings(schema: Schema, ini: Ini, free: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const [section, body] of Object.entries(ini)) {
    if (body === null || typeof body !== 'object') {
      out.push(section);
      continue;
    }
    if (free.includes(section)) continue;
    for (const key of Object.keys(body)) if (!(`${section}.${key}` in schema)) out.push(`${section}.${key}`);
  }
  return out;
}

/** Longest name a suggestion is looked for (a longer one is no typo of a setting; the distance costs its length squared). */
const SUGGEST_MAX = 64;

/** Edit distance with transpositions ("tsl" is one step from "tls"), stopping once every cell of a row exceeds `limit`. */
function distance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      row.push(d);
      best = Math.min(best, d);
    }
    if (best > limit) return limit + 1;
    prev2 = prev;
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The known name `name` is most likely a misspelling of: the nearest within
 * one edit per three letters (at most two: "grace_day" → "grace_days", "tsl" →
 * "tls", "master_kye" → "master_key"), compared without case; undefined when
 * none is that close.
 */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  if (name.length > SUGGEST_MAX) return undefined;
  const limit = Math.max(1, Math.min(2, Math.floor(name.length / 3)));
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestD = limit + 1;
  for (const k of known) {
    const d = distance(lower, k.toLowerCase(), limit);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

/** What a file's sections may hold: the keys of each known section, or 'any'; `other` decides for a section it does not list. */
export interface KnownNames {
  readonly sections: ReadonlyMap<string, readonly string[] | 'any'>;
  /** A section not in `sections` (a DLP rule, a domain's [policy]…): its keys, 'any', or undefined when it is unknown. */
  readonly other?: (section: string, body: IniSection) => readonly string[] | 'any' | undefined;
}

/** One name of a file that is not known: a value outside any section, an unknown section, or an unknown key of a section. */
export interface UnknownName {
  readonly kind: 'outside' | 'section' | 'key';
  readonly section?: string;
  readonly key?: string;
  /** The known name it is most likely a misspelling of. */
  readonly suggestion?: string;
  /** The names that would have been known there. */
  readonly known: readonly string[];
}

/** The known names of a schema's file: its sections with their keys, `free` sections with any key, `otherSections` (another reader's) skipped. */
export function knownNamesOf(
  schema: Schema,
  opts: { readonly free?: readonly string[]; readonly otherSections?: readonly string[] } = {},
): KnownNames {
  const sections = new Map<string, string[] | 'any'>();
  for (const name of Object.keys(schema)) {
    const [section, key] = split(name);
    const keys = sections.get(section);
    if (Array.isArray(keys)) keys.push(key);
    else sections.set(section, [key]);
  }
  for (const s of [...(opts.free ?? []), ...(opts.otherSections ?? [])]) sections.set(s, 'any');
  return { sections };
}

/**
 * Every name of a parsed file that `known` does not know, each with the
 * nearest known name when one is close: the one check of unknown settings for
 * every config file of the project (a refusal in the programs that start from
 * their file, a logged warning in the gateway: docs/configuration.md).
 */
export function findUnknown(ini: Ini, known: KnownNames): UnknownName[] {
  const out: UnknownName[] = [];
  const sectionNames = [...known.sections.keys()];
  for (const [section, body] of Object.entries(ini)) {
    if (body === null || typeof body !== 'object') {
      out.push({ kind: 'outside', key: section, known: sectionNames });
      continue;
    }
    const keys = known.sections.get(section) ?? known.other?.(section, body);
    if (keys === undefined) {
      const suggestion = nearestName(section, sectionNames);
      out.push({ kind: 'section', section, known: sectionNames, ...(suggestion ? { suggestion } : {}) });
      continue;
    }
    if (keys === 'any') continue;
    for (const key of Object.keys(body)) {
      if (keys.includes(key)) continue;
      const suggestion = nearestName(key, keys);
      out.push({ kind: 'key', section, key, known: keys, ...(suggestion ? { suggestion } : {}) });
    }
  }
  return out;
}

/** An unknown name as one line: `<file> [tls] cafile: is not a known setting, did you mean ca? (known: ca)`. */
export function unknownText(file: string, u: UnknownName, list = true): string {
  const mean =
    u.suggestion === undefined ? '' : u.kind === 'section' ? `, did you mean [${u.suggestion}]?` : `, did you mean ${u.suggestion}?`;
  switch (u.kind) {
    case 'outside':
      return `${file}: "${u.key}" is outside any section`;
    case 'section':
      return `${file}: unknown section [${u.section}]${mean}${list ? ` (known: ${u.known.map((k) => `[${k}]`).join(', ')})` : ''}`;
    case 'key':
      return `${file} [${u.section}] ${u.key}: is not a known setting${mean}${list ? ` (known: ${u.known.join(', ')})` : ''}`;
  }
}

/** The first unknown name as a ConfigError (undefined when there is none). */
export function unknownError(file: string, ini: Ini, known: KnownNames): ConfigError | undefined {
  const u = findUnknown(ini, known)[0];
  if (u === undefined) return undefined;
  return new ConfigError(unknownText(file, u), {
    file,
    ...(u.section !== undefined ? { section: u.section } : {}),
    ...(u.key !== undefined ? { key: u.key } : {}),
  });
}

/**
 * Refuses, naming it (and the nearest known name when one is close), the
 * first value outside any section, section that neither the reader's schema,
 * nor `free` (sections of any key: domain or host names), nor
 * `otherSections` (another reader's, in the same file) names, and key of the
 * schema's sections that is not one of its settings: a misspelt key stops the
 * program instead of being quietly left at its default. (The gateway logs
 * such keys instead: a running gateway is not stopped by a reload.)
 */
export function refuseUnknown(
  r: IniReader<Schema>,
  opts: { readonly free?: readonly string[]; readonly otherSections?: readonly string[] } = {},
): void {
  const err = unknownError(r.file, r.ini, knownNamesOf(r.schema, opts));
  if (err) throw err;
}

/** An errno code in words, for the messages naming a file a setting names. */
const ERRNO_WORDS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  ENOTDIR: 'a folder on its path is a file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a folder',
  ELOOP: 'too many symbolic links',
  EMFILE: 'too many open files',
  EIO: 'I/O error',
};

/**
 * The error for a file a setting names that cannot be read or used:
 * `<config> [keyd] cert: cannot read "/etc/ssmax/pki/gatway.pem": no such file (ENOENT)`.
 * `setting` is "section.key"; `why` the reason, or the failed read's error.
 */
export function settingFileError(configFile: string, setting: string, path: string, why: unknown): ConfigError {
  const [section, key] = split(setting);
  let reason: string;
  if (typeof why === 'string') reason = why;
  else {
    const code = errnoCode(why);
    reason = `cannot read "${path}": ${code && ERRNO_WORDS[code] ? `${ERRNO_WORDS[code]} (${code})` : errnoText(why)}`;
  }
  return new ConfigError(
    `${configFile} [${section}] ${key}: ${reason}`,
    { file: configFile, section, key },
    why instanceof Error ? { cause: why } : undefined,
  );
}

/**
 * The text of a file a setting names ("section.key" of `configFile`): the one
 * reader of configured files (certificates, keys, CRLs, password files) for
 * the gateway, keyd, the publisher, the inspector and the console, so that a
 * file that cannot be read is named with the setting that names it.
 */
export function readSettingFile(configFile: string, setting: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw settingFileError(configFile, setting, path, err);
  }
}
