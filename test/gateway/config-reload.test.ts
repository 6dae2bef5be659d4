/**
 * ssmax.ini changed under a running gateway (a real Haraka with the ssmax
 * plugin, keyd, publishers and mailbox stores of a.example and b.example):
 * Haraka's config loader notices the change and the plugin takes the settings
 * that can change at run time at once — here [main] trusted_relays: a relay on
 * 127.0.0.2 is refused before, its mail relayed and delivered after — logs a
 * changed setting that needs a restart as such ([keyd] timeout_ms), logs a key
 * it does not know, and keeps the running configuration when the changed file
 * is not valid.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Network } from '../../src/demo/network';
import { ORGS, network, rawSmtp, waitFor, expectLogged } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
beforeAll(async () => {
  net = await network(ORGS.filter((o) => o.domain !== 'c.example'));
});
afterAll(async () => {
  await net?.stop();
});

const message = (marker: string) =>
  Buffer.from(
    `From: dave@a.example\r\nTo: carol@b.example\r\nSubject: ${marker}\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <${marker}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nBody ${marker}\r\n`,
  );
/** Mail from the organisation's MTA at 127.0.0.2, without SMTP AUTH. */
const fromRelay = (marker: string) =>
  rawSmtp(net.org('a.example').haraka.port, 'dave@a.example', ['carol@b.example'], message(marker), undefined, '127.0.0.2');
const delivered = (marker: string) =>
  net
    .org('b.example')
    .mailbox.for('carol@b.example')
    .some((m) => m.raw.toString('utf8').includes(`Body ${marker}`));

test('a reloadable setting takes effect without a restart; a restart-only one is logged as such; an invalid file changes nothing', async () => {
  const A = net.org('a.example');
  const file = join(A.harakaDir, 'config', 'ssmax.ini');
  const original = readFileSync(file, 'utf8');
  const logs = () => A.haraka.logs();
  const pid = A.haraka.proc.pid;

  expect(await fromRelay('before')).toMatch(/Relaying denied/);

  // and a misspelt key: logged, ignored
  const withRelay = original
    .replace('hook_timeout_ms=20000\n', 'hook_timeout_ms=20000\ntrusted_relays=127.0.0.2\ntrusted_relay_login=x\n')
    .replace(/\ntimeout_ms=3000\n/, '\ntimeout_ms=4000\n');
  expect(withRelay).toContain('trusted_relays=127.0.0.2');
  expect(withRelay).toContain('\ntimeout_ms=4000\n');
  writeFileSync(file, withRelay);
  await waitFor(
    () => /ssmax: ssmax\.ini reloaded: main\.trusted_relays in effect now/.test(logs()),
    30000,
    () => logs().slice(-3000),
  );
  await expectLogged(logs, /\[ERROR\].*ssmax: ssmax\.ini changed: keyd\.timeout_ms takes effect after a restart of Haraka/);
  await expectLogged(logs, /\[ERROR\].*ssmax: ssmax\.ini \[main\] trusted_relay_login: not a setting of the gateway, ignored/);
  expect(await fromRelay('after')).toMatch(/250 .*Queued/);
  await waitFor(() => delivered('after'), 30000);

  // not valid: logged with the file, section and key; the relay stays trusted
  writeFileSync(file, withRelay.replace('hook_timeout_ms=20000\n', 'hook_timeout_ms=soon\n'));
  await waitFor(
    () =>
      /ssmax: ssmax\.ini changed but cannot be used; the running configuration is kept: ssmax\.ini \[main\] hook_timeout_ms: must be a whole number from 1 to 3600000, got 'soon'/.test(
        logs(),
      ),
    30000,
    () => logs().slice(-3000),
  );
  expect(await fromRelay('kept')).toMatch(/250 .*Queued/);
  await waitFor(() => delivered('kept'), 30000);

  // back as it was: the relay is refused again
  const reloads = (logs().match(/ssmax\.ini reloaded: main\.trusted_relays/g) ?? []).length;
  writeFileSync(file, original);
  await waitFor(
    () => (logs().match(/ssmax\.ini reloaded: main\.trusted_relays/g) ?? []).length > reloads,
    30000,
    () => logs().slice(-3000),
  );
  expect(await fromRelay('removed')).toMatch(/Relaying denied/);
  expect(delivered('before')).toBe(false);
  expect(delivered('removed')).toBe(false);
  // all of it in the one Haraka process
  expect(A.haraka.proc.pid).toBe(pid);
  expect(A.haraka.proc.exitCode).toBeNull();
});
