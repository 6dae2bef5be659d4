/**
 * A key given twice in one section of an ini file is said, naming both lines: every ini reader (the `ini`
 * package, Haraka's loader) keeps the last value without a word, so a [policy] rule written again further down
 * quietly replaced the first. Said, not refused (an override appended to a file is a common way of setting a
 * value); the last one is used. A byte order mark is skipped by the services' reader, and refused by the gateway's
 * (Haraka's reader takes it for part of the first line).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { duplicateKeys, readIniFile } from '../../src/config/ini';
import { HarakaIniFiles } from '../../src/gateway/ini-files';

test('a key given twice in a section (also across two parts of the section) is named with both lines; a key in two sections is not', () => {
  const policy = '[policy]\nx.example=require\n[tls]\nca=1\n[policy]\nx.example=none\n';
  expect(duplicateKeys(policy, 'ssmax.ini')).toEqual(['ssmax.ini [policy] x.example: given twice (lines 2 and 6); the last one is used']);
  expect(duplicateKeys('domain=a\ndomain=b\n', 'k.ini')).toEqual(['k.ini domain: given twice (lines 1 and 2); the last one is used']);
  expect(duplicateKeys('[a]\nk=1\n[b]\nk=1\n; k=2\n# k=3\n', 'k.ini')).toEqual([]);
  expect(duplicateKeys('[a]\nk[]=1\nk[]=2\n', 'k.ini')).toEqual([]); // a list: the settings reader's own refusal
});

test("the services' reader says it on standard error and uses the last value; a file that starts with a byte order mark reads", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-inidup-'));
  writeFileSync(join(dir, 'keyd.ini'), '[server]\nport=7443\nport=1\n');
  const said = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    expect(readIniFile(join(dir, 'keyd.ini'), 'keyd config')).toEqual({ server: { port: '1' } });
    expect(said.mock.calls.map((c) => String(c[0]))).toEqual([
      expect.stringMatching(/^WARNING: .*keyd\.ini \[server\] port: given twice \(lines 2 and 3\); the last one is used\n$/),
    ]);
  } finally {
    said.mockRestore();
  }
  writeFileSync(join(dir, 'bom.ini'), '\uFEFF[server]\nport=7443\n');
  expect(readIniFile(join(dir, 'bom.ini'), 'keyd config')).toEqual({ server: { port: '7443' } });
});

test("the gateway's site ssmax.ini: a key given twice is a WARNING line naming both lines; a byte order mark is refused, saying so", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-inidup-gw-'));
  const loader = { get: () => ({ main: { domain: 'a.example' } }) };
  const errors: string[] = [];
  const files = new HarakaIniFiles(
    loader,
    loader,
    dir,
    () => undefined,
    (l) => errors.push(l),
  );
  writeFileSync(join(dir, 'ssmax.ini'), '[main]\ndomain=a.example\n[policy]\nx.example=require\nx.example=none\n');
  files.read('ssmax.ini');
  expect(errors).toEqual([
    'ssmax: WARNING: ssmax.ini [policy] x.example: given twice (lines 4 and 5); the last one is used (docs/configuration.md)',
  ]);
  writeFileSync(join(dir, 'ssmax.ini'), '\uFEFF[main]\ndomain=a.example\n');
  expect(() => files.read('ssmax.ini')).toThrow(/starts with a byte order mark/);
});
