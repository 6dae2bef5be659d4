/**
 * `ssmax publish` (the built CLI, a real keyd answering) and the files it
 * needs: every one is read and checked before anything is published, and a
 * missing or unusable one exits 78 — the code keyd gives the same fault
 * (docs/cli.md) — naming the setting and the file.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type KeydProcess, startKeydProcess } from '../support/keyd-process';
import { type Org, makeOrg } from '../directory/fixtures';
import { startPublisherProcess, writePublisherFiles, writePublisherIni } from './fixtures';

const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');

let org: Org;
let keyd: KeydProcess;
let ini: string;

beforeAll(async () => {
  org = makeOrg('a.example');
  keyd = await startKeydProcess(org.fx.configFile);
  writePublisherFiles(org);
  ini = writePublisherIni(org, { keydPort: keyd.port });
  writeFileSync(join(org.fx.dir, 'other.key'), org.fx.clients.admin.key);
});
afterAll(async () => {
  await keyd?.stop();
});

test.each([
  ['cert=signer.pem', 'cert=signer-missing.pem', /\[signer\] cert: cannot read "[^"]*\/signer-missing\.pem": no such file \(ENOENT\)/],
  ['cert=publisher.pem', 'cert=publisher.key', /\[tls\] cert: "[^"]*\/publisher\.key" holds no PEM certificate/],
  [
    'key=publisher.key',
    'key=other.key',
    /\[tls\] key: "[^"]*\/other\.key" is not the key of the certificate "[^"]*\/publisher\.pem" \(\[tls\] cert\)/,
  ],
  ['crls=pub-org-ca.crl.pem,', 'crls=org-ca.pem,', /\[pki\] crls: "[^"]*\/org-ca\.pem" is not a CRL/],
  [
    'sealing_certificates=seal.pem',
    'sealing_certificates=seal-missing.pem',
    /\[pki\] sealing_certificates: cannot read "[^"]*\/seal-missing\.pem"/,
  ],
  ['\ncert=admin.pem', '\ncert=admn.pem', /\[keyd\] cert: cannot read "[^"]*\/admn\.pem": no such file \(ENOENT\)/],
])('%s → %s: exit 78 naming the setting and the file, nothing published', (from, to, message) => {
  const text = readFileSync(ini, 'utf8');
  expect(text).toContain(from);
  const bad = join(org.fx.dir, 'bad-publisher.ini');
  writeFileSync(bad, text.replace(from, to).replace('state_file=publisher-state.json', 'state_file=bad-state.json'));
  const r = spawnSync(process.execPath, [BIN, 'publish', '--config', bad], { encoding: 'utf8', timeout: 60000 });
  expect({ code: r.status, err: r.stderr }).toEqual({ code: 78, err: expect.stringMatching(message) });
  expect(r.stderr).toMatch(/bad-publisher\.ini \[/);
  expect(existsSync(join(org.fx.dir, 'bad-state.json'))).toBe(false); // no bundle serial was ever published
  expect(r.stdout).not.toMatch(/listening/);
});

test('a second publisher on the same state file exits 69 naming the first (each grows the serial in memory: two would issue the same serials)', async () => {
  const first = await startPublisherProcess(writePublisherIni(org, { keydPort: keyd.port, name: 'first.ini' }));
  try {
    const second = writePublisherIni(org, { keydPort: keyd.port, name: 'second.ini' });
    const r = spawnSync(process.execPath, [BIN, 'publish', '--config', second], { encoding: 'utf8', timeout: 60000 });
    expect(r.status).toBe(69);
    expect(r.stderr).toMatch(
      new RegExp(`publisher state ".*publisher-state\\.json" is in use by another publisher \\(pid ${first.proc.pid}\\)`),
    );
    expect(r.stdout).not.toMatch(/listening/);
  } finally {
    expect(await first.stop()).toBe(0);
  }
  // once it stopped, another may run
  const next = await startPublisherProcess(writePublisherIni(org, { keydPort: keyd.port, name: 'next.ini' }));
  await next.stop();
});
