/**
 * `[ops] listen`, the one reader of the gateway's, keyd's, the publisher's
 * and the inspector's ops listener address (src/ops/server.ts): host:port,
 * an IPv6 address in brackets, empty or absent for no listener; anything
 * else is a ConfigError naming the file and the value.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/ini';
import { opsListenOf, opsSection, parseOpsListen } from '../../src/ops/server';

test.each([
  ['127.0.0.1:9520', { host: '127.0.0.1', port: 9520 }],
  ['  127.0.0.1:9520  ', { host: '127.0.0.1', port: 9520 }],
  ['localhost:0', { host: 'localhost', port: 0 }],
  ['ops.a.example:65535', { host: 'ops.a.example', port: 65535 }],
  ['[::1]:9521', { host: '::1', port: 9521 }],
  ['[::ffff:127.0.0.1]:9522', { host: '::ffff:127.0.0.1', port: 9522 }],
])('parseOpsListen(%j) is an address', (value, want) => {
  expect(parseOpsListen(value, 'ssmax.ini')).toEqual(want);
});

test.each([[''], ['   '], [undefined]])('parseOpsListen(%j) is no listener', (value) => {
  expect(parseOpsListen(value, 'ssmax.ini')).toBeUndefined();
});

test.each([
  ['9520'],
  [':9520'],
  ['127.0.0.1:'],
  ['127.0.0.1:65536'],
  ['127.0.0.1:123456'],
  ['127.0.0.1:port'],
  ['::1:9520'],
  ['[::1]'],
  ['[not-an-address]:1'],
  ['[1.2.3]:1'],
  ['[127.0.0.1]:1'],
  ['[::1:1'],
  ['a host:1'],
])('parseOpsListen(%j) is refused, naming the file and the value', (value) => {
  let err: unknown;
  try {
    parseOpsListen(value, 'Config "/etc/ssmax/keyd.ini"');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  // the reason is the shared host:port reader's (test/config/host-port.test.ts)
  expect((err as Error).message).toMatch(
    /^Config "\/etc\/ssmax\/keyd\.ini": \[ops\] listen must be host:port.* \(or empty: no listener\)$/,
  );
  expect((err as Error).message).toContain(`got '${value.trim()}'`);
});

test('opsListenOf reads a section: absent section or key is the default (no listener), a value is parsed', () => {
  expect(opsListenOf(undefined, 'ssmax.ini')).toBeUndefined();
  expect(opsListenOf({}, 'ssmax.ini')).toBeUndefined();
  expect(opsListenOf({ listen: '127.0.0.1:9520' }, 'ssmax.ini')).toEqual({ host: '127.0.0.1', port: 9520 });
  expect(() => opsListenOf({ listen: 9520 }, 'ssmax.ini')).toThrow(
    "ssmax.ini: [ops] listen must be host:port, got '9520' (or empty: no listener)",
  );
});

test("opsSection reads a service's file: its [ops] section, or {} when it has none", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-ops-listen-'));
  try {
    const withOps = join(dir, 'with.ini');
    const without = join(dir, 'without.ini');
    writeFileSync(withOps, '[keyd]\ndomain=a.example\n[ops]\nlisten=[::1]:9521\n');
    writeFileSync(without, '[keyd]\ndomain=a.example\n');
    expect(opsListenOf(opsSection(withOps), withOps)).toEqual({ host: '::1', port: 9521 });
    expect(opsSection(without)).toEqual({});
    expect(opsListenOf(opsSection(without), without)).toBeUndefined();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
