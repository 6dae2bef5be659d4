/**
 * docs/deploy.md, run as written: the blocks marked `tested` are run with
 * bash in an empty folder, in order, each after the settings block — which
 * the test replaces with its own values (loopback addresses, free ports, and
 * the peer b.example named without DNS). npm installs globally into a prefix
 * inside the test folder (npm_config_prefix), so `haraka` and `ssmax` are the
 * installed ones, not this checkout's.
 *
 * The other organisation, b.example, and the SSMAX root come from
 * startNetwork; the network's own a.example services are stopped first and
 * their ports (and its mailbox store) handed to the walkthrough, so b.example's
 * gateway finds the new a.example where it expects it. The walkthrough ends
 * with alice's first message: encrypted and sealed by the new gateway, relayed
 * through its Haraka outbound, verified by b.example and opened by Bob.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Network, startNetwork } from '../../src/demo/network';
import { privateKeyToPem } from '../../src/pki/keys';
import { loadUserProfile } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { waitFor } from '../gateway/network-fixture';
import { runBlock, testedBlocks } from '../support/doc-blocks';
import { NPM_ENV, PROJECT, lockedHarakaVersion, packPlugin } from '../support/installed-haraka';

jest.setTimeout(420000);

const DOC = join(PROJECT, 'docs', 'deploy.md');
const block = (name: string) => testedBlocks(DOC, name)[0]!;
const work = mkdtempSync(join(tmpdir(), 'ssmax-deploy-'));
const prefix = join(work, '.npm-global');
const env = { ...NPM_ENV, npm_config_prefix: prefix, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, NODE_ENV: 'production' };
let net: Network | undefined;
let services: ChildProcess | undefined;
let settings = '';
const timings: [string, number][] = [];

async function step(name: string): Promise<string> {
  const t0 = Date.now();
  const r = await runBlock(`${settings}\n${block(name)}`, work, env);
  timings.push([name, Date.now() - t0]);
  if (r.status !== 0) throw new Error(`docs/deploy.md block "${name}" failed (exit ${r.status}):\n${r.output}`);
  return r.output;
}

function logOf(name: string): string {
  const f = join(work, 'ssmax', `${name}.log`);
  return existsSync(f) ? readFileSync(f, 'utf8') : '';
}

async function ready(name: string, re: RegExp): Promise<void> {
  await waitFor(
    () => re.test(logOf(name)),
    90000,
    () => `${name} did not start:\n${logOf(name).slice(-3000)}`,
  );
}

afterAll(async () => {
  // the services the start block put in the background: its process group
  if (services?.pid) {
    try {
      process.kill(-services.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  await net?.stop();
  await new Promise((r) => setTimeout(r, 500));
  rmSync(work, { recursive: true, force: true });
  console.log(`docs/deploy.md walkthrough, seconds per step: ${timings.map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)}`).join(', ')}`);
});

test('the settings block declares what the other blocks use', () => {
  const names = [...block('deploy-settings').matchAll(/^([A-Z_]+)=/gm)].map((m) => m[1]);
  expect(names).toEqual(['DOMAIN', 'ORG', 'SSMAX', 'SMTP_LISTEN', 'KEYD_LISTEN', 'PUBLISHER_LISTEN', 'MAILBOX', 'PEER_OPTIONS']);
  expect(block('deploy-install')).toContain(`Haraka@${lockedHarakaVersion()} `);
});

test('from an empty folder to a running a.example joined to the root: alice relays to bob@b.example, and Bob opens it', async () => {
  const t0 = Date.now();
  const [network, tgz] = await Promise.all([
    startNetwork(join(work, 'network'), [
      { domain: 'a.example', users: [] },
      { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
    ]),
    packPlugin(work),
  ]);
  net = network;
  timings.push(['network and pack (test fixtures)', Date.now() - t0]);
  expect(tgz).toBe(join(work, 'haraka-plugin-ssmax-0.1.0.tgz'));
  const A = network.org('a.example');
  const B = network.org('b.example');
  await A.haraka.stop();
  await A.publisher.stop();
  await A.keyd.stop();

  // the SSMAX root's operator's folder (ssmax ca init-root layout), holding the network's root
  const root = join(work, 'ssmax-root');
  mkdirSync(root);
  writeFileSync(join(root, 'ca.cert.pem'), network.root.certificate.pem);
  writeFileSync(join(work, 'root.pass'), 'the root passphrase\n', { mode: 0o600 }); // as step 4's deploy-root-init leaves it
  writeFileSync(join(root, 'ca.key.pem'), privateKeyToPem(network.root.privateKey, 'the root passphrase'), { mode: 0o600 });
  writeFileSync(join(root, 'ca.json'), JSON.stringify({ kind: 'root', crlNumber: 1, revoked: [], issued: [] }));

  settings = [
    'DOMAIN=a.example',
    'ORG="A Corp"',
    'SSMAX="$PWD/ssmax"',
    `SMTP_LISTEN=127.0.0.1:${A.ports.smtp}`,
    `KEYD_LISTEN=127.0.0.1:${A.ports.keyd}`,
    `PUBLISHER_LISTEN=127.0.0.1:${A.ports.publisher}`,
    `MAILBOX=127.0.0.1:${A.ports.mailbox}`,
    `PEER_OPTIONS="--peer b.example=https://ssmax.b.example:${B.ports.publisher}/.well-known/ssmax/bundle --host ssmax.b.example=127.0.0.1 --route b.example=127.0.0.1:${B.ports.smtp}"`,
  ].join('\n');

  await step('deploy-install');
  expect(existsSync(join(prefix, 'bin', 'haraka'))).toBe(true);
  expect(existsSync(join(prefix, 'bin', 'ssmax'))).toBe(true);
  await step('deploy-root');
  const setupOut = await step('deploy-setup');
  expect(setupOut).toMatch(/Organisation a\.example provisioned in/);
  expect(
    readFileSync(join(work, 'ssmax', 'gateway', 'config', 'plugins'), 'utf8')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#')),
  ).toEqual(['auth/flat_file', 'ssmax']);

  // the start block backgrounds the services: bash in a process group of its own, stopped in afterAll
  const t1 = Date.now();
  services = spawn('bash', ['-euo', 'pipefail', '-c', `${settings}\n${block('deploy-start')}`], {
    cwd: work,
    env: { ...process.env, ...env },
    detached: true,
    stdio: 'ignore',
  });
  await ready('keyd', /keyd listening on/);
  await ready('publisher', /publisher listening on/);
  await ready('gateway', /Listening on/);
  timings.push(['deploy-start (until all three listen)', Date.now() - t1]);
  expect(logOf('gateway')).toMatch(/ssmax: gateway for a\.example/);

  await step('deploy-user');
  // an SSMAX client user: the profile gets the organisation's bundle fetched from the running publisher
  expect(await step('deploy-user-profile')).toMatch(/Registered carol@a\.example as A-0002 with certificates/);
  // the profile's keys are encrypted under the passphrase file the block made
  expect(readFileSync(join(work, 'carol-profile', 'signing.key.pem'), 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  const carolPassphrase = readFileSync(join(work, 'carol-key-passphrase'), 'utf8').trim();
  expect(loadUserProfile(join(work, 'carol-profile'), { keyPassphrase: carolPassphrase }).address).toBe('carol@a.example');
  // Haraka re-reads the file in its master and in its worker (smtp.ini nodes unset: one worker); the worker answers
  await waitFor(
    () => (logOf('gateway').match(/Reloaded file: .*auth_flat_file\.ini/g) ?? []).length >= 2,
    60000,
    () => `the gateway did not re-read auth_flat_file.ini:\n${logOf('gateway').slice(-3000)}`,
  );
  await step('deploy-send');
  await waitFor(
    () => B.mailbox.for('bob@b.example').length >= 1,
    60000,
    () => `nothing reached bob@b.example; the gateway logged:\n${logOf('gateway').slice(-4000)}`,
  );
  expect(logOf('gateway')).toMatch(/Queued \(SSMAX transparent mode, 1 copy\)/);
  const copy = B.mailbox.for('bob@b.example')[0]!;
  const bob = loadUserProfile(B.profiles['bob@b.example']!);
  const opened = await openMessage(bob, copy.raw, { now: new Date() });
  expect(opened.encrypted).toBe(true);
  expect(opened.plaintext.toString('utf8')).toContain('Hello from the new gateway.');
  expect(opened.hops.map((h) => [h.instance, h.domain])).toEqual([
    [1, 'a.example'],
    [2, 'b.example'],
  ]);
  expect(opened.hops.find((h) => h.instance === 1)?.verdicts).toBe('e2e:none');

  // carol, the SSMAX client user: signs and encrypts on her machine, submits with the options her profile lacks
  expect(await step('deploy-user-client')).toMatch(/250 Queued \(SSMAX client mode, 1 copy\)/);
  await waitFor(
    () => A.mailbox.for('alice@a.example').length >= 1,
    60000,
    () => `nothing reached alice@a.example; the gateway logged:\n${logOf('gateway').slice(-4000)}`,
  );
  const local = A.mailbox.for('alice@a.example')[0]!.raw.toString('utf8');
  // alice has a plain client: her copy was decrypted on the internal hop, and sealed by her own gateway
  expect(local).toContain('Encrypted on my machine.');
  expect(local).toMatch(/^SSMAX-Seal: v=1; i=1; d=a\.example;/m);
  timings.push(['total', Date.now() - t0]);
});
