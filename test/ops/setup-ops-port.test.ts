/**
 * `ssmax setup --ops-port PORT` turns on the loopback health and metrics
 * listeners the compose healthchecks call (docs/docker.md): gateway PORT,
 * keyd PORT+1, publisher PORT+2, inspector PORT+3; without it, none. And the
 * org CA's first CRL continues the CRL number of the CA's crl.pem (one
 * counter: docs/operations.md, "Renewals").
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { main } from '../../src/cli/main';
import { parseCrl } from '../../src/pki/crl';

jest.setTimeout(60000);

function cli(argv: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  return main(argv, { out: (t) => out.push(t), err: (t) => out.push(t) }).then((code) => ({ code, out: out.join('\n') }));
}

const base = mkdtempSync(join(tmpdir(), 'ssmax-setup-ops-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

test('--ops-port writes [ops] listen for each service; absent, none; a bad one is refused', async () => {
  const root = join(base, 'root');
  const orgCa = join(base, 'a-ca');
  const rootCrl = join(base, 'root.crl.pem');
  expect((await cli(['ca', 'init-root', '--unencrypted-key', '--dir', root])).code).toBe(0);
  expect(
    (await cli(['ca', 'init-org', '--unencrypted-key', '--root', root, '--dir', orgCa, '--domain', 'a.example', '--org', 'A Corp'])).code,
  ).toBe(0);
  expect((await cli(['ca', 'crl', '--ca', root, '--out', rootCrl])).code).toBe(0);
  for (let i = 0; i < 3; i++) expect((await cli(['ca', 'crl', '--ca', orgCa])).code).toBe(0); // crl.pem at number 3
  const setup = async (dir: string, ...more: string[]) => {
    execFileSync(process.execPath, [require.resolve('Haraka/bin/haraka'), '-i', join(dir, 'gateway')], { stdio: 'ignore' });
    return cli([
      'setup',
      '--domain',
      'a.example',
      '--org-ca',
      orgCa,
      '--root-crl',
      rootCrl,
      '--dir',
      dir,
      '--inspection',
      'remote',
      ...more,
    ]);
  };
  const listen = (file: string) => (parse(readFileSync(file, 'utf8')) as { ops?: { listen?: string } }).ops?.listen;
  const on = join(base, 'on');
  expect((await setup(on, '--ops-port', '9620')).code).toBe(0);
  expect([
    listen(join(on, 'gateway', 'config', 'ssmax.ini')),
    listen(join(on, 'keyd', 'keyd.ini')),
    listen(join(on, 'publisher', 'publisher.ini')),
    listen(join(on, 'inspector', 'inspector.ini')),
  ]).toEqual(['127.0.0.1:9620', '127.0.0.1:9621', '127.0.0.1:9622', '127.0.0.1:9623']);
  expect(parseCrl(readFileSync(join(on, 'pki', 'org-ca.crl.pem'), 'utf8')).crlNumber).toBe(4n);
  expect('crlNumber' in (JSON.parse(readFileSync(join(orgCa, 'ca.json'), 'utf8')) as object)).toBe(false);
  const off = join(base, 'off');
  expect((await setup(off)).code).toBe(0);
  expect(listen(join(off, 'keyd', 'keyd.ini')) ?? '').toBe('');
  expect((await setup(join(base, 'bad'), '--ops-port', '70000')).code).toBe(64);
});
