/**
 * Each shipped config/*.ini against the code's declared settings
 * (src/config/ini.ts): every commented default (`;key=value`, `# key = value`)
 * is made active and read back through the settings reader; its value must be
 * the code's default, and its key one the code declares. A commented setting
 * the code declares without a default is an example (a peer, a servername):
 * it must read without error. Keys of sections that take any name ([peers],
 * [hosts], [routes], [policy] per domain) are examples too. Every declared
 * setting with a default must be written out in its file.
 *
 * ssmax.ini and ssmax-inspect.ini are read by the Haraka plugin through
 * Haraka's own ini reader: the same files, uncommented, must read the same
 * through it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { type Ini, IniReader, type Schema, defaultText, parseIni } from '../../src/config/ini';
import { ABUSE_SETTINGS } from '../../src/abuse/config';
import { CONSOLE_SETTINGS } from '../../src/console/config';
import { DIRECTORY_SETTINGS } from '../../src/directory/config';
import { GATEWAY_FREE_SECTIONS, GATEWAY_SETTINGS } from '../../src/gateway/config';
import { INSPECT_SETTINGS } from '../../src/inspect/config';
import { INSPECTOR_SETTINGS } from '../../src/inspector/config';
import { CERT_SETTINGS } from '../../src/keyd/cert-renewal';
import { KEYD_SETTINGS } from '../../src/keyd/config';
import { CRL_SETTINGS } from '../../src/keyd/renewal';
import { PUBLISHER_SETTINGS } from '../../src/publisher/config';

const CONFIG = join(__dirname, '..', '..', 'config');

interface Case {
  readonly schema: Schema;
  /** Sections whose keys are names (domains, hosts), not declared settings. */
  readonly free?: readonly string[];
  /** Read by the Haraka plugin through Haraka's ini reader. */
  readonly haraka?: boolean;
  /** Sections that list only some of their settings (the rest are written out in another shipped file). */
  readonly partial?: readonly string[];
}

const CASES: Record<string, Case> = {
  'ssmax.ini': { schema: GATEWAY_SETTINGS, free: GATEWAY_FREE_SECTIONS, haraka: true },
  'ssmax-inspect.ini': { schema: INSPECT_SETTINGS, haraka: true },
  'ssmax-keyd.ini': { schema: { ...KEYD_SETTINGS, ...CRL_SETTINGS, ...CERT_SETTINGS } },
  'ssmax-publisher.ini': { schema: PUBLISHER_SETTINGS },
  'ssmax-inspector.ini': { schema: INSPECTOR_SETTINGS },
  'ssmax-console.ini': { schema: CONSOLE_SETTINGS },
  'ssmax-directory.ini': { schema: DIRECTORY_SETTINGS, free: ['peers', 'hosts'] },
  // its [directory] and [tls] are the directory's (every setting written out in ssmax-directory.ini)
  'ssmax-abuse.ini': { schema: { ...ABUSE_SETTINGS, ...DIRECTORY_SETTINGS }, free: ['peers', 'hosts'], partial: ['directory', 'tls'] },
};
/** Shipped files that hold no settings with defaults, and where they are checked. */
const NOT_SETTINGS: Record<string, string> = {
  'ssmax-dlp.ini': 'DLP rules, one section each (test/inspect/config.test.ts parses them)',
  'ssmax-format.ini': 'the message format limits, written out active (test/envelope/config.test.ts)',
};

const SECTION = /^\s*\[([^\]]+)\]\s*$/;
const COMMENTED = /^[;#]\s*([A-Za-z0-9_.-]+)\s*=\s*(.*?)\s*$/;

interface Commented {
  readonly name: string;
  readonly value: string;
  readonly line: number;
}

/** The commented settings of a file, and its text with each of them made active. */
function uncomment(text: string): { commented: Commented[]; active: string } {
  const commented: Commented[] = [];
  let section = '';
  const lines = text.split('\n').map((line, i) => {
    const s = SECTION.exec(line);
    if (s) section = s[1]!;
    const m = COMMENTED.exec(line);
    if (!m) return line;
    commented.push({ name: `${section}.${m[1]}`, value: m[2]!, line: i + 1 });
    return `${m[1]}=${m[2]}`;
  });
  return { commented, active: lines.join('\n') };
}

/** The file's text as Haraka's ini reader (haraka-config, as Haraka loads it) parses it. */
function harakaParse(text: string): Ini {
  const reader = createRequire(require.resolve('Haraka/package.json'))('haraka-config/lib/readers/ini') as {
    parseIni(name: string, opts: unknown, data: string): Ini;
  };
  const ini = reader.parseIni('test.ini', {}, text);
  if (ini.main && Object.keys(ini.main).length === 0) delete ini.main;
  return ini;
}

/** What is wrong with a shipped file's commented settings (empty: nothing). */
function problems(file: string, text: string, c: Case): string[] {
  const { commented, active } = uncomment(text);
  const out: string[] = [];
  const readers = [new IniReader(c.schema, parseIni(active), file, '/cfg')];
  if (c.haraka) readers.push(new IniReader(c.schema, harakaParse(active), `${file} (Haraka's reader)`, '/cfg'));
  for (const { name, value, line } of commented) {
    const section = name.slice(0, name.indexOf('.'));
    const setting = c.schema[name];
    if (!setting) {
      if (!c.free?.includes(section))
        out.push(`${file}:${line}: ;${name.slice(section.length + 1)}=${value} names no setting the code knows in [${section}]`);
      continue;
    }
    for (const r of readers) {
      let read: unknown;
      try {
        read = r.opt(name);
      } catch (err) {
        out.push(`${file}:${line}: ${(err as Error).message}`);
        continue;
      }
      if (setting.default !== undefined && JSON.stringify(read) !== JSON.stringify(setting.default))
        out.push(`${r.file}:${line}: ${name} is written as ${value}, the code's default is ${defaultText(setting)}`);
    }
  }
  const written = new Set(commented.map((x) => x.name));
  const file0 = parseIni(text);
  for (const [name, s] of Object.entries(c.schema)) {
    const [section, key] = [name.slice(0, name.indexOf('.')), name.slice(name.indexOf('.') + 1)];
    if (s.default !== undefined && !c.partial?.includes(section) && !written.has(name) && file0[section]?.[key] === undefined)
      out.push(`${file}: ${name} (default ${defaultText(s)}) is not written out`);
  }
  return out;
}

test('every shipped config file is covered here', () => {
  const shipped = readdirSync(CONFIG)
    .filter((f) => f.endsWith('.ini'))
    .sort();
  expect(shipped).toEqual([...Object.keys(CASES), ...Object.keys(NOT_SETTINGS)].sort());
});

test.each(Object.keys(CASES))('%s: every commented default made active reads as the code default, under a key the code knows', (file) => {
  const text = readFileSync(join(CONFIG, file), 'utf8');
  const c = CASES[file]!;
  // there is something to compare
  expect(uncomment(text).commented.filter((x) => c.schema[x.name]?.default !== undefined).length).toBeGreaterThan(2);
  expect(problems(file, text, c)).toEqual([]);
});

test('the check fails on a commented default that is not the code default, a key the code does not know, or a default not written out', () => {
  const gateway = readFileSync(join(CONFIG, 'ssmax.ini'), 'utf8');
  const keyd = readFileSync(join(CONFIG, 'ssmax-keyd.ini'), 'utf8');
  const c = CASES['ssmax.ini']!;
  const k = CASES['ssmax-keyd.ini']!;
  const edit = (text: string, from: string, to: string) => {
    expect(text).toContain(from);
    return text.replace(from, to);
  };
  expect(problems('ssmax.ini', edit(gateway, ';hook_timeout_ms=25000', ';hook_timeout_ms=25001'), c)).toEqual([
    expect.stringMatching(/^ssmax\.ini:\d+: main\.hook_timeout_ms is written as 25001, the code's default is 25000$/),
    expect.stringMatching(/^ssmax\.ini \(Haraka's reader\):\d+: main\.hook_timeout_ms is written as 25001/),
  ]);
  expect(problems('ssmax.ini', edit(gateway, ';probe=true', '# probe = false'), c)).toHaveLength(2);
  expect(problems('ssmax.ini', edit(gateway, ';retry_ms=2000', ';retry_msec=2000'), c)).toEqual([
    expect.stringMatching(/names no setting the code knows in \[directory\]/),
    'ssmax.ini: directory.retry_ms (default 2000) is not written out',
  ]);
  expect(problems('ssmax-keyd.ini', edit(keyd, ';grace_days=30', ';grace_days=abc'), k)).toEqual([
    expect.stringMatching(/\[keys\] grace_days: must be a number from 0 to 3650, got 'abc'/),
  ]);
});

test('ssmax.ini marks exactly the settings the plugin reloads with "(reload)" in the comment above them', () => {
  const text = readFileSync(join(CONFIG, 'ssmax.ini'), 'utf8');
  let section = '';
  let comment: string[] = [];
  const marked: string[] = [];
  const reloaded: string[] = [];
  for (const line of text.split('\n')) {
    const s = SECTION.exec(line);
    const m = COMMENTED.exec(line) ?? /^([A-Za-z0-9_.-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (s) [section, comment] = [s[1]!, []];
    else if (m) {
      const name = `${section}.${m[1]}`;
      const setting = GATEWAY_SETTINGS[name as keyof typeof GATEWAY_SETTINGS] as { reload?: boolean } | undefined;
      if (setting) {
        if (comment.some((c) => c.includes('(reload'))) marked.push(name);
        if (setting.reload) reloaded.push(name);
      }
      comment = [];
    } else if (line.startsWith(';')) comment.push(line);
  }
  expect(marked).toEqual(reloaded);
  expect(reloaded.length).toBeGreaterThan(5);
});
