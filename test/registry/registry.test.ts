/**
 * `ssmax registry` against a real organisation (keyd, publisher): add an
 * SSMAX client user (certificates from the org CA, profile, keyd) and a plain
 * one; suspension and reinstatement at keyd; revocation (suspended, both
 * certificates in a new CRL, re-published in the bundle by the publisher).
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadUserProfile } from '../../src/user/profile';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import type { CliIo } from '../../src/cli/command';
import { type Network, type OrgNode, startNetwork } from '../../src/demo/network';
import { parseCertificate } from '../../src/pki/certificate';
import { parseCrl } from '../../src/pki/crl';
import { privateKeyToPem } from '../../src/pki/keys';
import { smtp } from '../gateway/network-fixture';

jest.setTimeout(120000);

let net: Network;
let A: OrgNode;
let base: string;
let config: string;

function capture(): CliIo & { text: () => string; errors: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return { out: (t) => out.push(t), err: (t) => err.push(t), text: () => out.join('\n'), errors: () => err.join('\n') };
}

function fetchBundle(): Promise<string> {
  const u = new URL(A.bundleUrl);
  return new Promise((res, rej) => {
    const req = request(
      { host: '127.0.0.1', port: u.port, path: u.pathname, servername: u.hostname, ca: A.fx.caPem, method: 'GET' },
      (r) => {
        const parts: Buffer[] = [];
        r.on('data', (c: Buffer) => parts.push(c));
        r.on('end', () => (r.statusCode === 200 ? res(Buffer.concat(parts).toString('utf8')) : rej(new Error(`HTTP ${r.statusCode}`))));
      },
    );
    req.on('error', rej);
    req.end();
  });
}

function bundleRevokes(bundle: string, serial: string): boolean {
  const payload = (JSON.parse(bundle) as { payload: { crls: string[] } }).payload;
  return payload.crls.some((pem) => parseCrl(pem).entries.has(serial));
}

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = capture();
  const code = await main(['registry', ...argv], io);
  return { code, out: io.text(), err: io.errors() };
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'ssmax-registry-'));
  net = await startNetwork(join(base, 'net'), [
    { domain: 'a.example', users: [{ address: 'alice@a.example', client: 'plain', password: 'pw' }] },
  ]);
  A = net.org('a.example');
  writeFileSync(join(base, 'bundle.json'), await fetchBundle());
  const d = A.fx.dir;
  // the operator's own copy of the org CA key (the CA folder's, in the clear here); keyd's copy is encrypted under its master key
  const caKey = join(base, 'org-ca.key');
  writeFileSync(caKey, privateKeyToPem(A.fx.orgCa.privateKey), { mode: 0o600 });
  config = join(base, 'ssmax-abuse.ini');
  writeFileSync(
    config,
    [
      '[abuse]',
      'domain=a.example',
      '[keyd]',
      `url=https://127.0.0.1:${A.ports.keyd}`,
      'servername=keyd.a.example',
      `ca=${join(d, 'org-ca.pem')},${join(d, 'root.pem')}`,
      `cert=${join(d, 'admin.pem')}`,
      `key=${join(d, 'admin.key')}`,
      '[registry]',
      `ca_cert=${join(d, 'org-ca.pem')}`,
      `ca_key=${caKey}`,
      `crl=${join(d, 'org-ca.crl.pem')}`,
      'crl_days=7',
      `root=${join(d, 'root.pem')}`,
      'bundle=bundle.json',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  await net?.stop();
});

describe('ssmax registry', () => {
  test('--help everywhere', async () => {
    for (const sub of ['add', 'show', 'suspend', 'reinstate', 'revoke']) {
      const r = await run(sub, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: ssmax registry ${sub}`));
    }
    expect((await run('--help')).out).toMatch(/revoke ADDRESS/);
    // --kind's default and what it means, beside --plain and --profile (which say which client, not who)
    expect((await run('add', '--help')).out).toMatch(/--kind KIND .*\n\s+organisation \(default\): a member of the organisation/);
    expect((await run('nonsense')).code).toBe(64);
  });

  test('add an SSMAX client user: certificates from the org CA, a profile, the registration at keyd', async () => {
    const profile = join(base, 'eve');
    const add = ['add', '--config', config, '--profile', profile, '--code', 'U-2001', '--identity-ref', 'EMP-2001', 'eve@a.example'];
    // the profile's keys: encrypted with a passphrase or plain on purpose, said before anything is made
    const neither = await run(...add);
    expect(neither.code).toBe(64);
    expect(neither.err).toMatch(/Refusing to write the profile's private key unencrypted: give --key-passphrase-file F/);
    expect(existsSync(profile)).toBe(false);
    expect(
      (await run('add', '--config', config, '--plain', '--unencrypted-key', '--code', 'U-2009', '--identity-ref', 'E', 'x@a.example')).code,
    ).toBe(64);
    const passphrase = join(base, 'eve-passphrase');
    writeFileSync(passphrase, 'eve passphrase\n', { mode: 0o600 });
    const r = await run(...add, '--key-passphrase-file', passphrase);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Registered eve@a\.example as U-2001 with certificates/);
    expect(r.out).not.toContain('EMP-2001');
    for (const f of ['profile.json', 'signing.cert.pem', 'signing.key.pem', 'encryption.cert.pem', 'encryption.key.pem'])
      expect(existsSync(join(profile, f))).toBe(true);
    expect(readFileSync(join(profile, 'encryption.key.pem'), 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    expect(loadUserProfile(profile, { keyPassphrase: 'eve passphrase' }).address).toBe('eve@a.example');
    const admin = A.admin();
    try {
      const u = await admin.call<{
        status: string;
        code: string;
        certificateSerial: string;
        signingCertificate: string;
        encryptionCertificate: string;
      }>('GET', '/v1/registry/users/eve%40a.example');
      expect(u).toMatchObject({ status: 'active', code: 'U-2001' });
      const signing = parseCertificate(u.signingCertificate);
      expect(signing.serial).toBe(u.certificateSerial);
      expect(readFileSync(join(profile, 'signing.cert.pem'), 'utf8')).toBe(u.signingCertificate);
      expect(Buffer.from(signing.issuerDer)).toEqual(Buffer.from(A.fx.orgCa.certificate.subjectDer));
      expect(JSON.stringify(u)).not.toContain('EMP-2001');
    } finally {
      admin.close();
    }
  });

  test("add a plain user; a second registration of an address or a code is refused with keyd's reason", async () => {
    writeFileSync(join(base, 'zed-identity'), 'EMP-2002\n', { mode: 0o600 });
    const r = await run(
      'add',
      '--config',
      config,
      '--plain',
      '--code',
      'U-2002',
      '--identity-ref-file',
      join(base, 'zed-identity'),
      'zed@a.example',
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^Registered zed@a\.example as U-2002 \(plain client: no certificates, the gateway encrypts and decrypts for it\)/,
    );
    // a plain client user is a member of the organisation unless --kind says otherwise, and the output says what the kind means
    expect(r.out).toContain('kind: organisation (a member of the organisation: inspected)');
    const person = await run(
      'add',
      '--config',
      config,
      '--plain',
      '--kind',
      'individual',
      '--code',
      'U-2005',
      '--identity-ref',
      'C-5',
      'pat@a.example',
    );
    expect(person.code).toBe(0);
    expect(person.out).toContain('kind: individual (a private person, ISP mode: inspected only with consent)');
    expect((await run('show', '--config', config, 'pat@a.example')).out).toContain('kind: individual (');
    const again = await run('add', '--config', config, '--plain', '--code', 'U-2003', '--identity-ref', 'EMP-2003', 'zed@a.example');
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/Cannot register "zed@a\.example": already registered/);
    const taken = await run('add', '--config', config, '--plain', '--code', 'U-2002', '--identity-ref', 'EMP-2004', 'yan@a.example');
    expect(taken.err).toMatch(/code "U-2002" is taken/);
    expect((await run('add', '--config', config, '--code', 'U-9', '--identity-ref', 'x', 'q@a.example')).code).toBe(64);
    // Disclosure of zed's identity needs the disclosure role; an operator never sees it.
    expect((await run('show', '--config', config, '--json', 'zed@a.example')).out).not.toContain('EMP-2002');
  });

  test('show, suspend, reinstate', async () => {
    const show = await run('show', '--config', config, 'eve@a.example');
    expect(show.out).toMatch(/^address: eve@a\.example\ncode: U-2001\nstatus: active/);
    expect(show.out).not.toContain('EMP-');
    expect((await run('suspend', '--config', config, 'eve@a.example')).out).toBe('eve@a.example is suspended');
    expect((await run('show', '--config', config, 'eve@a.example')).out).toMatch(/status: suspended/);
    expect((await run('reinstate', '--config', config, 'eve@a.example')).out).toBe('eve@a.example is active');
    const missing = await run('suspend', '--config', config, 'nobody@a.example');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/No registered user "nobody@a\.example"/);
  });

  test('a suspended sender gets no tracking token, so the gateway does not send for it; reinstated, it does', async () => {
    const mail = (n: number) =>
      `From: alice@a.example\r\nTo: alice@a.example\r\nSubject: s${n}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s${n}@a.example>\r\n\r\nhello\r\n`;
    expect((await run('suspend', '--config', config, 'alice@a.example')).code).toBe(0);
    const refused = await smtp(A.ports.smtp, 'alice@a.example', ['alice@a.example'], mail(1), { user: 'alice@a.example', pass: 'pw' });
    expect(refused).toMatch(/^[45]\d\d /);
    expect((await run('reinstate', '--config', config, 'alice@a.example')).code).toBe(0);
    expect(await smtp(A.ports.smtp, 'alice@a.example', ['alice@a.example'], mail(2), { user: 'alice@a.example', pass: 'pw' })).toMatch(
      /^250 /,
    );
  });

  test('revoke: suspended at keyd, both certificates in a new CRL (earlier entries kept), re-published in the bundle', async () => {
    const admin = A.admin();
    const u = await admin.call<{ signingCertificate: string; encryptionCertificate: string }>('GET', '/v1/registry/users/eve%40a.example');
    admin.close();
    const signingSerial = parseCertificate(u.signingCertificate).serial;
    const encryptionSerial = parseCertificate(u.encryptionCertificate).serial;
    const crlFile = join(A.fx.dir, 'org-ca.crl.pem');
    const before = parseCrl(readFileSync(crlFile, 'utf8'));
    expect(await fetchBundle().then((b) => bundleRevokes(b, signingSerial))).toBe(false);

    const r = await run('revoke', '--config', config, '--reason', 'affiliationChanged', 'eve@a.example');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^eve@a\.example is suspended; revoked certificate serial\(s\) .*; CRL number \d+ written to .*org-ca\.crl\.pem by keyd$/,
    ); // keyd holds the org CA here: it signs
    const after = parseCrl(readFileSync(crlFile, 'utf8'));
    expect(after.crlNumber).toBe((before.crlNumber ?? 0n) + 1n);
    expect(after.entries.get(signingSerial)?.reason).toBe('affiliationChanged');
    expect(after.entries.has(encryptionSerial)).toBe(true);
    for (const s of before.entries.keys()) expect(after.entries.has(s)).toBe(true);
    expect((await run('show', '--config', config, 'eve@a.example')).out).toMatch(/status: suspended/);
    // final: no reinstatement; keyd's one audit record of it
    const reinstate = await run('reinstate', '--config', config, 'eve@a.example');
    expect(reinstate.code).toBe(1);
    expect(reinstate.err).toMatch(/Cannot reinstate "eve@a\.example": it was revoked at /);
    const keyd = A.admin();
    try {
      const { records } = await keyd.call<{ records: { op: string; target?: string; result: string; reason?: string }[] }>(
        'GET',
        '/v1/audit/records/0',
      );
      expect(records.filter((x) => x.op === 'registry.revoke')).toEqual([
        expect.objectContaining({ target: 'eve@a.example', result: 'ok', reason: expect.stringContaining(`: number ${after.crlNumber} `) }),
      ]);
    } finally {
      keyd.close();
    }

    // The publisher polls the CRL file every second and re-publishes.
    const deadline = Date.now() + 20000;
    let latest = await fetchBundle();
    while (!bundleRevokes(latest, signingSerial)) {
      if (Date.now() > deadline) throw new Error(`the bundle was not re-published with the new CRL\n${A.publisher.output().slice(-1000)}`);
      await new Promise((res) => setTimeout(res, 300));
      latest = await fetchBundle();
    }
    expect(bundleRevokes(latest, encryptionSerial)).toBe(true);
  });
});
