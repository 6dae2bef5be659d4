/**
 * Unknown settings, one check for every config file (src/config/ini.ts
 * findUnknown): a misspelt key or section is named with the nearest known
 * name; the programs that start from their file refuse it (exit 78), the
 * gateway inside Haraka logs it and goes on (docs/configuration.md,
 * "Unknown settings"). The directory, console and abuse files have their own
 * tests (test/directory/config.test.ts, test/console/config.test.ts,
 * test/abuse/config.test.ts).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, findUnknown, knownNamesOf, nearestName, parseIni } from '../../src/config/ini';
import { main } from '../../src/cli/main';
import { loadKeydConfig } from '../../src/keyd/config';
import { loadPublisherConfig } from '../../src/publisher/config';
import { parseInspectorConfig } from '../../src/inspector/config';
import { INSPECT_SETTINGS, refuseUnknownInspection } from '../../src/inspect/config';
import { HarakaIniFiles } from '../../src/gateway/ini-files';
import { shippedIni } from '../support/shipped-ini';

const dir = mkdtempSync(join(tmpdir(), 'ssmax-unknown-'));
function write(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}
/** The shipped file with `from` replaced by `to` (which must occur). */
function edited(name: string, from: string | RegExp, to: string): string {
  const text = shippedIni(name);
  const out = text.replace(from, to);
  expect(out).not.toBe(text);
  return out;
}

test('the nearest known name: one edit per three letters, at most two, a swap counting one; none when nothing is close', () => {
  expect(nearestName('grace_day', ['validity_days', 'renew_before_days', 'grace_days', 'schedule_seconds'])).toBe('grace_days');
  expect(nearestName('tsl', ['keyd', 'tls', 'pki', 'keys'])).toBe('tls');
  expect(nearestName('master_kye', ['domain', 'listen', 'data_dir', 'master_key'])).toBe('master_key');
  expect(nearestName('GRACE_DAYS', ['grace_days'])).toBe('grace_days');
  expect(nearestName('trusted_relay_login', ['trusted_relays', 'domain'])).toBeUndefined();
  expect(nearestName('ab', ['cd'])).toBeUndefined();
  expect(nearestName('x'.repeat(65), ['x'.repeat(64)])).toBeUndefined(); // no typo of a setting: not compared
});

test('a long hostile name costs linear time, not its length times the known names squared', () => {
  const ini = parseIni(`[keys]\n${'a'.repeat(200000)}=1\n`);
  const t = process.hrtime.bigint();
  const found = findUnknown(ini, knownNamesOf({ 'keys.grace_days': { type: 'num', min: 0, max: 1 } }));
  expect(Number(process.hrtime.bigint() - t) / 1e6).toBeLessThan(500);
  expect(found).toHaveLength(1);
  expect(found[0]!.suggestion).toBeUndefined();
});

describe('keyd: an unknown name stops it, named with the nearest known one (exit 78)', () => {
  test.each([
    [';grace_days=30', 'grace_day=7', /ssmax-keyd\.ini \[keys\] grace_day: is not a known setting, did you mean grace_days\? \(known: /],
    ['\n[tls]\n', '\n[tsl]\n', /ssmax-keyd\.ini: unknown section \[tsl\], did you mean \[tls\]\? \(known: \[keyd\], \[tls\], /],
    ['\nmaster_key=', '\nmaster_kye=', /\[keyd\] master_kye: is not a known setting, did you mean master_key\?/],
    // [crl] and [certificates] are read by other modules of keyd: checked all the same
    [';renew=true', 'renw=true', /\[crl\] renw: is not a known setting, did you mean renew\?/],
    [';lifetime_days=90', 'lifetime_day=90', /\[certificates\] lifetime_day: is not a known setting, did you mean lifetime_days\?/],
  ])('%s → %s', (from, to, message) => {
    const f = write('ssmax-keyd.ini', edited('ssmax-keyd.ini', from, to));
    expect(() => loadKeydConfig(f)).toThrow(message);
    expect(() => loadKeydConfig(f)).toThrow(ConfigError);
  });

  test('ssmax keyd run exits 78 with the message', async () => {
    const f = write('typo-keyd.ini', edited('ssmax-keyd.ini', ';grace_days=30', 'grace_day=7'));
    const err: string[] = [];
    const code = await main(['keyd', 'run', '--config', f], { out: () => undefined, err: (t) => err.push(t) });
    expect(code).toBe(78);
    expect(err.join('\n')).toMatch(/\[keys\] grace_day: is not a known setting, did you mean grace_days\?/);
  });
});

test('publisher: an unknown name stops it, named (exit 78)', async () => {
  const f = write('ssmax-publisher.ini', edited('ssmax-publisher.ini', /^;poll_seconds=/m, 'poll_second='));
  expect(() => loadPublisherConfig(f)).toThrow(/\[publisher\] poll_second: is not a known setting, did you mean poll_seconds\?/);
  const err: string[] = [];
  expect(await main(['publish', '--config', f], { out: () => undefined, err: (t) => err.push(t) })).toBe(78);
  expect(err.join('\n')).toMatch(/poll_second: is not a known setting, did you mean poll_seconds\?/);
});

test('inspector: an unknown name of its file stops it, named', () => {
  const text = edited('ssmax-inspector.ini', '\n[limits]\n', '\n[limit]\n');
  expect(() => parseInspectorConfig(parseIni(text), 'ssmax-inspector.ini')).toThrow(
    /ssmax-inspector\.ini: unknown section \[limit\], did you mean \[limits\]\?/,
  );
});

test("the inspector refuses an unknown name of ssmax-inspect.ini or of a DLP rule (each rule's type decides its keys)", () => {
  const dlp = parseIni(shippedIni('ssmax-dlp.ini'));
  const inspect = parseIni(shippedIni('ssmax-inspect.ini'));
  expect(() => refuseUnknownInspection('inspect.ini', inspect, 'dlp.ini', dlp)).not.toThrow();
  const badInspect = parseIni(edited('ssmax-inspect.ini', /^;on_unavailable=/m, 'on_unavailabel='));
  expect(() => refuseUnknownInspection('inspect.ini', badInspect, 'dlp.ini', dlp)).toThrow(
    /inspect\.ini \[av\] on_unavailabel: is not a known setting, did you mean on_unavailable\?/,
  );
  const badDlp = parseIni('[secret-words]\ntype=keyword\nwords=secret\nacton=tag\n[big]\ntype=size\nmax_byte=10\n');
  expect(() => refuseUnknownInspection('inspect.ini', inspect, 'dlp.ini', badDlp)).toThrow(
    /dlp\.ini \[secret-words\] acton: is not a known setting, did you mean action\? \(known: type, action, words\)/,
  );
  expect(findUnknown(badDlp, { sections: new Map(), other: () => 'any' })).toEqual([]);
  expect(findUnknown(inspect, knownNamesOf(INSPECT_SETTINGS))).toEqual([]);
});

test('the gateway logs an unknown name of ssmax.ini, ssmax-inspect.ini or ssmax-dlp.ini with the nearest known one, and goes on', () => {
  const files: Record<string, unknown> = {
    'ssmax.ini': { main: { domain: 'a.example', hook_timeout_m: '1000' }, kyed: { url: 'x' } },
    'ssmax-inspect.ini': { av: { enabeld: 'true' } },
    'ssmax-dlp.ini': ['[cards]', 'type=card', 'mn=2'],
  };
  const errors: string[] = [];
  const loader = { get: (name: string) => files[name] };
  const ini = new HarakaIniFiles(
    loader,
    loader,
    dir,
    () => undefined,
    (l) => errors.push(l),
  );
  ini.read('ssmax.ini');
  ini.read('ssmax-inspect.ini');
  ini.read('ssmax-dlp.ini');
  expect(errors).toEqual([
    'ssmax: ssmax.ini [main] hook_timeout_m: not a setting of the gateway, ignored, did you mean hook_timeout_ms? (docs/configuration.md)',
    'ssmax: ssmax.ini [kyed]: not a section of the gateway, ignored, did you mean [keyd]? (docs/configuration.md)',
    'ssmax: ssmax-inspect.ini [av] enabeld: not a setting of the gateway, ignored, did you mean enabled? (docs/configuration.md)',
    'ssmax: ssmax-dlp.ini [cards] mn: not a setting of the gateway, ignored, did you mean min? (docs/configuration.md)',
  ]);
});
