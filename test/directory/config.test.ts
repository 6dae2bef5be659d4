/**
 * ssmax-directory.ini's unknown names (src/directory/config.ts, through
 * unknownSettings and unknownSections of src/config/ini.ts): a value outside
 * any section, an unknown section (even an empty one) and an unknown key of
 * [directory] or [tls] are refused with a ConfigError naming file, section
 * and key; [peers] and [hosts] take any name; another reader's sections pass
 * when the caller names them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/ini';
import { loadDirectoryConfig } from '../../src/directory/config';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-dircfg-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function file(...lines: string[]): string {
  const f = join(dir, 'directory.ini');
  writeFileSync(f, [...lines, ''].join('\n'));
  return f;
}

function refusal(f: string, opts?: { otherSections?: readonly string[] }): ConfigError {
  try {
    loadDirectoryConfig(f, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('loaded');
}

const KNOWN_DIRECTORY =
  'roots, crls, cache_dir, dns, dns_servers, fetch_timeout_ms, refresh_ahead, refresh_jitter, retry_seconds, negative_ttl_seconds, dns_recheck_seconds, withdrawal_grace_seconds, allow_private_addresses';

test('a file of known names loads; [peers] and [hosts] take any name', () => {
  const f = file(
    '[directory]',
    'roots=root.pem',
    'dns=off',
    '[tls]',
    'ca=ca.pem',
    '[peers]',
    'b.example=https://ssmax.b.example/',
    '[hosts]',
    'ssmax.b.example=192.0.2.7',
  );
  const c = loadDirectoryConfig(f);
  expect(c.peers).toEqual({ 'b.example': 'https://ssmax.b.example/' });
  expect(c.hosts).toEqual({ 'ssmax.b.example': '192.0.2.7' });
  expect(c.tlsCa).toEqual([join(dir, 'ca.pem')]);
});

test('an unknown key of [directory] or [tls] is refused, naming section, key and the known ones', () => {
  const f = file('[directory]', 'roots=root.pem', 'dns_server=127.0.0.1');
  const e = refusal(f);
  expect(e.message).toBe(`${f} [directory] dns_server: is not a known setting, did you mean dns_servers? (known: ${KNOWN_DIRECTORY})`);
  expect(e.where).toMatchObject({ file: f, section: 'directory', key: 'dns_server' });
  expect(refusal(file('[directory]', 'roots=root.pem', '[tls]', 'cafile=x.pem')).message).toMatch(
    /\[tls\] cafile: is not a known setting \(known: ca\)$/,
  );
});

test("an unknown section is refused, an empty one too, unless it is another reader's", () => {
  const known = '(known: [directory], [tls], [peers], [hosts])';
  const f = file('[directory]', 'roots=root.pem', '[directroy]', 'dns=off');
  expect(refusal(f).message).toBe(`${f}: unknown section [directroy], did you mean [directory]? ${known}`);
  expect(refusal(f).where).toMatchObject({ file: f, section: 'directroy' });
  expect(refusal(file('[directory]', 'roots=root.pem', '[empty]')).message).toBe(`${f}: unknown section [empty] ${known}`);
  expect(
    loadDirectoryConfig(file('[directory]', 'roots=root.pem', '[registry]', 'anything=1'), { otherSections: ['registry'] }).roots,
  ).toEqual([join(dir, 'root.pem')]);
  // another reader's section does not make a misspelt one pass
  expect(
    refusal(file('[directory]', 'roots=root.pem', '[registry]', 'x=1', '[tsl]', 'ca=x'), { otherSections: ['registry'] }).message,
  ).toMatch(/unknown section \[tsl\]/);
});

test('a value outside any section is refused, naming it', () => {
  const f = file('roots=root.pem', '[directory]', 'roots=root.pem');
  const e = refusal(f);
  expect(e.message).toBe(`${f}: "roots" is outside any section`);
  expect(e.where).toMatchObject({ file: f, key: 'roots' });
});
