/**
 * Refused bundles at the gateway (the directory's refusals are tested in
 * test/directory): a bundle signed by a key the org CA did not certify, a
 * bundle for another domain — each a 451 4.7.5 naming the domain (the reason
 * goes to the directory's log, never into a reply), never a fall-back to
 * plaintext (even under `opportunistic`); an older bundle
 * replayed when the gateway refreshes before sending (a newer version was
 * advertised) — refused with its reason, the newer cached bundle stays in use.
 */
import { Directory } from '../../src/directory/directory';
import type { GatewayConfig } from '../../src/gateway/config';
import type { GatewayDeps } from '../../src/gateway/deps';
import { KeyWatch } from '../../src/gateway/key-exchange';
import { GatewayError } from '../../src/mail/replies';
import { peerFor } from '../../src/gateway/submission';
import { createCrl } from '../../src/pki/crl';
import { BundleServer, HOUR, type Org, bundleOf, makeOrg, rogueSigner, wholeSecondNow } from '../directory/fixtures';

jest.setTimeout(60000);

let a: Org;
let b: Org;
let server: BundleServer;
const now = wholeSecondNow();
const dirs: Directory[] = [];

beforeAll(async () => {
  a = makeOrg('a.example');
  b = makeOrg('b.example', a.fx.root);
  server = await new BundleServer(b.tls).start();
});
afterAll(async () => {
  for (const d of dirs) await d.close();
  await server.stop();
});

function deps(log: string[] = [], crls: string[] = []): GatewayDeps {
  const directory = new Directory({
    roots: [a.fx.root.certificate.pem],
    crls,
    staticPeers: { 'b.example': server.url('b.example') },
    resolver: null,
    hosts: { 'ssmax.b.example': '127.0.0.1' },
    retryMs: 0,
    log: (l) => log.push(l),
  });
  dirs.push(directory);
  const config = {
    domain: 'a.example',
    localDomains: ['a.example'],
    policy: { default: 'opportunistic', domains: {} },
  } as unknown as GatewayConfig;
  return { config, directory } as unknown as GatewayDeps;
}

async function refusal(p: Promise<unknown>): Promise<GatewayError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error('not refused');
}

test('a bundle signed by a key the org CA did not certify: 451 4.7.5 naming the domain, the reason logged, no plaintext fall-back', async () => {
  server.body = bundleOf(b, 1, now, HOUR, { signer: rogueSigner('b.example') });
  const log: string[] = [];
  const e = await refusal(peerFor(deps(log), 'b.example'));
  expect(e.reply).toEqual({ code: 451, status: '4.7.5', text: 'SSMAX bundle of the peer domain unavailable: b.example' });
  expect(log.join('\n')).toMatch(/refused \(signer-not-certified\)/);
});

test('a bundle for another domain: 451 4.7.5 naming the domain, the reason logged', async () => {
  server.body = bundleOf(a, 1, now);
  const log: string[] = [];
  const e = await refusal(peerFor(deps(log), 'b.example'));
  expect(e.reply).toEqual({ code: 451, status: '4.7.5', text: 'SSMAX bundle of the peer domain unavailable: b.example' });
  expect(log.join('\n')).toMatch(/refused \(wrong-domain\)/);
});

test('an older bundle replayed at a refresh-before-send: refused (replayed), the newer cached bundle stays in use', async () => {
  const log: string[] = [];
  const d = deps(log);
  server.body = bundleOf(b, 5, now);
  const cached = await peerFor(d, 'b.example');
  if (cached === 'plain') throw new Error('expected a bundle');
  expect(cached.serial).toBe(5);
  server.body = bundleOf(b, 4, now);
  const kw = new KeyWatch({
    probe: false,
    probeIntervalMs: 30000,
    probeTimeoutMs: 1000,
    refreshMinIntervalMs: 5000,
    helo: 'mx.a.example',
    nextHop: async () => undefined,
    refresh: (x) => (d.directory as Directory).refresh(x),
    log: (l) => log.push(l),
  });
  kw.note('b.example', ['b.example:v2'], 'test');
  const used = await kw.fresh('b.example', cached);
  expect(used.serial).toBe(5);
  expect(log.join('\n')).toMatch(
    /bundle refresh failed \(the cached bundle, current key b\.example:v1, stays in use\): .*replayed.*serial 4, older than 5/,
  );
  const again = await peerFor(d, 'b.example');
  expect(again !== 'plain' && again.serial).toBe(5);
});

/** The root's CRL (number 5, above the bundle's own root CRL) listing b.example's org CA for `reason`. */
const rootRevokesB = (reason: 'cACompromise' | 'certificateHold') =>
  createCrl(a.fx.root, {
    entries: [{ serial: b.fx.orgCa.certificate.serial, revokedAt: new Date(now - 60000), reason }],
    thisUpdate: new Date(now - 60000),
    nextUpdate: new Date(now + 7 * 24 * HOUR),
    crlNumber: 5,
  }).pem;

test('a bundle whose org CA the root revoked: refused for good, 550 5.7.5 naming the domain and the revocation (not a 451 retried for days)', async () => {
  server.body = bundleOf(b, 1, now);
  const e = await refusal(peerFor(deps([], [rootRevokesB('cACompromise')]), 'b.example'));
  expect(e.reply.code).toBe(550);
  expect(e.reply.status).toBe('5.7.5');
  expect(e.reply.text).toMatch(
    /^SSMAX keys of the recipient's domain refused for good: b\.example: its organisation's CA is revoked \(cACompromise, at \d{4}-/,
  );
});

test('a bundle whose org CA is only on hold (certificateHold): 451 4.7.5, the hold may be lifted', async () => {
  server.body = bundleOf(b, 1, now);
  const e = await refusal(peerFor(deps([], [rootRevokesB('certificateHold')]), 'b.example'));
  expect(e.reply).toEqual({ code: 451, status: '4.7.5', text: 'SSMAX bundle of the peer domain unavailable: b.example' });
});
