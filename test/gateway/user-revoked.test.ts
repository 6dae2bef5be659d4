/**
 * A submission signed by a user of this organisation (verifySubmitter,
 * src/gateway/submission.ts), checked against the user's certificate with
 * the CRL files as the gateway keeps them (CrlFiles: a file read again only
 * when it changed): an unchanged CRL file is not read again for each
 * message; once the org CA's CRL file is replaced by one that revokes the
 * user's certificate, the next check refuses the submission with its own
 * reply, 550 5.7.5 naming the revocation, not as an unknown certificate; a CRL
 * file that cannot be read is 451 4.7.0 "Revocation list unreadable", not
 * keyd's "Key service unavailable". A submission happens now: the certificate
 * is judged at the gateway's clock, not at the signer's t= (a backdated t=
 * does not make an expired or revoked certificate pass; an expired one is
 * named as such, 550 5.7.5), and a t= older than [chain] max_seal_age_seconds
 * is 550 5.7.21. keyd's facts are a stub here
 * (this is the gateway module's decision; keyd's revocation itself:
 * keyd/revoke-user.test.ts).
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certificateRef } from '../../src/chain/certificate-lookup';
import { signUser } from '../../src/chain/user-signature';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import type { GatewayDeps } from '../../src/gateway/deps';
import { verifySubmitter } from '../../src/gateway/submission';
import type { UserFacts } from '../../src/keyd/client-ops';
import { GatewayError } from '../../src/mail/replies';
import { issueUserCertificate } from '../../src/pki/issue';
import { ValidationCache } from '../../src/pki/validate';
import { CrlFiles } from '../../src/pki/crl-files';
import { NOW, crlFor, makeWorld, validity } from '../pki/fixtures';

const world = makeWorld();
const MAX_AGE_S = 518_400; // [chain] max_seal_age_seconds, its default
const DAY = 86_400_000;
const key = generateP256KeyPair();
const cert = issueUserCertificate(world.orgA, {
  email: 'alice@a.example',
  pseudonym: 'u-41ce',
  code: 'E-20001',
  purpose: 'signing',
  publicKey: key.publicKey,
  ...validity,
});

let dir: string;
let crls: CrlFiles;
let facts: UserFacts;
let deps: GatewayDeps;
let orgCrl: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-user-revoked-'));
  orgCrl = join(dir, 'org-ca.crl.pem');
  const rootCrl = join(dir, 'root.crl.pem');
  writeFileSync(orgCrl, crlFor(world.orgA).pem);
  writeFileSync(rootCrl, crlFor(world.root).pem);
  crls = new CrlFiles([orgCrl, rootCrl], (f) => readFileSync(f, 'utf8'));
  facts = {
    address: 'alice@a.example',
    status: 'active',
    kind: 'individual',
    inspectionConsent: false,
    encryptionKeyId: null,
    signingCertificate: cert.pem,
  };
  deps = {
    config: { cpuBudgetMs: 5000, chain: { maxSealAgeMs: MAX_AGE_S * 1000, resealers: [] } },
    keyd: { user: () => Promise.resolve(facts) },
    roots: [world.root.certificate.pem],
    intermediates: [world.orgA.certificate.pem],
    crls: () => crls.current(),
    validationCache: new ValidationCache(),
    clock: () => NOW,
  } as unknown as GatewayDeps;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function signed(privateKey = key.privateKey, at = NOW, signer = cert): Promise<Buffer> {
  const message = Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: hello\r\nDate: Mon, 01 Jun 2026 12:00:00 +0000\r\nMessage-ID: <r-1@a.example>\r\n\r\nHello\r\n',
  );
  return (await signUser(message, { signer: 'alice@a.example', certRef: certificateRef(signer.der), privateKey, now: () => at.getTime() }))
    .message;
}

/** The reply a submission gets, or 'accepted'. */
async function reply(message: Buffer): Promise<string> {
  try {
    await verifySubmitter(deps, message);
    return 'accepted';
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return `${err.reply.code} ${err.reply.status} ${err.reply.text}`;
  }
}

function revoke(): void {
  const crl = crlFor(world.orgA, [{ serial: cert.serial, revokedAt: new Date(NOW.getTime() - 3600_000), reason: 'keyCompromise' }], 2);
  writeFileSync(`${orgCrl}.new`, crl.pem);
  renameSync(`${orgCrl}.new`, orgCrl); // as keyd puts a new CRL in place
}

test('an unchanged CRL file is not read again for each message; replaced, the next check refuses: 550 5.7.5 naming the revocation', async () => {
  const message = await signed();
  for (let i = 0; i < 50; i++) expect(await reply(message)).toBe('accepted');
  expect(crls.reads).toBe(2); // the org CA's and the root's, once each
  revoke();
  expect(await reply(message)).toBe(
    "550 5.7.5 User signature refused: the sender's signing certificate is revoked: revoked at 2026-06-01T11:00:00.000Z (keyCompromise)",
  );
  expect(crls.reads).toBe(3); // the replaced file only
});

test('revoked through keyd (the user suspended there too): the same reply, the revocation named, not the suspension', async () => {
  const message = await signed();
  revoke();
  facts = { ...facts, status: 'suspended' };
  expect(await reply(message)).toMatch(
    /^550 5\.7\.5 User signature refused: the sender's signing certificate is revoked: revoked at .* \(keyCompromise\)$/,
  );
});

test('a CRL file that cannot be read fails the check for now with its own reply (451 4.7.0), never accepts', async () => {
  const message = await signed();
  expect(await reply(message)).toBe('accepted');
  rmSync(orgCrl);
  const r = await reply(message);
  expect(r).toMatch(/^451 4\.7\.0 Revocation list unreadable: .*org-ca\.crl\.pem/);
  expect(r).not.toMatch(/Key service|certificate lookup/);
  // back in place: accepted again
  writeFileSync(orgCrl, crlFor(world.orgA).pem);
  expect(await reply(message)).toBe('accepted');
});

test("a passing state of the sender's certificate is 451, retried, never a 5xx: the org CA's CRL past its nextUpdate, the certificate on hold, or one that does not chain here", async () => {
  const message = await signed();
  // the org CA's CRL lapsed (nobody re-signed it in time): its revocation state cannot be known now
  writeFileSync(orgCrl, crlFor(world.orgA, [], 2, new Date(NOW.getTime() - 2 * DAY), new Date(NOW.getTime() - DAY)).pem);
  expect(await reply(message)).toBe(
    "451 4.7.5 User signature cannot be checked now: the sender's signing certificate: its revocation state cannot be known now",
  );
  // on hold: it may be released
  const hold = [{ serial: cert.serial, revokedAt: new Date(NOW.getTime() - 3600_000), reason: 'certificateHold' as const }];
  writeFileSync(orgCrl, crlFor(world.orgA, hold, 3).pem);
  expect(await reply(message)).toMatch(/^451 4\.7\.5 User signature cannot be checked now: .*: it is on hold$/);
  // the org CA missing from this gateway's configuration: ours to mend
  writeFileSync(orgCrl, crlFor(world.orgA, [], 4).pem);
  expect(await reply(message)).toBe('accepted');
  deps = { ...deps, intermediates: [] } as unknown as GatewayDeps;
  expect(await reply(message)).toMatch(/^451 4\.7\.5 User signature cannot be checked now: .*does not chain to this organisation's CA/);
});

test("keyd failing during the certificate lookup keeps keyd's reply (451 4.7.5 Key service unavailable), not the CRL's", async () => {
  deps = { ...deps, keyd: { user: () => Promise.reject(new Error('keyd down')) } } as unknown as GatewayDeps;
  expect(await reply(await signed())).toMatch(/^451 4\.7\.5 Key service unavailable: certificate lookup failed: keyd down/);
});

test('not revoked: a suspended user, a user without a certificate and a forged signature keep their replies', async () => {
  facts = { ...facts, status: 'suspended' };
  expect(await reply(await signed())).toMatch(/^550 5\.7\.20 User signature does not verify: unknown-certificate: No certificate for c=/);
  facts = { ...facts, status: 'active', signingCertificate: null };
  expect(await reply(await signed())).toMatch(/^550 5\.7\.20 User signature does not verify: unknown-certificate/);
  facts = { ...facts, signingCertificate: cert.pem };
  expect(await reply(await signed(generateP256KeyPair().privateKey))).toMatch(
    /^550 5\.7\.20 User signature does not verify: signature-invalid/,
  );
});

describe('the certificate is judged at the gateway clock, not at the t= the signer claims', () => {
  // alice's signing certificate expired two days ago
  const expiredCert = issueUserCertificate(world.orgA, {
    email: 'alice@a.example',
    pseudonym: 'u-41ce',
    code: 'E-20001',
    purpose: 'signing',
    publicKey: key.publicKey,
    notBefore: validity.notBefore,
    notAfter: new Date(NOW.getTime() - 2 * DAY),
  });
  const expiredReply = `550 5.7.5 User signature refused: the sender's signing certificate has expired: expired at ${new Date(NOW.getTime() - 2 * DAY).toISOString()}`;

  test('an expired certificate, signed now: 550 5.7.5 naming the expiry, not "No certificate for c="', async () => {
    facts = { ...facts, signingCertificate: expiredCert.pem };
    expect(await reply(await signed(key.privateKey, NOW, expiredCert))).toBe(expiredReply);
  });

  test('an expired certificate with t= backdated to before its expiry: the same refusal', async () => {
    facts = { ...facts, signingCertificate: expiredCert.pem };
    expect(await reply(await signed(key.privateKey, new Date(NOW.getTime() - 3 * DAY), expiredCert))).toBe(expiredReply);
  });

  test('revoked for a reason other than key compromise (unspecified), t= backdated to before the revocation: refused as revoked', async () => {
    // the CRL signed when the certificate was revoked, a day ago (a CRL older than t= would count whatever the reason)
    const at = new Date(NOW.getTime() - DAY);
    const crl = crlFor(world.orgA, [{ serial: cert.serial, revokedAt: at, reason: 'unspecified' }], 2, at);
    writeFileSync(`${orgCrl}.new`, crl.pem);
    renameSync(`${orgCrl}.new`, orgCrl);
    expect(await reply(await signed(key.privateKey, new Date(NOW.getTime() - 2 * DAY)))).toBe(
      `550 5.7.5 User signature refused: the sender's signing certificate is revoked: revoked at ${new Date(NOW.getTime() - DAY).toISOString()} (unspecified)`,
    );
  });

  test('t= older than [chain] max_seal_age_seconds: 550 5.7.21, whatever the certificate; just within it: accepted', async () => {
    const old = new Date(NOW.getTime() - (MAX_AGE_S + 1) * 1000);
    expect(await reply(await signed(key.privateKey, old))).toMatch(/^550 5\.7\.21 User signature older than this gateway accepts: /);
    facts = { ...facts, signingCertificate: expiredCert.pem };
    expect(await reply(await signed(key.privateKey, new Date('2026-04-30T00:00:00Z'), expiredCert))).toMatch(/^550 5\.7\.21 /);
    facts = { ...facts, signingCertificate: cert.pem };
    expect(await reply(await signed(key.privateKey, new Date(NOW.getTime() - MAX_AGE_S * 1000)))).toBe('accepted');
  });
});
