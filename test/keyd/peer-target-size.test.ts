/**
 * A re-encryption to a peer carries the peer's key certificate, its chain and the CRLs of its bundle, which may
 * hold up to 1 MiB (MAX_BUNDLE_BYTES). keyd's default request body was 64 KiB: a peer whose organisation CA had
 * revoked a few thousand certificates made every request for it 413 (split down to one operation, still 413), which
 * the gateway answers 451 — every message to that organisation deferred until its sender gave up. Real keyd
 * process over mutual TLS.
 */
import { encapsulate, blindForReencryption, groups, newMessageKey, systemRng } from '../../src/crypto';
import { KEYD_DEFAULTS } from '../../src/keyd/config';
import { MAX_BUNDLE_BYTES } from '../../src/pki/bundle';
import { createCrl } from '../../src/pki/crl';
import { DAY, makeOrg, wholeSecondNow } from '../directory/fixtures';
import { clientFor, startKeydProcess } from '../support/keyd-process';

jest.setTimeout(60000);

const g = groups.libsecp256k1;
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');

test("a peer target with its bundle's CRLs of several hundred kilobytes fits keyd's default request body", async () => {
  expect(KEYD_DEFAULTS.max_body_bytes).toBeGreaterThan(MAX_BUNDLE_BYTES); // a whole bundle's material and the request around it
  const a = makeOrg('a.example');
  const b = makeOrg('b.example', a.fx.root);
  const now = wholeSecondNow();
  // b's org CA revoked 12,000 user certificates: one CRL of about half a megabyte in PEM
  const revoked = Array.from({ length: 12000 }, (_, i) => ({
    serial: (0x100000 + i).toString(16), // 3 bytes, the high bit clear: a minimal DER integer
    revokedAt: new Date(now - DAY),
    reason: 'keyCompromise' as const,
  }));
  const bigCrl = createCrl(b.fx.orgCa, {
    entries: revoked,
    thisUpdate: new Date(now - 1000),
    nextUpdate: new Date(now + 7 * DAY),
    crlNumber: 9,
  }).pem;
  const target = {
    kind: 'peer',
    domain: 'b.example',
    certificate: b.encV1.pem,
    chain: [b.fx.orgCa.certificate.pem],
    crls: [...b.crls, bigCrl],
  };
  const body = (request: { e: Uint8Array; f: Uint8Array }, keyId: string) => ({ keyId, e: b64(request.e), f: b64(request.f), target });
  expect(Buffer.byteLength(JSON.stringify(body({ e: new Uint8Array(33), f: new Uint8Array(33) }, 'a.example:v1')))).toBeGreaterThan(
    400_000,
  );

  const keyd = await startKeydProcess(a.fx.configFile);
  const gateway = clientFor(a.fx, keyd.port, a.fx.clients.gateway, 20000);
  try {
    const pub = await gateway.call<{ current: string; keys: { keyId: string; publicKey: string }[] }>('GET', '/v1/public');
    const orgPub = new Uint8Array(Buffer.from(pub.keys.find((k) => k.keyId === pub.current)!.publicKey, 'hex'));
    const capsule = encapsulate(g, newMessageKey(g, systemRng), { keyId: pub.current, publicKey: orgPub }, systemRng);
    const { request } = blindForReencryption(g, capsule, systemRng);
    const answer = await gateway.call<{ targetKeyId: string }>('POST', '/v1/reencrypt', body(request, capsule.keyId));
    expect(answer.targetKeyId).toBe('b.example:v1');
  } finally {
    gateway.close();
    await keyd.stop();
  }
});
