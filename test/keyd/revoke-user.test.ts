/**
 * POST /v1/registry/users/{address}/revoke (docs/keyd-api.md): keyd, a real
 * process over mutual TLS with the org CA it holds, revokes a registered
 * user: suspended and marked revoked, the serials of its certificates in a
 * re-issued CRL of the org CA (next number, verifying against the org CA with
 * openssl and with our own validation), one `registry.revoke` audit record.
 * Refused for every role but admin (the console's own role included, and an
 * administrator through the console works), and refused — naming the
 * setting — by a keyd that holds no CA: the console's users page shows that
 * message, and `ssmax registry revoke`'s code then signs with the local CA,
 * as before.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type KeydClient, KeydClientError } from '../../src/keyd/client';
import { ConsoleKeyd } from '../../src/console/backends';
import { type Key, t } from '../../src/console/i18n';
import { PAGES, type PageContext } from '../../src/console/pages';
import { parseCertificate } from '../../src/pki/certificate';
import { parseCrl } from '../../src/pki/crl';
import { revokeUser } from '../../src/registry/registration';
import { issueUserCertificate } from '../../src/pki/issue';
import { generateP256KeyPair } from '../../src/pki/keys';
import { validateCertificate } from '../../src/pki/validate';
import { type KeydProcess, clientFor, startKeydProcess } from '../support/keyd-process';
import { type OrgFixture, makeOrgFixture } from '../support/org-fixture';

jest.setTimeout(60000);

const DAY = 86400000;

async function refusal(p: Promise<unknown>): Promise<KeydClientError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KeydClientError);
    return err as KeydClientError;
  }
  throw new Error('expected keyd to refuse');
}

function userCert(fx: OrgFixture, email: string, code: string): string {
  const now = Date.now();
  return issueUserCertificate(fx.orgCa, {
    email,
    pseudonym: code,
    code,
    purpose: 'signing',
    publicKey: generateP256KeyPair().publicKey,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 30 * DAY),
  }).pem;
}

interface AuditRow {
  op: string;
  target?: string;
  result: string;
  actor: string;
  reason?: string;
}

async function auditOf(admin: KeydClient, op: string): Promise<AuditRow[]> {
  const { records } = await admin.call<{ records: AuditRow[] }>('GET', '/v1/audit/records/0');
  return records.filter((r) => r.op === op);
}

describe('keyd holding the org CA', () => {
  let fx: OrgFixture;
  let keyd: KeydProcess;
  let admin: KeydClient;
  const certs: Record<string, string> = {};

  beforeAll(async () => {
    fx = makeOrgFixture();
    keyd = await startKeydProcess(fx.configFile);
    admin = clientFor(fx, keyd.port, fx.clients.admin);
    for (const [who, code] of [
      ['eve', 'U-3001'],
      ['fay', 'U-3002'],
    ] as const) {
      certs[who] = userCert(fx, `${who}@a.example`, code);
      await admin.call('POST', '/v1/registry/users', {
        address: `${who}@a.example`,
        code,
        identityRef: `EMP-${code}`,
        signingCertificate: certs[who],
        certificateSerial: parseCertificate(certs[who]).serial,
      });
    }
  });
  afterAll(async () => {
    admin?.close();
    await keyd?.stop();
  });

  test('refused for the gateway, inspector, disclosure and console roles; nothing changes', async () => {
    const before = readFileSync(join(fx.dir, 'org-ca.crl.pem'), 'utf8');
    for (const role of ['gateway', 'inspector', 'disclosure', 'console'] as const) {
      const c = clientFor(fx, keyd.port, fx.clients[role]);
      try {
        const err = await refusal(c.call('POST', '/v1/registry/users/eve%40a.example/revoke', {}));
        expect([err.status, err.code]).toEqual([403, 'forbidden']);
        expect(err.message).toBe(`Role "${role}" may not call registry.revoke`);
      } finally {
        c.close();
      }
    }
    expect(readFileSync(join(fx.dir, 'org-ca.crl.pem'), 'utf8')).toBe(before);
    expect(await admin.call('GET', '/v1/registry/users/eve%40a.example')).toMatchObject({ status: 'active' });
    expect((await auditOf(admin, 'registry.revoke')).map((r) => r.result)).toEqual(['refused', 'refused', 'refused', 'refused']);
  });

  test('an administrator (through the console) revokes: suspended, the serial in the next CRL, which verifies against the org CA; one audit record', async () => {
    const file = join(fx.dir, 'org-ca.crl.pem');
    const before = parseCrl(readFileSync(file, 'utf8'));
    const serial = parseCertificate(certs.eve!).serial;
    expect(before.entries.has(serial)).toBe(false);
    // the console's certificate, naming the administrator's (src/keyd/on-behalf.ts)
    const viaConsole = new ConsoleKeyd({
      url: `https://127.0.0.1:${keyd.port}`,
      servername: 'keyd.a.example',
      cert: fx.clients.console.cert,
      key: fx.clients.console.key,
      ca: fx.caPem,
      timeoutMs: 5000,
    });
    let r: { user: { status: string; revoked?: number }; serials: string[]; added: string[]; crl: string; crlNumber: string };
    try {
      r = await viaConsole.call(
        Buffer.from(parseCertificate(fx.clients.admin.cert).der),
        'POST',
        '/v1/registry/users/eve%40a.example/revoke',
        { reason: 'affiliationChanged' },
      );
    } finally {
      viaConsole.close();
    }
    expect(r.user).toMatchObject({ status: 'suspended', revoked: expect.any(Number) });
    expect(r.added).toEqual([serial]);
    expect(r.crl).toBe(file);
    const after = parseCrl(readFileSync(file, 'utf8'));
    expect(after.crlNumber).toBe((before.crlNumber ?? 0n) + 1n);
    expect(r.crlNumber).toBe(String(after.crlNumber));
    expect(after.entries.get(serial)?.reason).toBe('affiliationChanged');
    for (const s of before.entries.keys()) expect(after.entries.has(s)).toBe(true); // earlier entries kept
    // signed by the org CA: openssl checks the signature, and our validation now calls the certificate revoked
    const openssl = spawnSync('openssl', ['crl', '-in', file, '-CAfile', join(fx.dir, 'org-ca.pem'), '-noout'], { encoding: 'utf8' });
    expect([openssl.status, `${openssl.stdout}${openssl.stderr}`.trim()]).toEqual([0, 'verify OK']);
    const v = validateCertificate({
      leaf: certs.eve!,
      intermediates: [fx.orgCa.certificate.pem],
      roots: [fx.root.certificate.pem],
      crls: [readFileSync(file, 'utf8'), readFileSync(join(fx.dir, 'root.crl.pem'), 'utf8')],
      use: 'user-signing',
      time: new Date(),
    });
    expect(v.status).toBe('revoked');
    // one record, as the administrator via the console, naming the CRL number
    const ok = (await auditOf(admin, 'registry.revoke')).filter((x) => x.result === 'ok');
    expect(ok).toHaveLength(1);
    expect(ok[0]).toMatchObject({
      target: 'eve@a.example',
      actor: expect.stringMatching(/admin-operator #[0-9a-f]+ via .*console\.a\.example/),
    });
    expect(ok[0]!.reason).toMatch(
      new RegExp(`: number ${after.crlNumber} with ${after.entries.size} revocation\\(s\\).*added ${serial} \\(affiliationChanged\\)`),
    );
    expect((await admin.call<{ ok: boolean }>('GET', '/v1/audit/verify')).ok).toBe(true);
    // final: no reinstatement, no second revocation
    const again = await refusal(admin.call('POST', '/v1/registry/users/eve%40a.example/status', { status: 'active' }));
    expect(again.message).toMatch(/Cannot reinstate "eve@a\.example": it was revoked at .*revocation is final/);
    expect((await refusal(admin.call('POST', '/v1/registry/users/eve%40a.example/revoke', {}))).message).toMatch(/already revoked/);
    // a gateway now gets the user as suspended
    const gw = clientFor(fx, keyd.port, fx.clients.gateway);
    try {
      expect(await gw.call('GET', '/v1/directory/users/eve%40a.example')).toMatchObject({ status: 'suspended' });
    } finally {
      gw.close();
    }
  });

  test('a bad reason or an unknown user is refused before anything is signed', async () => {
    const file = join(fx.dir, 'org-ca.crl.pem');
    const before = readFileSync(file, 'utf8');
    expect((await refusal(admin.call('POST', '/v1/registry/users/fay%40a.example/revoke', { reason: 'removeFromCRL' }))).code).toBe(
      'bad-request',
    );
    expect((await refusal(admin.call('POST', '/v1/registry/users/nobody%40a.example/revoke', {}))).code).toBe('not-found');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });
});

test('a keyd without the org CA refuses, naming the setting', async () => {
  const fx = makeOrgFixture();
  const ini = readFileSync(fx.configFile, 'utf8')
    .replace(/^org_ca_cert=.*$/m, '')
    .replace(/^org_ca_key=.*$/m, '');
  expect(ini).not.toMatch(/org_ca_key/);
  writeFileSync(fx.configFile, ini);
  const keyd = await startKeydProcess(fx.configFile);
  const admin = clientFor(fx, keyd.port, fx.clients.admin);
  try {
    const cert = userCert(fx, 'gil@a.example', 'U-3003');
    await admin.call('POST', '/v1/registry/users', {
      address: 'gil@a.example',
      code: 'U-3003',
      identityRef: 'EMP-3003',
      signingCertificate: cert,
    });
    const before = readFileSync(join(fx.dir, 'org-ca.crl.pem'), 'utf8');
    const err = await refusal(admin.call('POST', '/v1/registry/users/gil%40a.example/revoke', {}));
    expect([err.status, err.code]).toEqual([409, 'not-configured']);
    expect(err.message).toMatch(/keyd does not hold the org CA \(\[pki\] org_ca_cert and org_ca_key in ssmax-keyd\.ini\)/);
    expect(readFileSync(join(fx.dir, 'org-ca.crl.pem'), 'utf8')).toBe(before);
    expect(await admin.call('GET', '/v1/registry/users/gil%40a.example')).toMatchObject({ status: 'active' });
    expect((await auditOf(admin, 'registry.revoke')).map((r) => r.result)).toEqual(['refused']);
    // the console's users page shows keyd's message (src/console/pages.ts, as the administrator via the console)
    const viaConsole = new ConsoleKeyd({
      url: `https://127.0.0.1:${keyd.port}`,
      servername: 'keyd.a.example',
      cert: fx.clients.console.cert,
      key: fx.clients.console.key,
      ca: fx.caPem,
      timeoutMs: 5000,
    });
    try {
      const ctx = {
        lang: 'en',
        identity: { role: 'admin', name: 'admin' },
        csrf: 'token',
        config: { domain: 'a.example' },
        url: new URL('https://console.a.example/users/revoke'),
        path: '/users/revoke',
        keyd: viaConsole.for(Buffer.from(parseCertificate(fx.clients.admin.cert).der)),
        clock: () => new Date(),
        t: (k: Key, v?: Record<string, string | number>) => t('en', k, v),
        log: () => undefined,
      } as unknown as PageContext;
      const form = (confirm: boolean) =>
        new Map([['address', 'gil@a.example'], ['reason', 'keyCompromise'], ...(confirm ? [['confirm', '1'] as [string, string]] : [])]);
      expect(String(await PAGES.users.post!(ctx, 'revoke', form(false)))).toContain(
        '<p class="notice bad" role="alert">Tick the confirmation to revoke.</p>',
      );
      expect(await auditOf(admin, 'registry.revoke')).toHaveLength(1); // unconfirmed: keyd was not asked
      expect(String(await PAGES.users.post!(ctx, 'revoke', form(true)))).toMatch(
        /<p class="notice bad" role="alert">Could not complete: keyd does not hold the org CA \(\[pki\] org_ca_cert and org_ca_key in ssmax-keyd\.ini\)/,
      );
      expect((await auditOf(admin, 'registry.revoke'))[0]).toMatchObject({ result: 'refused', actor: expect.stringMatching(/ via /) });
    } finally {
      viaConsole.close();
    }
    // `ssmax registry revoke` (src/registry/registration.ts) then signs with the CA of its own host, as before
    const crlFile = join(fx.dir, 'org-ca.crl.pem');
    const r = await revokeUser({
      keyd: admin,
      address: 'gil@a.example',
      reason: 'keyCompromise',
      now: new Date(),
      local: () => ({ ca: fx.orgCa, crlFile, days: 7, now: new Date() }),
    });
    expect(r).toMatchObject({ signer: 'local', crlFile, revoked: [parseCertificate(cert).serial], user: { status: 'suspended' } });
    expect(parseCrl(readFileSync(crlFile, 'utf8')).entries.get(parseCertificate(cert).serial)?.reason).toBe('keyCompromise');
  } finally {
    admin.close();
    await keyd.stop();
  }
});
