/**
 * A key given twice in one section of an ini file is refused, naming both lines: every ini reader (the `ini`
 * package, Haraka's loader) kept the last value without a word, so a [policy] rule written again further down
 * quietly weakened the first. A byte order mark is skipped by the services' reader, and said by the gateway's
 * (Haraka's reader takes it for part of the first line).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, checkIniText, readIniFile } from '../../src/config/ini';
import { HarakaIniFiles } from '../../src/gateway/ini-files';

test('a key given twice in a section (also across two parts of the section) is refused naming both lines; a key in two sections is not', () => {
  const policy = '[policy]\nx.example=require\n[tls]\nca=1\n[policy]\nx.example=none\n';
  expect(() => checkIniText(policy, 'ssmax.ini')).toThrow(
    new ConfigError('ssmax.ini [policy] x.example: given twice (lines 2 and 6); give it once'),
  );
  expect(() => checkIniText('domain=a\ndomain=b\n', 'k.ini')).toThrow('k.ini domain: given twice (lines 1 and 2)');
  expect(() => checkIniText('[a]\nk=1\n[b]\nk=1\n; k=2\n# k=3\n', 'k.ini')).not.toThrow();
  expect(() => checkIniText('[a]\nk[]=1\nk[]=2\n', 'k.ini')).not.toThrow(); // a list: the settings reader's own refusal
});

test("the services' reader refuses it too, and reads a file that starts with a byte order mark", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-inidup-'));
  writeFileSync(join(dir, 'keyd.ini'), '[server]\nport=7443\nport=1\n');
  expect(() => readIniFile(join(dir, 'keyd.ini'), 'keyd config')).toThrow(/keyd\.ini \[server\] port: given twice \(lines 2 and 3\)/);
  writeFileSync(join(dir, 'bom.ini'), '\uFEFF[server]\nport=7443\n');
  expect(readIniFile(join(dir, 'bom.ini'), 'keyd config')).toEqual({ server: { port: '7443' } });
});

test("the gateway's site ssmax.ini: a key given twice, or a byte order mark, is refused (at start: no start; at a reload: the running configuration kept)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-inidup-gw-'));
  const loader = { get: () => ({ main: { domain: 'a.example' } }) };
  const files = new HarakaIniFiles(
    loader,
    loader,
    dir,
    () => undefined,
    () => undefined,
  );
  writeFileSync(join(dir, 'ssmax.ini'), '[main]\ndomain=a.example\n[policy]\nx.example=require\nx.example=none\n');
  expect(() => files.read('ssmax.ini')).toThrow('ssmax.ini [policy] x.example: given twice (lines 4 and 5); give it once');
  writeFileSync(join(dir, 'ssmax.ini'), '\uFEFF[main]\ndomain=a.example\n');
  expect(() => files.read('ssmax.ini')).toThrow(/starts with a byte order mark/);
  writeFileSync(join(dir, 'ssmax.ini'), '[main]\ndomain=a.example\n');
  expect(files.read('ssmax.ini')).toEqual({ main: { domain: 'a.example' } });
});
