/**
 * The root's revocation of a peer's organisation CA counts wherever a peer's
 * certificates are used (src/pki/known-crls.ts): the directory verifies
 * bundles and seals with the local CRLs ([pki] crls, read when they change)
 * beside the bundle's own, and remembers the newest CRL seen per CA, so a
 * peer that keeps publishing an older root CRL (still current until its
 * nextUpdate) is refused at bundle verification and at seal lookup.
 */
import { Directory, DirectoryError } from '../../src/directory/directory';
import { certificateRef } from '../../src/chain/certificate-lookup';
import { createCrl } from '../../src/pki/crl';
import { generateP256KeyPair } from '../../src/pki/keys';
import { BundleServer, DAY, type Org, bundleOf, makeOrg, wholeSecondNow } from './fixtures';

jest.setTimeout(60000);

let a: Org;
let b: Org;
let serverA: BundleServer;
let serverB: BundleServer;
let now = wholeSecondNow();

beforeAll(async () => {
  a = makeOrg('a.example');
  b = makeOrg('b.example', a.fx.root);
  serverA = await new BundleServer(a.tls).start();
  serverB = await new BundleServer(b.tls).start();
});
afterAll(async () => {
  await serverA.stop();
  await serverB.stop();
});

/** A root CRL numbered `n`, revoking b's organisation CA when `revokeB`. */
function rootCrl(n: number, revokeB: boolean): string {
  return createCrl(a.fx.root, {
    entries: revokeB ? [{ serial: b.fx.orgCa.certificate.serial, revokedAt: new Date(now - 500), reason: 'cACompromise' }] : [],
    thisUpdate: new Date(now - 500),
    nextUpdate: new Date(now + 7 * DAY),
    crlNumber: n,
  }).pem;
}

function directory(crls: () => readonly string[]): Directory {
  return new Directory({
    roots: [a.fx.root.certificate.pem],
    crls,
    staticPeers: { 'a.example': serverA.url('a.example'), 'b.example': serverB.url('b.example') },
    hosts: { 'ssmax.a.example': '127.0.0.1', 'ssmax.b.example': '127.0.0.1' },
    resolver: null,
    clock: () => now,
    random: () => 0.5,
    fetchTimeoutMs: 3000,
    retryMs: 0,
  });
}

async function refusal(p: Promise<unknown>): Promise<DirectoryError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DirectoryError);
    return err as DirectoryError;
  }
  throw new Error('expected a refusal');
}

beforeEach(() => {
  now = wholeSecondNow();
  // each bundle carries its org CA's CRL and root CRL number 2, which revokes nothing
  serverA.body = bundleOf(a, 1, now);
  serverB.body = bundleOf(b, 1, now);
});

test('a bundle carrying an older root CRL is refused when the local root CRL revokes its org CA; a new local file counts without a restart', async () => {
  let local = [rootCrl(1, false)];
  const d = directory(() => local);
  try {
    const entry = await d.lookup('b.example');
    const sealRef = certificateRef(b.seal.der);
    expect(entry.sealingCertificate(sealRef, new Date(now))).toBeDefined();
    // the root revokes b's org CA (CRL 3); b keeps publishing root CRL 2
    local = [rootCrl(3, true)];
    // the seal of the entry already handed out: refused from the next check on
    expect(entry.sealingCertificate(sealRef, new Date(now))).toBeUndefined();
    // the cached bundle is verified again, then fetched again: refused
    const err = await refusal(d.lookup('b.example'));
    expect(err.code).toBe('invalid');
    expect(err.detail).toMatch(/revoked .*\(cACompromise\)/);
    // another organisation under the same root is not affected
    expect((await d.lookup('a.example')).domain).toBe('a.example');
    // a directory started with the new file refuses it at the first verification
    const fresh = directory(() => [rootCrl(3, true)]);
    try {
      expect((await refusal(fresh.lookup('b.example'))).detail).toMatch(/refused \(untrusted\).*revoked .*\(cACompromise\)/);
    } finally {
      await fresh.close();
    }
  } finally {
    await d.close();
  }
});

test('the newest CRL seen is remembered: an older one, in a bundle or in the local file, does not undo a revocation', async () => {
  let local = [rootCrl(3, true)];
  const d = directory(() => local);
  try {
    expect((await refusal(d.lookup('b.example'))).code).toBe('invalid');
    // the local file replaced by an older CRL (a restore, a copy from an old host): b stays refused
    local = [rootCrl(2, false)];
    expect((await refusal(d.lookup('b.example'))).detail).toMatch(/revoked/);
    local = [];
    expect((await refusal(d.lookup('b.example'))).detail).toMatch(/revoked/);
  } finally {
    await d.close();
  }
  // learnt from a peer's bundle: a carries root CRL 3 (revoking b's CA), no local CRL at all
  const withNewer = bundleOf({ ...a, crls: [a.crls[0]!, rootCrl(3, true)] }, 1, now);
  serverA.body = withNewer;
  const d2 = directory(() => []);
  try {
    expect((await d2.lookup('a.example')).domain).toBe('a.example');
    expect((await refusal(d2.lookup('b.example'))).detail).toMatch(/revoked .*\(cACompromise\)/);
  } finally {
    await d2.close();
  }
  // a forged root CRL with a higher number (not signed by the root) displaces nothing
  const forged = createCrl(
    { certificate: a.fx.root.certificate, privateKey: generateP256KeyPair().privateKey },
    { entries: [], thisUpdate: new Date(now - 500), nextUpdate: new Date(now + DAY), crlNumber: 99 },
  ).pem;
  const d3 = directory(() => [rootCrl(3, true), forged]);
  try {
    expect((await refusal(d3.lookup('b.example'))).detail).toMatch(/revoked/);
  } finally {
    await d3.close();
  }
});

test('a local CRL that cannot be read: lookups are unavailable (temporary), nothing is trusted without it', async () => {
  let broken = false;
  const d = directory(() => {
    if (broken) throw new Error('Cannot read "root.crl.pem": no such file');
    return [rootCrl(1, false)];
  });
  try {
    const entry = await d.lookup('b.example');
    broken = true;
    const err = await refusal(d.lookup('b.example'));
    expect([err.code, err.detail]).toEqual(['unavailable', expect.stringMatching(/Cannot check revocation: Cannot read "root.crl.pem"/)]);
    expect(() => entry.sealingCertificate(certificateRef(b.seal.der), new Date(now))).toThrow(/root\.crl\.pem/);
    broken = false;
    expect((await d.lookup('b.example')).domain).toBe('b.example');
  } finally {
    await d.close();
  }
});

test("a known peer whose bundle fails for a passing state (its org CA on hold, the CRLs past their nextUpdate) is unavailable for now, not refused: mail to it and a list's post wait", async () => {
  let local = [rootCrl(1, false)];
  const d = directory(() => local);
  try {
    expect((await d.lookup('b.example')).domain).toBe('b.example');
    // the root puts b's organisation CA on hold
    local = [
      createCrl(a.fx.root, {
        entries: [{ serial: b.fx.orgCa.certificate.serial, revokedAt: new Date(now - 500), reason: 'certificateHold' }],
        thisUpdate: new Date(now - 500),
        nextUpdate: new Date(now + 7 * DAY),
        crlNumber: 6,
      }).pem,
    ];
    const held = await refusal(d.lookup('b.example'));
    expect([held.code, held.final, held.detail]).toEqual(['unavailable', undefined, expect.stringMatching(/for now: it is on hold/)]);
    // revoked for good is still a refusal, final
    local = [rootCrl(7, true)];
    const revoked = await refusal(d.lookup('b.example'));
    expect([revoked.code, revoked.final]).toEqual(['invalid', expect.stringMatching(/revoked \(cACompromise/)]);
  } finally {
    await d.close();
  }
  // a month on, nobody re-signed the CRLs (the root's here, and those b's bundle carries): revocation state unknown
  const fresh = directory(() => [rootCrl(1, false)]);
  try {
    expect((await fresh.lookup('b.example')).domain).toBe('b.example');
    now += 31 * DAY;
    serverB.body = bundleOf(b, 2, now);
    const lapsed = await refusal(fresh.lookup('b.example'));
    expect([lapsed.code, lapsed.final]).toEqual(['unavailable', undefined]);
    expect(lapsed.detail).toMatch(/for now: its revocation state cannot be known now/);
  } finally {
    await fresh.close();
  }
});
