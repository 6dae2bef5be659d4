/**
 * Every shipped config file writes out each default, commented out, with the
 * value the code uses when the setting is absent. Checked by parsing each file
 * twice with the code's own parser — as shipped, and with every commented
 * default made active — and requiring the same configuration. A comment that
 * names another value than the code's default, or a key the parser reads under
 * another name or in another section, makes the two differ.
 *
 * ssmax-format.ini ships its values active (test/envelope/config.test.ts
 * compares them with the code defaults); ssmax-dlp.ini holds rules, not
 * defaults (test/inspect/config.test.ts parses them).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { loadAbuseConfig } from '../../src/abuse/config';
import { loadDirectoryConfig } from '../../src/directory/config';
import { parseGatewayConfig } from '../../src/gateway/config';
import { parseInspectionConfig } from '../../src/inspect/config';
import { loadInspectorConfig } from '../../src/inspector/config';
import { loadKeydConfig } from '../../src/keyd/config';
import { loadPublisherConfig } from '../../src/publisher/config';
import { certPolicyOf } from '../../src/keyd/cert-renewal';
import { crlPolicyOf } from '../../src/keyd/renewal';
import { opsListenOf, opsSection } from '../../src/ops/server';
import { commentedSettings, shippedIni, uncommentDefaults } from '../support/shipped-ini';

type Ini = Record<string, Record<string, unknown>>;

const dir = mkdtempSync(join(tmpdir(), 'ssmax-shipped-'));
const memoryClamdConf = join(dir, 'clamd.conf');
writeFileSync(memoryClamdConf, 'TemporaryDirectory /dev/shm\nAlertExceedsMax yes\n');
/** Writes the text to a file and loads it, as the commands do (always the same path: paths in the result compare equal). */
const fromFile =
  <T>(load: (file: string) => T) =>
  (text: string): T => {
    const file = join(dir, 'config.ini');
    writeFileSync(file, text);
    return load(file);
  };

/** The gateway's settings, with `set` applied over the parsed file (to reach settings only read in one mode). */
const gateway =
  (set: (ini: Ini) => void = () => {}) =>
  (text: string) => {
    const ini = parse(text) as Ini;
    set(ini);
    return [parseGatewayConfig(ini, '/h/config'), opsListenOf(ini.ops, 'ssmax.ini')];
  };

/** A service's own config and its [ops] section (read by the operations listener, docs/operations.md). */
const withOps =
  <T>(load: (file: string) => T) =>
  (file: string): [T, unknown] => [load(file), opsListenOf(opsSection(file), file)];

/** The inspection settings; `on` turns DLP and antivirus on so that their settings are read. */
const inspection = (on: boolean) => (text: string) => {
  const ini = parse(text) as Ini;
  if (on) {
    ini.dlp = { ...ini.dlp, enabled: 'true' };
    // clamd_config, when empty as shipped (refused with antivirus on), set to a clamd.conf whose
    // TemporaryDirectory is the tmpfs /dev/shm, so that the other [av] defaults are read
    ini.av = { clamd: '127.0.0.1:3310', ...ini.av, enabled: 'true' };
    ini.av.clamd_config ||= memoryClamdConf;
  }
  return parseInspectionConfig(ini, parse(shippedIni('ssmax-dlp.ini')) as Ini, '/h/config', '/h/state');
};

interface Case {
  readonly file: string;
  /** What a reader runs: the file's text → the configuration the code uses. */
  readonly load: (text: string) => unknown;
  /**
   * Commented settings that are examples of what an operator may add (a peer,
   * a route, an optional feature's address), not defaults: they stay commented.
   */
  readonly examples: readonly string[];
}

const cases: Case[] = [
  {
    file: 'ssmax.ini',
    load: gateway(),
    examples: [
      'keyd.servername',
      'policy.b.example',
      'peers.b.example',
      'hosts.ssmax.b.example',
      'routes.b.example',
      'inspection.inspector_url',
      'inspection.inspector_servername',
    ],
  },
  {
    // the [inspection] settings that only remote mode reads
    file: 'ssmax.ini',
    load: gateway((ini) => {
      ini.inspection = { ...ini.inspection, mode: 'remote', inspector_url: 'https://127.0.0.1:7543' };
    }),
    examples: [
      'keyd.servername',
      'policy.b.example',
      'peers.b.example',
      'hosts.ssmax.b.example',
      'routes.b.example',
      'inspection.inspector_url',
      'inspection.inspector_servername',
    ],
  },
  {
    file: 'ssmax-keyd.ini',
    load: fromFile(
      withOps((f) => {
        const k = loadKeydConfig(f);
        return [k, crlPolicyOf(k), certPolicyOf(k)];
      }),
    ),
    examples: [],
  },
  { file: 'ssmax-publisher.ini', load: fromFile(withOps(loadPublisherConfig)), examples: ['keyd.servername'] },
  { file: 'ssmax-directory.ini', load: fromFile((f) => loadDirectoryConfig(f)), examples: ['peers.b.example', 'hosts.ssmax.b.example'] },
  { file: 'ssmax-inspector.ini', load: fromFile(withOps(loadInspectorConfig)), examples: ['keyd.servername'] },
  { file: 'ssmax-inspect.ini', load: inspection(false), examples: [] },
  { file: 'ssmax-inspect.ini', load: inspection(true), examples: [] },
  {
    file: 'ssmax-abuse.ini',
    // the [directory] and [peers] sections of this file are the directory's
    load: fromFile((f) => [
      loadAbuseConfig(f),
      loadDirectoryConfig(f, { otherSections: ['abuse', 'keyd', 'submit', 'server', 'registry'] }),
    ]),
    examples: [
      'keyd.servername',
      'submit.host',
      'submit.port',
      'submit.user',
      'submit.password_file',
      'submit.security',
      'registry.ca_dir',
      'registry.root',
      'registry.bundle',
      'peers.a.example',
    ],
  },
];

test.each(cases.map((c, i) => [c.file, i, c] as const))(
  '%s (case %#): making every commented default active changes nothing the code reads',
  (_file, _i, c) => {
    const shipped = shippedIni(c.file);
    const commented = commentedSettings(shipped);
    // the examples named here are in the file, so this list cannot rot unseen
    for (const e of c.examples) expect({ example: e, inFile: commented.has(e) }).toEqual({ example: e, inFile: true });
    const active = uncommentDefaults(shipped, c.examples);
    const defaults = commented.size - c.examples.length;
    // there is something to compare (keyd's file alone has more than ten defaults)
    expect(defaults).toBeGreaterThan(c.file === 'ssmax-inspect.ini' ? 5 : 2);
    expect(active.split('\n').filter((l, i) => l !== shipped.split('\n')[i])).toHaveLength(defaults);
    expect(c.load(active)).toEqual(c.load(shipped));
  },
);

test('the check fails when a commented default is not the code default', () => {
  const wrong = (file: string, from: RegExp, to: string, load: (text: string) => unknown) => {
    const shipped = shippedIni(file);
    const altered = shipped.replace(from, to);
    expect(altered).not.toBe(shipped);
    let same: boolean;
    try {
      same =
        JSON.stringify(
          load(
            uncommentDefaults(altered, [
              'keyd.servername',
              'policy.b.example',
              'peers.b.example',
              'hosts.ssmax.b.example',
              'routes.b.example',
              'inspection.inspector_url',
              'inspection.inspector_servername',
            ]),
          ),
        ) === JSON.stringify(load(altered));
    } catch {
      same = false; // refused: also a difference
    }
    return same;
  };
  expect(wrong('ssmax.ini', /^;hook_timeout_ms=25000$/m, ';hook_timeout_ms=25001', gateway())).toBe(false);
  expect(wrong('ssmax-keyd.ini', /^;grace_days=30$/m, ';grace_days=31', fromFile(loadKeydConfig))).toBe(false);
  expect(wrong('ssmax-inspect.ini', /^;timeout_ms=10000$/m, ';timeout_ms=9999', inspection(true))).toBe(false);
  // a default written under a name the parser does not read: refused or different
  expect(
    wrong(
      'ssmax-directory.ini',
      /^;retry_seconds=60$/m,
      ';retry_secs=60',
      fromFile((f) => loadDirectoryConfig(f)),
    ),
  ).toBe(false);
});

/** The file with one commented setting made active with another value. */
function withChanged(text: string, key: string, value: string): string {
  const dot = key.indexOf('.');
  const [section, name] = [key.slice(0, dot), key.slice(dot + 1)];
  const other = /^\d+$/.test(value) ? String(Number(value) + 1) : value === 'true' ? 'false' : value === 'false' ? 'true' : `${value}x`;
  let inSection = '';
  return text
    .split('\n')
    .map((line) => {
      const s = /^\[([^\]]+)\]\s*$/.exec(line);
      if (s) inSection = s[1]!;
      return inSection === section && line === `;${name}=${value}` ? `${name}=${other}` : line;
    })
    .join('\n');
}

test.each([...new Set(cases.map((c) => c.file))])(
  'every commented default in %s is read: another value changes the configuration or is refused',
  (file) => {
    const mine = cases.filter((c) => c.file === file);
    const shipped = shippedIni(file);
    const ignored: string[] = [];
    for (const [key, value] of commentedSettings(shipped)) {
      if (mine[0]!.examples.includes(key)) continue;
      const changed = withChanged(shipped, key, value);
      expect(changed).not.toBe(shipped);
      const read = mine.some((c) => {
        try {
          return JSON.stringify(c.load(changed)) !== JSON.stringify(c.load(shipped));
        } catch {
          return true;
        }
      });
      if (!read) ignored.push(`${key}=${value}`);
    }
    expect(ignored).toEqual([]);
  },
);
