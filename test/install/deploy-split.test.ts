/**
 * docs/deploy.md step 10, split across hosts: `ssmax setup --inspection remote`
 * once, then each service runs from its own copy of `pki/` and its own folder
 * only (four "hosts": folders that share nothing else), keyd and the inspector
 * reached by address with their certificate names (keyd.a.example,
 * inspect.a.example). The services are this checkout's (bin/ssmax, its Haraka
 * with the plugin folder); test/install/deploy-walkthrough.test.ts covers the
 * installed package. Ends with alice's message relayed to bob@b.example and
 * opened by Bob, inspected on the way by the separate inspector.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type HarakaProcess, freePort, startHaraka } from '../../src/demo/haraka';
import { type Network, type ServiceProcess, startNetwork, startService } from '../../src/demo/network';
import { privateKeyToPem } from '../../src/pki/keys';
import { loadUserProfile } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { smtp, waitFor } from '../gateway/network-fixture';
import { PROJECT } from '../support/installed-haraka';

jest.setTimeout(240000);

const work = mkdtempSync(join(tmpdir(), 'ssmax-split-'));
const BIN = join(PROJECT, 'bin', 'ssmax');
const ssmax = (...args: string[]) => execFileSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8' });
let net: Network | undefined;
const running: ServiceProcess[] = [];
let gateway: HarakaProcess | undefined;

afterAll(async () => {
  await gateway?.stop();
  for (const s of running) await s.stop();
  await net?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('gateway, keyd, publisher and inspector each from their own folder: alice -> bob@b.example, inspected remotely', async () => {
  net = await startNetwork(join(work, 'network'), [
    { domain: 'a.example', users: [] },
    { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
  ]);
  const A = net.org('a.example');
  const B = net.org('b.example');
  await A.haraka.stop();
  await A.publisher.stop();
  await A.keyd.stop();
  const root = join(work, 'ssmax-root');
  mkdirSync(root);
  writeFileSync(join(root, 'ca.cert.pem'), net.root.certificate.pem);
  writeFileSync(join(root, 'ca.key.pem'), privateKeyToPem(net.root.privateKey), { mode: 0o600 });
  writeFileSync(join(root, 'ca.json'), JSON.stringify({ kind: 'root', crlNumber: 1, revoked: [], issued: [] }));
  ssmax('ca', 'init-org', '--unencrypted-key', '--root', root, '--dir', 'a.example-ca', '--domain', 'a.example', '--org', 'A Corp');
  ssmax('ca', 'crl', '--ca', root, '--out', 'root.crl.pem');

  const insPort = await freePort();
  const provisioned = join(work, 'provisioned');
  execFileSync(process.execPath, [require.resolve('Haraka/bin/haraka'), '-i', join(provisioned, 'gateway')], { stdio: 'ignore' });
  ssmax(
    'setup',
    '--domain',
    'a.example',
    '--org-ca',
    'a.example-ca',
    '--root-crl',
    'root.crl.pem',
    '--dir',
    provisioned,
    '--keyd-listen',
    `127.0.0.1:${A.ports.keyd}`,
    '--keyd-url',
    `https://127.0.0.1:${A.ports.keyd}`,
    '--inspection',
    'remote',
    '--inspector-listen',
    `127.0.0.1:${insPort}`,
    '--inspector-url',
    `https://127.0.0.1:${insPort}`,
    '--smtp-listen',
    `127.0.0.1:${A.ports.smtp}`,
    '--publisher-listen',
    `127.0.0.1:${A.ports.publisher}`,
    '--delivery',
    `127.0.0.1:${A.ports.mailbox}`,
    '--peer',
    `b.example=https://ssmax.b.example:${B.ports.publisher}/.well-known/ssmax/bundle`,
    '--host',
    'ssmax.b.example=127.0.0.1',
    '--route',
    `b.example=127.0.0.1:${B.ports.smtp}`,
  );

  // each host: pki/ and its own folder, nothing else
  const host = (name: string, folder: string) => {
    const dir = join(work, 'hosts', name, 'ssmax');
    cpSync(join(provisioned, 'pki'), join(dir, 'pki'), { recursive: true });
    cpSync(join(provisioned, folder), join(dir, folder), { recursive: true });
    return dir;
  };
  const keydHost = host('keyd', 'keyd');
  const pubHost = host('publisher', 'publisher');
  const insHost = host('inspector', 'inspector');
  const gwHost = host('gateway', 'gateway');
  const opsHost = host('operator', 'admin');

  running.push(await startService(['keyd', 'run', '--config', join(keydHost, 'keyd', 'keyd.ini')], /keyd listening on [^:]+:(\d+)/));
  running.push(
    await startService(['publish', '--config', join(pubHost, 'publisher', 'publisher.ini')], /publisher listening on [^:]+:(\d+)/),
  );
  running.push(
    await startService(['inspector', 'run', '--config', join(insHost, 'inspector', 'inspector.ini')], /inspector listening on [^:]+:(\d+)/),
  );
  // the gateway host: Haraka with the plugin (this checkout's plugin folder)
  const harakaDir = join(gwHost, 'gateway');
  mkdirSync(join(harakaDir, 'plugins'), { recursive: true });
  symlinkSync(join(PROJECT, 'plugins', 'ssmax'), join(harakaDir, 'plugins', 'ssmax'), 'dir');
  writeFileSync(
    join(harakaDir, 'config', 'auth_flat_file.ini'),
    `${readFileSync(join(harakaDir, 'config', 'auth_flat_file.ini'), 'utf8')}alice@a.example=pw-alice\n`,
  );
  gateway = await startHaraka(harakaDir, A.ports.smtp, 60000);
  // the operator registers alice (the admin folder's ini points at the org CA folder by its absolute path)
  expect(
    ssmax(
      'registry',
      'add',
      '--config',
      join(opsHost, 'admin', 'ssmax-abuse.ini'),
      'alice@a.example',
      '--code',
      'A-0001',
      '--identity-ref',
      'EMP-0001',
      '--plain',
    ),
  ).toMatch(/Registered alice@a\.example/);

  const msg =
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: Split\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <split-1@a.example>\r\n\r\nFrom a split deployment: Osprey-4410\r\n';
  const reply = await smtp(A.ports.smtp, 'alice@a.example', ['bob@b.example'], msg, { user: 'alice@a.example', pass: 'pw-alice' });
  expect(reply).toMatch(/^250 .*SSMAX transparent mode, 1 copy/);
  await waitFor(
    () => B.mailbox.for('bob@b.example').length >= 1,
    60000,
    () => gateway!.logs().slice(-4000),
  );
  const opened = await openMessage(loadUserProfile(B.profiles['bob@b.example']!), B.mailbox.for('bob@b.example')[0]!.raw, {
    now: new Date(),
  });
  expect(opened.plaintext.toString('utf8')).toContain('Osprey-4410');
  expect(opened.hops.map((h) => [h.instance, h.domain])).toEqual([
    [1, 'a.example'],
    [2, 'b.example'],
  ]);
  // the inspection is the inspector host's (remote mode): the gateway holds no inspector key, and
  // without the inspector a submission tempfails
  expect(readFileSync(join(harakaDir, 'config', 'ssmax.ini'), 'utf8')).toMatch(/^mode=remote$/m);
  expect(() => readFileSync(join(harakaDir, 'config', 'pki', 'inspector.key'))).toThrow();
  await running[2]!.stop();
  const without = await smtp(A.ports.smtp, 'alice@a.example', ['bob@b.example'], msg.replace('split-1@', 'split-2@'), {
    user: 'alice@a.example',
    pass: 'pw-alice',
  });
  expect(without).toMatch(/^4\d\d /);
});
