/**
 * A bad path in ssmax.ini: Haraka (a real process with the ssmax plugin) logs
 * one clear line naming the setting's file and stops, instead of a stack
 * trace of the plugin's and Haraka's internals.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, layoutHaraka, startHaraka } from '../../src/demo/haraka';

jest.setTimeout(60000);

test('a missing file named in ssmax.ini: one CRIT line "ssmax: cannot start: …", no "    at " lines, Haraka exits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-startup-'));
  const port = await freePort();
  const missing = join(dir, 'no-such', 'org-ca.pem');
  layoutHaraka(dir, {
    port,
    me: 'mx.a.example',
    plugins: ['ssmax'],
    files: {
      'ssmax.ini': [
        '[main]',
        'domain=a.example',
        '[keyd]',
        'url=https://127.0.0.1:9',
        `ca=${missing}`,
        'cert=gateway.pem',
        'key=gateway.key',
        '[seal]',
        'cert=seal.pem',
        'key=seal.key',
        '[pki]',
        'roots=root.pem',
        '[delivery]',
        'host=127.0.0.1:9',
        '',
      ].join('\n'),
    },
  });
  let log = '';
  await expect(
    startHaraka(dir, port, 30000).catch((err: Error) => {
      log = err.message;
      throw err;
    }),
  ).rejects.toThrow(/Haraka exited 1/);
  const crit = log.split('\n').filter((l) => l.includes('[CRIT]'));
  expect(crit).toHaveLength(1);
  expect(crit[0]).toContain(`ssmax: cannot start: ssmax.ini [keyd] ca: cannot read "${missing}": no such file (ENOENT)`);
  expect(log).not.toMatch(/^\s*(\[CRIT\] \[-\] \[core\])?\s+at /m);
});
