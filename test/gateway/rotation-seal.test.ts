/**
 * A peer renews its sealing certificate while our cached bundle (1-hour
 * lifetime) still lists the old one: the first seal by the new certificate
 * makes the receiving gateway refresh the sealer's bundle once (bounded) and
 * verify again, instead of refusing the mail 550 unknown-certificate.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNetwork, type Network } from '../../src/demo/network';
import { fetchBundleText } from '../../src/directory/fetch';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { issueSealingCertificate } from '../../src/pki/issue';
import { privateKeyToPem } from '../../src/pki/keys';
import { smtp, waitFor, expectLogged } from './network-fixture';

jest.setTimeout(120000);

let net: Network;
const REFRESH_MIN_S = 1;

beforeAll(async () => {
  net = await startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-seal-')), [
    // A refreshes a peer's bundle at most once a second here (5 s by default): the second test waits that out
    {
      domain: 'a.example',
      users: [{ address: 'dave@a.example', client: 'plain', password: 'pw-dave' }],
      gatewayIni: ['[key_exchange]', `refresh_min_interval_seconds=${REFRESH_MIN_S}`],
    },
    { domain: 'b.example', users: [{ address: 'carol@b.example', client: 'plain', password: 'pw-carol' }] },
  ]);
});
afterAll(async () => {
  await net?.stop();
});

const carol = { user: 'carol@b.example', pass: 'pw-carol' };
const mail = (marker: string) =>
  `From: carol@b.example\r\nTo: dave@a.example\r\nSubject: ${marker}\r\nMessage-ID: <${marker}@b.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n${marker} body\r\n`;
const got = (marker: string) =>
  net
    .org('a.example')
    .mailbox.for('dave@a.example')
    .filter((m) => m.raw.toString('latin1').includes(`Subject: ${marker}`)).length;

test("B's new sealing certificate: A refreshes B's bundle once and accepts the mail", async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  expect(await smtp(B.ports.smtp, 'carol@b.example', ['dave@a.example'], mail('S-old'), carol)).toMatch(/^250 /);
  await waitFor(
    () => got('S-old') === 1,
    20000,
    () => A.haraka.logs().slice(-2000),
  );

  // B renews its sealing certificate; the publisher re-publishes on the file change; B's gateway restarts with the new key
  const hosts = new Map([['ssmax.b.example', '127.0.0.1']]);
  const before = await fetchBundleText(B.bundleUrl, { timeoutMs: 5000, ca: B.fx.caPem, hosts });
  const pair = generateP256KeyPair();
  const now = Date.now();
  writeFileSync(
    join(B.fx.dir, 'seal.cert.pem'),
    issueSealingCertificate(B.fx.orgCa, {
      domain: 'b.example',
      host: 'mx.b.example',
      publicKey: pair.publicKey,
      notBefore: new Date(now - 60000),
      notAfter: new Date(now + 86400000),
    }).pem,
  );
  writeFileSync(join(B.fx.dir, 'seal.key.pem'), privateKeyToPem(pair.privateKey));
  let after = before;
  for (let i = 0; i < 50 && after === before; i++) {
    await new Promise((r) => setTimeout(r, 200));
    after = await fetchBundleText(B.bundleUrl, { timeoutMs: 5000, ca: B.fx.caPem, hosts });
  }
  expect(after).not.toBe(before);
  await B.restartHaraka();
  expect(readFileSync(join(B.fx.dir, 'seal.key.pem'), 'utf8')).toContain('PRIVATE KEY');

  expect(await smtp(B.ports.smtp, 'carol@b.example', ['dave@a.example'], mail('S-new'), carol)).toMatch(/^250 /);
  await waitFor(
    () => got('S-new') === 1,
    30000,
    () => `${A.haraka.logs().slice(-3000)}\n---\n${B.haraka.logs().slice(-2000)}`,
  );
  await expectLogged(() => A.haraka.logs(), /seal by a certificate not in the cached bundle of b\.example: bundle refreshed/);
  expect(B.haraka.logs()).not.toMatch(/bouncing mail/);
});

test("B's new sealing certificate while B's publisher is unreachable: A cannot fetch B's bundle afresh and defers (4xx 4.7.5), never bounces", async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  // B renews again, but its publisher is down: nobody can fetch a bundle carrying the new certificate
  await B.publisher.stop();
  try {
    const pair = generateP256KeyPair();
    const now = Date.now();
    writeFileSync(
      join(B.fx.dir, 'seal.cert.pem'),
      issueSealingCertificate(B.fx.orgCa, {
        domain: 'b.example',
        host: 'mx.b.example',
        publicKey: pair.publicKey,
        notBefore: new Date(now - 60000),
        notAfter: new Date(now + 86400000),
      }).pem,
    );
    writeFileSync(join(B.fx.dir, 'seal.key.pem'), privateKeyToPem(pair.privateKey));
    await B.restartHaraka(); // seals with the new certificate from the start
    await new Promise((r) => setTimeout(r, REFRESH_MIN_S * 1000 + 500)); // past A's refresh_min_interval for B's seals (the first test's refresh)
    expect(await smtp(B.ports.smtp, 'carol@b.example', ['dave@a.example'], mail('S-down'), carol)).toMatch(/^250 /);
    await waitFor(
      () => /seal by a certificate not in the cached bundle of b\.example: refresh failed/.test(A.haraka.logs()),
      30000,
      () => A.haraka.logs().slice(-3000),
    );
    await waitFor(
      () => /45\d 4\.7\.5 SSMAX sealing certificate not in the sealer's bundle/.test(B.haraka.logs()),
      30000,
      () => `${A.haraka.logs().slice(-3000)}\n---\n${B.haraka.logs().slice(-3000)}`,
    );
    expect(A.haraka.logs()).not.toMatch(/550 5\.7\.5 SSMAX sealing certificate refused/);
    expect(B.haraka.logs()).not.toMatch(/bouncing mail/);
    expect(got('S-down')).toBe(0);
  } finally {
    await B.restartPublisher();
  }
});
