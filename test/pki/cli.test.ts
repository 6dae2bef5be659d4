import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { caCommand, runCa } from '../../src/cli/ca';
import { main } from '../../src/cli/main';
import { parseCertificate, roleOf } from '../../src/pki/certificate';
import { parseCrl } from '../../src/pki/crl';
import { privateKeyFromPem } from '../../src/pki/keys';
import { opensslText, requireOpenssl } from './fixtures';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) },
    out,
    err,
    text: () => out.join('\n'),
    errText: () => err.join('\n'),
  };
}

let dir: string;
const p = (...parts: string[]) => join(dir, ...parts);
const ca = async (...argv: string[]) => {
  const c = capture();
  const code = await main(['ca', ...argv], c.io);
  return { code, out: c.text(), err: c.errText() };
};

beforeAll(async () => {
  requireOpenssl();
  dir = mkdtempSync(join(tmpdir(), 'ssmax-ca-cli-'));
  writeFileSync(p('pp'), 'org secret\n');
  expect((await ca('init-root', '--unencrypted-key', '--dir', p('root'))).code).toBe(0);
  expect(
    (
      await ca(
        'init-org',
        '--root',
        p('root'),
        '--dir',
        p('orga'),
        '--domain',
        'a.example',
        '--org',
        'A Corp',
        '--passphrase-file',
        p('pp'),
      )
    ).code,
  ).toBe(0);
  expect((await ca('crl', '--ca', p('root'))).code).toBe(0);
  expect((await ca('crl', '--ca', p('orga'), '--ca-passphrase-file', p('pp'))).code).toBe(0);
});

const orgArgs = () => ['--ca', p('orga'), '--ca-passphrase-file', p('pp')];
const verifyArgs = (cert: string, ...more: string[]) => [
  'verify',
  '--root',
  p('root', 'ca.cert.pem'),
  '--chain',
  p('orga', 'ca.cert.pem'),
  '--crl',
  p('root', 'crl.pem'),
  '--crl',
  p('orga', 'crl.pem'),
  '--cert',
  cert,
  ...more,
];

describe('ssmax ca', () => {
  test('init-org refuses a second CA for a domain the root already certified, unless asked explicitly; after revocation it is allowed', async () => {
    const again = await ca(
      'init-org',
      '--unencrypted-key',
      '--root',
      p('root'),
      '--dir',
      p('orga2'),
      '--domain',
      'b.example',
      '--domain',
      'A.example',
      '--org',
      'Rogue',
    );
    expect(again.code).toBe(64);
    expect(again.err).toMatch(
      /the root already certified ".*A Corp.*" \(serial [0-9a-f]+\) for a\.example, valid until .*--second-ca-for-domain/,
    );
    expect(existsSync(p('orga2', 'ca.cert.pem'))).toBe(false);
    const explicit = await ca(
      'init-org',
      '--unencrypted-key',
      '--root',
      p('root'),
      '--dir',
      p('orga3'),
      '--domain',
      'a.example',
      '--org',
      'A Corp 2',
      '--second-ca-for-domain',
    );
    expect(explicit.code).toBe(0);
    expect(explicit.err).toMatch(/warning: a\.example now has a second organisation CA/);
    expect(
      (await ca('init-org', '--unencrypted-key', '--root', p('root'), '--dir', p('orgc'), '--domain', 'c.example', '--org', 'C')).code,
    ).toBe(0); // another domain: fine
    // after the root revoked c.example's CA, a new CA for c.example is certified without the flag
    expect(
      (await ca('init-org', '--unencrypted-key', '--root', p('root'), '--dir', p('orgc2'), '--domain', 'c.example', '--org', 'C 2')).code,
    ).toBe(64);
    expect((await ca('revoke', '--ca', p('root'), '--cert', p('orgc', 'ca.cert.pem'), '--reason', 'superseded')).code).toBe(0);
    const replaced = await ca(
      'init-org',
      '--unencrypted-key',
      '--root',
      p('root'),
      '--dir',
      p('orgc2'),
      '--domain',
      'c.example',
      '--org',
      'C 2',
    );
    expect(replaced.code).toBe(0);
    expect(replaced.err).not.toMatch(/warning/);
  });

  test('--help on the group and on every subcommand', async () => {
    const group = await ca('--help');
    expect(group.code).toBe(0);
    for (const sub of ['init-root', 'init-org', 'issue', 'revoke', 'crl', 'bundle', 'verify']) {
      expect(group.out).toContain(sub);
      const r = await ca(sub, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: ssmax ca ${sub}`));
    }
  });

  test('usage errors exit 64 and name the problem', async () => {
    expect(await ca('nope')).toMatchObject({ code: 64 });
    expect((await ca('issue', 'wizard', ...orgArgs(), '--out', p('w'))).err).toMatch(/Cannot issue "wizard": the kind must be one of/);
    expect((await ca('init-root', '--unencrypted-key', '--bogus')).code).toBe(64);
    expect((await ca('init-root')).err).toMatch(/Missing --dir/);
    await expect(caCommand.run(['init-root'], capture().io)).rejects.toThrow('Missing --dir');
    // a --days past 100 years (X.509 times end at 9999): 64 naming the limit, and no folder made
    for (const days of ['36526', '3000000']) {
      const r = await ca('init-root', '--unencrypted-key', '--dir', p(`far-${days}`), '--days', days);
      expect(r).toMatchObject({
        code: 64,
        err: expect.stringContaining(`Cannot use --days "${days}": at most 36525 (100 years)`) as string,
      });
      expect(existsSync(p(`far-${days}`))).toBe(false);
    }
  });

  test('a CA key is never written unencrypted by default: without --passphrase-file or --unencrypted-key nothing is made', async () => {
    for (const [argv, what] of [
      [['init-root', '--dir', p('plain-root')], 'root CA'],
      [['init-org', '--root', p('root'), '--dir', p('plain-org'), '--domain', 'q.example', '--org', 'Q'], 'organisation CA'],
    ] as const) {
      const rootState = readFileSync(p('root', 'ca.json'), 'utf8');
      const r = await ca(...argv);
      expect(r.code).toBe(64);
      expect(r.err).toContain(`Refusing to write the ${what} private key unencrypted: give --passphrase-file F`);
      expect(r.err).toContain('--unencrypted-key');
      expect(existsSync(argv[argv.indexOf('--dir') + 1]!)).toBe(false);
      expect(readFileSync(p('root', 'ca.json'), 'utf8')).toBe(rootState); // the root recorded no CA
      const both = await ca(...argv, '--unencrypted-key', '--passphrase-file', p('pp'));
      expect(both.code).toBe(64);
      expect(both.err).toMatch(/Cannot use --passphrase-file with --unencrypted-key/);
    }
    // with a passphrase the root key is encrypted too, and used with it
    expect((await ca('init-root', '--dir', p('enc-root'), '--passphrase-file', p('pp'))).code).toBe(0);
    expect(readFileSync(p('enc-root', 'ca.key.pem'), 'utf8')).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    expect((await ca('crl', '--ca', p('enc-root'))).err).toMatch(/it is encrypted and no passphrase was given/);
    expect((await ca('crl', '--ca', p('enc-root'), '--ca-passphrase-file', p('pp'))).code).toBe(0);
  });

  test('the CA keys are 0600 and the org key is passphrase-encrypted PKCS#8', () => {
    for (const f of [p('root', 'ca.key.pem'), p('orga', 'ca.key.pem')]) expect(statSync(f).mode & 0o777).toBe(0o600);
    const orgKey = readFileSync(p('orga', 'ca.key.pem'), 'utf8');
    expect(orgKey).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/);
    expect(() => privateKeyFromPem(orgKey, 'org secret')).not.toThrow();
    const org = parseCertificate(readFileSync(p('orga', 'ca.cert.pem'), 'utf8'));
    expect(org.nameConstraints?.permitted.map((n) => n.value)).toEqual(['a.example', 'a.example', '.a.example']);
  });

  test('issues every kind; each verifies for its use, with ours and with openssl', async () => {
    const kinds: [string, string[], string][] = [
      ['user', ['--email', 'alice@a.example', '--pseudonym', 'u-7f3a', '--code', 'E-10442', '--purpose', 'signing'], 'user-signing'],
      ['user', ['--email', 'alice@a.example', '--pseudonym', 'u-7f3a', '--code', 'E-10442', '--purpose', 'encryption'], 'user-encryption'],
      ['gateway', ['--host', 'mx.a.example'], 'tls-server'],
      ['keyd', ['--host', 'keyd.a.example'], 'tls-server'],
      ['inspector', ['--host', 'av.a.example'], 'tls-client'],
      ['admin', ['--name', 'op-1'], 'tls-client'],
      ['disclosure', ['--name', 'dpo-1'], 'tls-client'],
      ['seal', ['--domain', 'a.example', '--host', 'mx.a.example'], 'seal'],
      ['encryption', ['--domain', 'a.example', '--version', '1'], 'org-encryption'],
      ['bundle-signer', ['--domain', 'a.example'], 'bundle-signing'],
    ];
    for (const [i, [kind, args, use]] of kinds.entries()) {
      const out = p(`${kind}-${i}`);
      const r = await ca('issue', kind, ...orgArgs(), '--out', out, ...args);
      expect(r).toMatchObject({ code: 0 });
      expect(statSync(`${out}.key.pem`).mode & 0o777).toBe(0o600);
      const v = await ca(...verifyArgs(`${out}.cert.pem`, '--use', use));
      expect(v.out).toMatch(/^valid: /);
      const o = spawnSync(
        'openssl',
        [
          'verify',
          '-crl_check_all',
          '-CAfile',
          p('root', 'ca.cert.pem'),
          '-untrusted',
          p('orga', 'ca.cert.pem'),
          '-CRLfile',
          p('root', 'crl.pem'),
          '-CRLfile',
          p('orga', 'crl.pem'),
          `${out}.cert.pem`,
        ],
        { encoding: 'utf8' },
      );
      expect(o.stdout).toMatch(/: OK/);
      expect(opensslText(readFileSync(`${out}.cert.pem`, 'utf8'))).toMatch(/ecdsa-with-SHA256/);
    }
    expect(roleOf(readFileSync(p('keyd-3.cert.pem'), 'utf8'))).toBe('keyd');
    expect(parseCertificate(readFileSync(p('seal-7.cert.pem'), 'utf8')).dnsNames).toEqual(['a.example', 'mx.a.example']);
    expect(parseCertificate(readFileSync(p('encryption-8.cert.pem'), 'utf8')).keyVersion).toBe(1);
    // A user certificate presented as a sealing certificate.
    const wrong = await ca(...verifyArgs(p('user-0.cert.pem'), '--use', 'seal'));
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/^wrong-usage: /);
  });

  test("refuses a mail address outside the name constraints, with the library's message, and writes nothing", async () => {
    const r = await ca(
      'issue',
      'user',
      ...orgArgs(),
      '--out',
      p('evil'),
      '--email',
      'x@evil.example',
      '--pseudonym',
      'u-x',
      '--code',
      'E-1',
      '--purpose',
      'signing',
    );
    expect(r.code).toBe(65);
    expect(r.err).toBe('ssmax ca: Cannot issue certificate for "x@evil.example": outside the name constraints of a.example');
    expect(existsSync(p('evil.key.pem'))).toBe(false);
  });

  test("certifies a given raw compressed secp256k1 point (the crypto core's form)", async () => {
    const point = '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'; // G
    const r = await ca(
      'issue',
      'encryption',
      ...orgArgs(),
      '--out',
      p('encG'),
      '--domain',
      'a.example',
      '--version',
      '2',
      '--public-key',
      point,
    );
    expect(r.code).toBe(0);
    expect(existsSync(p('encG.key.pem'))).toBe(false);
    const text = opensslText(readFileSync(p('encG.cert.pem'), 'utf8'));
    expect(text).toMatch(/04:79:be:66:7e:f9:dc:bb:ac:55:a0:62:95:ce:87:/);
    expect(text).toMatch(/ASN1 OID: secp256k1/);
  });

  test('refuses to overwrite without --force', async () => {
    const r = await ca('issue', 'gateway', ...orgArgs(), '--out', p('gateway-2'), '--host', 'mx.a.example');
    expect(r.code).toBe(73); // EX_CANTCREAT (docs/cli.md)
    expect(r.err).toMatch(/the file exists/);
  });

  test('revoke + crl: the certificate is then revoked for ours and for openssl', async () => {
    const cert = p('seal-7.cert.pem');
    expect((await ca('revoke', '--ca', p('orga'), '--cert', cert, '--reason', 'keyCompromise')).code).toBe(0);
    expect((await ca('revoke', '--ca', p('orga'), '--cert', cert)).err).toMatch(/already revoked/);
    expect((await ca('revoke', '--ca', p('orga'), '--serial', '01', '--reason', 'bored')).err).toMatch(/Cannot use reason "bored"/);
    expect((await ca('crl', '--ca', p('orga'), '--ca-passphrase-file', p('pp'))).out).toMatch(/CRL number 2 .* 1 revocation/);
    const crl = parseCrl(readFileSync(p('orga', 'crl.pem'), 'utf8'));
    expect(crl.crlNumber).toBe(2n);
    const v = await ca(...verifyArgs(cert, '--use', 'seal'));
    expect(v.code).toBe(1);
    expect(v.err).toMatch(/^revoked: .*keyCompromise/);
    const o = spawnSync(
      'openssl',
      [
        'verify',
        '-crl_check_all',
        '-CAfile',
        p('root', 'ca.cert.pem'),
        '-untrusted',
        p('orga', 'ca.cert.pem'),
        '-CRLfile',
        p('root', 'crl.pem'),
        '-CRLfile',
        p('orga', 'crl.pem'),
        cert,
      ],
      { encoding: 'utf8' },
    );
    expect(`${o.stdout}${o.stderr}`).toMatch(/certificate revoked/);
  });

  test('bundle + verify --bundle; another domain is rejected', async () => {
    const out = p('bundle.json');
    const r = await ca(
      'bundle',
      '--ca',
      p('orga'),
      '--signer',
      p('bundle-signer-9'),
      '--domain',
      'a.example',
      '--key',
      `${p('encryption-8.cert.pem')}:current`,
      '--seal',
      p('seal-7.cert.pem'),
      '--crl',
      p('orga', 'crl.pem'),
      '--crl',
      p('root', 'crl.pem'),
      '--abuse',
      'mailto:abuse@a.example',
      '--serial',
      '3',
      '--out',
      out,
    );
    // seal-7 was revoked above: the builder checks the bundle as `ca verify` would and writes nothing.
    expect(r.code).toBe(65);
    expect(r.err).toMatch(/Cannot write the bundle: it would not verify: invalid-content: .*revoked/);
    expect(existsSync(out)).toBe(false);
    // Without the root's CRL, peers cannot check the org CA: refused too, naming what is missing.
    const noCrl = await ca(
      'bundle',
      '--ca',
      p('orga'),
      '--signer',
      p('bundle-signer-9'),
      '--domain',
      'a.example',
      '--key',
      p('encryption-8.cert.pem'),
      '--abuse',
      'mailto:abuse@a.example',
      '--serial',
      '4',
      '--out',
      out,
    );
    expect(noCrl.code).toBe(65);
    expect(noCrl.err).toMatch(/would not verify: .*give --crl for every CA of the chain/);
    expect(noCrl.err).not.toMatch(/\n\s+at /);
    expect(existsSync(out)).toBe(false);
    // Without the revoked sealing certificate, and the key state defaulting to current.
    const r3 = await ca(
      'bundle',
      '--ca',
      p('orga'),
      '--signer',
      p('bundle-signer-9'),
      '--domain',
      'a.example',
      '--key',
      p('encryption-8.cert.pem'),
      '--abuse',
      'mailto:abuse@a.example',
      '--serial',
      '5',
      '--out',
      p('bundle3.json'),
      '--crl',
      p('orga', 'crl.pem'),
      '--crl',
      p('root', 'crl.pem'),
    );
    expect(r3.code).toBe(0);
    const ok = await ca('verify', '--root', p('root', 'ca.cert.pem'), '--bundle', p('bundle3.json'), '--domain', 'a.example');
    expect(ok.out).toMatch(/^valid: Bundle .* \(serial 5\) for "a.example" is valid; current key version 1/);
    const other = await ca('verify', '--root', p('root', 'ca.cert.pem'), '--bundle', p('bundle3.json'), '--domain', 'b.example');
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/^wrong-domain: /);
    const replay = await ca(
      'verify',
      '--root',
      p('root', 'ca.cert.pem'),
      '--bundle',
      p('bundle3.json'),
      '--domain',
      'a.example',
      '--min-serial',
      '6',
    );
    expect(replay.err).toMatch(/^replayed: /);
  });

  test('verify --at: the future is expired', async () => {
    const r = await ca(...verifyArgs(p('gateway-2.cert.pem'), '--at', '2099-01-01T00:00:00Z'));
    expect(r.err).toMatch(/^(expired|revocation-unknown): /);
    expect(r.code).toBe(1);
  });

  test('runCa takes the time as a parameter', async () => {
    const c = capture();
    const d = mkdtempSync(join(tmpdir(), 'ssmax-ca-time-'));
    expect(await runCa(['init-root', '--unencrypted-key', '--dir', d, '--days', '10'], c.io, new Date('2030-02-03T04:05:06Z'))).toBe(0);
    const root = parseCertificate(readFileSync(join(d, 'ca.cert.pem'), 'utf8'));
    expect(root.notAfter.toISOString()).toBe('2030-02-13T04:05:06.000Z');
  });
});

describe('the built binary', () => {
  const bin = resolve(__dirname, '../../bin/ssmax');
  test('node bin/ssmax ca init-root / verify works end to end (needs `npm run build`)', () => {
    if (!existsSync(resolve(__dirname, '../../dist/cli/ca.js'))) throw new Error('dist/ is missing: run `npm run build` before this test');
    const d = mkdtempSync(join(tmpdir(), 'ssmax-ca-bin-'));
    const run = (...args: string[]) => spawnSync(process.execPath, [bin, 'ca', ...args], { encoding: 'utf8' });
    expect(run('--help').stdout).toMatch(/init-root/);
    expect(run('init-root', '--unencrypted-key', '--dir', join(d, 'root')).status).toBe(0);
    expect(
      run('init-org', '--unencrypted-key', '--root', join(d, 'root'), '--dir', join(d, 'org'), '--domain', 'a.example', '--org', 'A')
        .status,
    ).toBe(0);
    expect(run('crl', '--ca', join(d, 'root')).status).toBe(0);
    expect(run('crl', '--ca', join(d, 'org')).status).toBe(0);
    const v = run(
      'verify',
      '--root',
      join(d, 'root', 'ca.cert.pem'),
      '--cert',
      join(d, 'org', 'ca.cert.pem'),
      '--crl',
      join(d, 'root', 'crl.pem'),
    );
    expect(v.stdout).toMatch(/^valid: /);
    expect(v.status).toBe(0);
    const bad = run(
      'issue',
      'user',
      '--ca',
      join(d, 'org'),
      '--out',
      join(d, 'x'),
      '--email',
      'x@evil.example',
      '--pseudonym',
      'u-x',
      '--code',
      'E-1',
      '--purpose',
      'signing',
    );
    expect(bad.status).toBe(65);
    expect(bad.stderr.trim()).toBe('ssmax ca: Cannot issue certificate for "x@evil.example": outside the name constraints of a.example');
  });
});
