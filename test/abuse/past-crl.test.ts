/**
 * Abuse reports for messages sealed before later CRL re-issues (issue 16,
 * RFC 5280 validation at a past time), through real processes: alice's
 * message reaches bob; then a.example's org CA issues three new CRLs (the
 * publisher puts each in the bundle); only then does b.example report the
 * message and a.example resolve the report — both with fresh directory
 * clients that hold nothing but the newest bundle.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAbuseReport, identifyReportedMessage } from '../../src/abuse/report';
import { resolveReport } from '../../src/abuse/resolve';
import { type Network, startNetwork } from '../../src/demo/network';
import { Directory } from '../../src/directory/directory';
import { KeydClient } from '../../src/keyd/client';
import { parseCertificate } from '../../src/pki/certificate';
import { createCrl } from '../../src/pki/crl';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { waitFor } from '../gateway/network-fixture';

jest.setTimeout(150000);

let net: Network;
const dirs: Directory[] = [];

function directory(): Directory {
  const peers: Record<string, string> = {};
  const hosts: Record<string, string> = {};
  for (const o of net.orgs) {
    peers[o.domain] = o.bundleUrl;
    hosts[`ssmax.${o.domain}`] = '127.0.0.1';
  }
  const d = new Directory({
    roots: [net.root.certificate.pem],
    staticPeers: peers,
    hosts,
    resolver: null,
    fetchTimeoutMs: 3000,
    retryMs: 0,
  });
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  net = await startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-pastcrl-')), [
    { domain: 'a.example', users: [{ address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' }] },
    { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
  ]);
});
afterAll(async () => {
  for (const d of dirs) await d.close();
  await net?.stop();
});

test('a message sealed three CRLs ago is reported by b.example and resolved by a.example', async () => {
  const A = net.org('a.example');
  const B = net.org('b.example');
  const alice = loadUserProfile(A.profiles['alice@a.example']!);
  const original = Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: Old offer\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <old-offer@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nBuy now\r\n',
  );
  const r = await submitMessage(alice, await signAndEncrypt(alice, original, { now: new Date() }), { to: ['bob@b.example'] });
  expect(r.response).toMatch(/^250 /);
  await waitFor(() => B.mailbox.for('bob@b.example').length >= 1, 30000);
  const received = B.mailbox.for('bob@b.example')[0]!.raw;

  // three CRL re-issues after the seal, each published in a new bundle
  await new Promise((res) => setTimeout(res, 1100)); // the new CRLs are issued strictly after the seal's second
  for (const n of [2, 3, 4]) {
    const now = Date.now();
    const crl = createCrl(A.fx.orgCa, {
      entries: [{ serial: parseCertificate(A.fx.clients.revoked.cert).serial, revokedAt: new Date(now - 60000), reason: 'keyCompromise' }],
      thisUpdate: new Date(now),
      nextUpdate: new Date(now + 7 * 86400000),
      crlNumber: n,
    });
    writeFileSync(join(A.fx.dir, 'org-ca.crl.pem'), crl.pem, { mode: 0o600 });
    const end = Date.now() + 20000;
    for (;;) {
      const probe = directory(); // a fresh client: no cached bundle
      const entry = await probe.lookup('a.example').catch(() => undefined);
      if (entry?.crls.some((c) => c.replace(/\s/g, '') === crl.pem.replace(/\s/g, ''))) break;
      if (Date.now() > end) throw new Error(`CRL ${n} was not published`);
      await new Promise((res) => setTimeout(res, 500));
    }
  }

  const reported = await identifyReportedMessage(received, { lookup: (d) => directory().lookup(d), ownDomain: 'b.example' });
  const report = await buildAbuseReport({
    reported,
    from: 'abuse@b.example',
    reportingMta: 'mx.b.example',
    originalRcptTo: 'bob@b.example',
    comment: 'Spam',
    now: new Date(),
  });
  const fresh = directory();
  const keyd = new KeydClient({
    url: `https://127.0.0.1:${A.ports.keyd}`,
    servername: 'keyd.a.example',
    cert: A.fx.clients.admin.cert,
    key: A.fx.clients.admin.key,
    ca: A.fx.caPem,
  });
  try {
    const resolved = await resolveReport(report, { keyd, domain: 'a.example', ownBundle: () => fresh.lookup('a.example') });
    expect(resolved.user.address).toBe('alice@a.example');
    expect(resolved.messageIdMatches).toBe(true);
    expect(resolved.seal?.result).toBe('verified');
  } finally {
    keyd.close();
  }
});
