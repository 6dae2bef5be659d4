/**
 * `ssmax user …`: --help everywhere; init → sign-encrypt → (two simulated
 * gateway hops) → open, through userCommand.run; failures through main().
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { caCommand } from '../../src/cli/ca';
import { main } from '../../src/cli/main';
import { userCommand } from '../../src/cli/user';
import { groups } from '../../src/crypto/backend';
import { generateEncryptionKeyPair } from '../../src/crypto/keys';
import { systemRng } from '../../src/crypto/random';
import { privateKeyToPem } from '../../src/pki/keys';
import type { SigningAuthority } from '../../src/pki/issue';
import { loadUserProfile, loadUserProfileSettings, updateOrgBundle } from '../../src/user/profile';
import { NOW, type World, makeWorld, receivingHop, sendingHop } from './world';

const SECRET = 'the launch date is 3 June';
const AT = ['--at', NOW.toISOString()];

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

let world: World;

/** An `ssmax ca`-style directory for an org CA built in process. */
function caDir(ca: SigningAuthority, name: string): string {
  const dir = join(world.dir, name);
  const { mkdirSync } = jest.requireActual<typeof import('node:fs')>('node:fs');
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(join(dir, 'ca.cert.pem'), ca.certificate.pem);
  writeFileSync(join(dir, 'ca.key.pem'), privateKeyToPem(ca.privateKey), { mode: 0o600 });
  writeFileSync(join(dir, 'ca.json'), JSON.stringify({ kind: 'org', crlNumber: 1, revoked: [], issued: [] }));
  return dir;
}

function file(name: string, content: string | Buffer): string {
  const path = join(world.dir, name);
  writeFileSync(path, content);
  return path;
}

beforeAll(() => {
  world = makeWorld();
});
afterAll(() => world.cleanup());

test('--help on the group and on every subcommand exits 0', async () => {
  const c = capture();
  expect(await userCommand.run(['--help'], c.io)).toBe(0);
  for (const sub of ['init', 'sign-encrypt', 'send', 'open', 'update-bundle']) {
    expect(c.out.join('\n')).toContain(sub);
    const s = capture();
    expect(await userCommand.run([sub, '--help'], s.io)).toBe(0);
    expect(s.out.join('\n')).toMatch(new RegExp(`^Usage: ssmax user ${sub} `));
  }
  expect(await userCommand.run([], capture().io)).toBe(64);
});

test('usage errors: unknown subcommand, unknown option, missing option (64)', async () => {
  for (const argv of [
    ['user', 'nope'],
    ['user', 'open', '--nope'],
    ['user', 'open'],
    ['user', 'send', '--profile', world.dir],
  ]) {
    const c = capture();
    expect(await main(argv, c.io)).toBe(64);
    expect(c.err.join('\n')).toMatch(/unknown subcommand "nope"|Unknown option '--nope'|--profile is required|--to is required/);
  }
});

test('init → sign-encrypt → hops → open, round trip', async () => {
  const root = file('root.pem', world.root.certificate.pem);
  const profiles: Record<string, string> = {};
  for (const [name, org] of [
    ['alice', world.a],
    ['bob', world.b],
  ] as const) {
    const ca = caDir(org.ca, `ca-${org.domain}`);
    const bundle = file(`bundle-${org.domain}.json`, org.bundle);
    const out = join(world.dir, `profile-${name}`);
    const c = capture();
    expect(
      await userCommand.run(
        [
          'init',
          '--unencrypted-key',
          '--ca',
          ca,
          '--root',
          root,
          '--bundle',
          bundle,
          '--email',
          `${name}@${org.domain}`,
          '--pseudonym',
          `u-${name}`,
          '--code',
          `E-${name}9`,
          '--out',
          out,
          ...AT,
          '--smtp-host',
          'mx.example',
          '--smtp-user',
          name,
          '--smtp-password-env',
          'SSMAX_PW',
        ],
        c.io,
      ),
    ).toBe(0);
    const registration = JSON.parse(c.out.join('\n')) as Record<string, string>;
    expect(Object.keys(registration).sort()).toEqual([
      'address',
      'certificateSerial',
      'code',
      'encryptionCertificate',
      'encryptionKeyId',
      'encryptionPublicKey',
      'signingCertificate',
    ]);
    expect(registration.address).toBe(`${name}@${org.domain}`);
    const state = JSON.parse(readFileSync(join(ca, 'ca.json'), 'utf8')) as { issued: { serial: string }[] };
    expect(state.issued.map((i) => i.serial)).toContain(registration.certificateSerial);
    expect(loadUserProfile(out).smtp).toEqual({ host: 'mx.example', port: 587, user: name, security: 'starttls', passwordEnv: 'SSMAX_PW' });
    profiles[name] = out;
  }

  const original = Buffer.from(
    `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: plan\r\nMessage-ID: <c1@a.example>\r\n\r\n${SECRET}\r\n`,
  );
  const input = file('original.eml', original);
  const signedPath = join(world.dir, 'signed.eml');
  expect(await userCommand.run(['sign-encrypt', '--profile', profiles.alice!, '--in', input, '-o', signedPath, ...AT], capture().io)).toBe(
    0,
  );
  const signed = readFileSync(signedPath);
  expect(signed.toString('latin1')).toMatch(/^SSMAX-User-Signature: /);
  expect(signed.toString('latin1')).not.toContain(SECRET);

  const alice = { profile: loadUserProfile(profiles.alice!), registration: undefined as never };
  const bob = loadUserProfile(profiles.bob!);
  const hop1 = await sendingHop(signed, world.a, alice, world.b);
  const delivered = await receivingHop(hop1, world.b, world.a, {
    to: { keyId: bob.encryption.keyId, publicKey: bob.encryption.publicKey },
  });
  const deliveredPath = file('delivered.eml', delivered);

  const c = capture();
  expect(await userCommand.run(['open', '--profile', profiles.bob!, '--in', deliveredPath, ...AT], c.io)).toBe(0);
  const lines = c.out.join('\n').split('\n');
  expect(lines[0]).toMatch(
    /^seal i=1 {2}a\.example {2}pass {2}dlp:pass,av:none {2}cv=none {2}checked by b\.example, not here: its seal i=2 says cv=pass/,
  );
  expect(lines[1]).toMatch(/^seal i=2 {2}b\.example {2}pass {2}av:pass {2}cv=pass {2}signature verified here$/);
  expect(lines[2]).toMatch(
    /^alignment: From domain a\.example, seal i=1 by a\.example: aligned; recipient: you \(bob@b\.example\) are named/,
  );
  expect(lines[3]).toMatch(/^message: encrypted \(profile message\), decrypted with your key /);
  expect(c.out[c.out.length - 1]).toBe(original.toString('utf8'));

  // -o over an existing 0644 file that another reader holds open: the message goes to a new 0600 file,
  // the old descriptor never reads it
  const outPath = join(world.dir, 'opened.eml');
  writeFileSync(outPath, 'old\n', { mode: 0o644 });
  const held = openSync(outPath, 'r');
  const heldIno = fstatSync(held).ino;
  const d = capture();
  expect(
    await userCommand.run(
      [
        'open',
        '--profile',
        profiles.bob!,
        '--in',
        deliveredPath,
        '-o',
        outPath,
        '--peer-bundle',
        file('peer-a.json', world.a.bundle),
        ...AT,
      ],
      d.io,
    ),
  ).toBe(0);
  expect(readFileSync(outPath).equals(original)).toBe(true);
  const seen = Buffer.alloc(4096);
  expect(seen.subarray(0, readSync(held, seen, 0, seen.length, 0)).toString()).toBe('old\n');
  closeSync(held);
  expect(statSync(outPath).ino).not.toBe(heldIno);
  expect(statSync(outPath).mode & 0o777).toBe(0o600);
  // a symlink at -o is replaced, never followed
  const target = join(world.dir, 'symlink-target.txt');
  writeFileSync(target, '', { mode: 0o644 });
  const linked = join(world.dir, 'opened-link.eml');
  symlinkSync(target, linked);
  expect(await userCommand.run(['open', '--profile', profiles.bob!, '--in', deliveredPath, '-o', linked, ...AT], capture().io)).toBe(0);
  expect(readFileSync(target, 'utf8')).toBe('');
  expect(lstatSync(linked).isSymbolicLink()).toBe(false);
  expect(readFileSync(linked).equals(original)).toBe(true);
  expect(statSync(linked).mode & 0o777).toBe(0o600);
  expect(d.out.join('\n')).not.toContain(SECRET);
  expect(d.out[0]).toContain('signature verified here');

  // A tampered seal: exit 1, the trace and a precise error on stderr, nothing of the content anywhere.
  const tampered = file('tampered.eml', Buffer.from(delivered.toString('latin1').replace('vd=av:pass', 'vd=av:fail'), 'latin1'));
  const t = capture();
  expect(await main(['user', 'open', '--profile', profiles.bob!, '--in', tampered, ...AT], t.io)).toBe(1);
  expect(t.out).toEqual([]);
  expect(t.err.join('\n')).toMatch(/ssmax user: Cannot open the message: seal i=2 \(b\.example\) failed: signature-invalid/);
  expect(t.err.join('\n')).not.toContain(SECRET);

  // Alice cannot open Bob's mail.
  const a = capture();
  expect(await main(['user', 'open', '--profile', profiles.alice!, '--in', deliveredPath, ...AT], a.io)).toBe(1);
  expect(a.err.join('\n')).toMatch(/not by the organisation "a\.example"/);
  expect(a.out).toEqual([]);

  // update-bundle refuses another org's bundle.
  const u = capture();
  expect(
    await main(['user', 'update-bundle', '--profile', profiles.bob!, '--bundle', file('other.json', world.a.bundle), ...AT], u.io),
  ).toBe(65);
  expect(u.err.join('\n')).toMatch(/wrong-domain/);
  const newer = capture();
  expect(
    await userCommand.run(
      ['update-bundle', '--profile', profiles.bob!, '--bundle', file('b-2.json', world.b.republish(2)), ...AT],
      newer.io,
    ),
  ).toBe(0);
  expect(newer.out.join('\n')).toMatch(/^Organisation bundle of b\.example updated to serial 2 \(current key v1, expires /);
  expect(readFileSync(join(profiles.bob!, 'org-bundle.json'), 'utf8')).toBe(readFileSync(join(world.dir, 'b-2.json'), 'utf8'));
  const older = capture();
  expect(
    await main(['user', 'update-bundle', '--profile', profiles.bob!, '--bundle', file('b-1.json', world.b.bundle), ...AT], older.io),
  ).toBe(65);
  expect(older.err.join('\n')).toMatch(/replayed/);
});

test('profile keys at rest: init needs --key-passphrase-file or --unencrypted-key; encrypted keys open only with their passphrase', async () => {
  const ca = caDir(world.a.ca, 'ca-wrapped');
  const base = [
    'user',
    'init',
    '--ca',
    ca,
    '--root',
    file('root-wrapped.pem', world.root.certificate.pem),
    '--bundle',
    file('bundle-wrapped.json', world.a.bundle),
    '--email',
    `hana@${world.a.domain}`,
    '--pseudonym',
    'u-hana',
    '--code',
    'E-hana9',
    ...AT,
  ];
  const out = join(world.dir, 'profile-wrapped');
  // neither option: a usage error, said before anything is made
  const none = capture();
  expect(await main([...base, '--out', out], none.io)).toBe(64);
  expect(none.err.join('\n')).toMatch(
    /Refusing to write the user's private key unencrypted: give --key-passphrase-file F .* or --unencrypted-key/,
  );
  expect(existsSync(out)).toBe(false);
  const passphrase = file('hana-passphrase', 'correct horse battery staple\n');
  const both = capture();
  expect(await main([...base, '--out', out, '--key-passphrase-file', passphrase, '--unencrypted-key'], both.io)).toBe(64);
  expect(both.err.join('\n')).toMatch(/Cannot use --key-passphrase-file with --unencrypted-key: choose one/);
  expect(existsSync(out)).toBe(false);

  expect(await main([...base, '--out', out, '--key-passphrase-file', passphrase], capture().io)).toBe(0);
  for (const name of ['signing.key.pem', 'encryption.key.pem']) {
    const pem = readFileSync(join(out, name), 'utf8');
    expect(pem).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    expect(statSync(join(out, name)).mode & 0o777).toBe(0o600);
  }
  expect(loadUserProfile(out, { keyPassphrase: 'correct horse battery staple' }).address).toBe(`hana@${world.a.domain}`);

  const draft = file('hana-draft.eml', `From: hana@${world.a.domain}\r\nTo: bob@b.example\r\nSubject: s\r\n\r\n${SECRET}\r\n`);
  const signed = join(world.dir, 'hana-signed.eml');
  const sign = ['user', 'sign-encrypt', '--profile', out, '--in', draft, '-o', signed, ...AT];
  // no passphrase: 65, naming the key file
  const missing = capture();
  expect(await main(sign, missing.io)).toBe(65);
  expect(missing.err.join('\n')).toContain(`Cannot use "${join(out, 'signing.key.pem')}": the key is encrypted; give its passphrase`);
  // a wrong one: 65 as well
  const wrong = capture();
  expect(await main([...sign, '--key-passphrase-file', file('hana-wrong', 'not it\n')], wrong.io)).toBe(65);
  expect(wrong.err.join('\n')).toMatch(/Cannot decrypt ".*signing\.key\.pem": wrong passphrase, or the file is damaged/);
  expect(existsSync(signed)).toBe(false);
  // the option, or the file the environment names
  expect(await main([...sign, '--key-passphrase-file', passphrase], capture().io)).toBe(0);
  expect(readFileSync(signed, 'latin1')).toMatch(/^SSMAX-User-Signature: /);
  process.env.SSMAX_USER_KEY_PASSPHRASE_FILE = passphrase;
  try {
    expect(await main([...sign, '-o', `${signed}.2`], capture().io)).toBe(0);
  } finally {
    delete process.env.SSMAX_USER_KEY_PASSPHRASE_FILE;
  }
  // update-bundle reads no private key: no passphrase needed
  const update = capture();
  expect(
    await main(['user', 'update-bundle', '--profile', out, '--bundle', file('a-2-wrapped.json', world.a.republish(2)), ...AT], update.io),
  ).toBe(0);
});

test('update-bundle decides on the bundle on disk, not the one a process read earlier: the serial never moves back', async () => {
  const out = join(world.dir, 'profile-bundles');
  expect(
    await main(
      [
        'user',
        'init',
        '--unencrypted-key',
        '--ca',
        caDir(world.b.ca, 'ca-bundles'),
        '--root',
        file('root-bundles.pem', world.root.certificate.pem),
        '--bundle',
        file('bundle-bundles.json', world.b.bundle),
        '--email',
        'ina@b.example',
        '--pseudonym',
        'u-ina',
        '--code',
        'E-ina9',
        '--out',
        out,
        ...AT,
      ],
      capture().io,
    ),
  ).toBe(0);
  // two updaters that read the profile (serial 1) before either wrote
  const first = loadUserProfileSettings(out);
  const second = loadUserProfileSettings(out);
  const three = world.b.republish(3);
  expect((await updateOrgBundle(first, three, NOW)).serial).toBe(3);
  await expect(updateOrgBundle(second, world.b.republish(2), NOW)).rejects.toThrow(/replayed/);
  expect(readFileSync(join(out, 'org-bundle.json'), 'utf8')).toBe(three);
});

test('init with a CA directory made by `ssmax ca`, on the real clock', async () => {
  const run = async (argv: string[]) => {
    const c = capture();
    const code = await caCommand.run(argv, c.io);
    if (code !== 0) throw new Error(c.err.join('\n'));
  };
  const base = join(world.dir, 'ssmax-ca');
  const { mkdirSync } = jest.requireActual<typeof import('node:fs')>('node:fs');
  mkdirSync(base);
  const rootDir = join(base, 'root');
  const orgDir = join(base, 'orgc');
  await run(['init-root', '--unencrypted-key', '--dir', rootDir]);
  await run(['init-org', '--unencrypted-key', '--root', rootDir, '--dir', orgDir, '--domain', 'c.example', '--org', 'C Corp']);
  const kp = generateEncryptionKeyPair(groups.libsecp256k1, systemRng);
  await run([
    'issue',
    'encryption',
    '--ca',
    orgDir,
    '--out',
    join(base, 'enc-v1'),
    '--domain',
    'c.example',
    '--version',
    '1',
    '--public-key',
    Buffer.from(kp.publicKey).toString('hex'),
  ]);
  await run(['issue', 'seal', '--ca', orgDir, '--out', join(base, 'seal'), '--domain', 'c.example']);
  await run(['issue', 'bundle-signer', '--ca', orgDir, '--out', join(base, 'signer'), '--domain', 'c.example']);
  await run(['crl', '--ca', orgDir]);
  await run(['crl', '--ca', rootDir]);
  await run([
    'bundle',
    '--ca',
    orgDir,
    '--signer',
    join(base, 'signer'),
    '--domain',
    'c.example',
    '--key',
    `${join(base, 'enc-v1')}.cert.pem:current`,
    '--seal',
    `${join(base, 'seal')}.cert.pem`,
    '--crl',
    join(orgDir, 'crl.pem'),
    '--crl',
    join(rootDir, 'crl.pem'),
    '--abuse',
    'mailto:abuse@c.example',
    '--serial',
    '1',
    '--out',
    join(base, 'bundle.json'),
  ]);
  const c = capture();
  const out = join(base, 'erin');
  expect(
    await userCommand.run(
      [
        'init',
        '--unencrypted-key',
        '--ca',
        orgDir,
        '--root',
        join(rootDir, 'ca.cert.pem'),
        '--bundle',
        join(base, 'bundle.json'),
        '--email',
        'erin@c.example',
        '--pseudonym',
        'u-erin',
        '--code',
        'E-77x',
        '--out',
        out,
      ],
      c.io,
    ),
  ).toBe(0);
  const profile = loadUserProfile(out);
  expect(profile.address).toBe('erin@c.example');
  const state = JSON.parse(readFileSync(join(orgDir, 'ca.json'), 'utf8')) as { issued: { serial: string }[] };
  expect(state.issued.map((i) => i.serial)).toEqual(
    expect.arrayContaining([profile.signingCertificate.serial, profile.encryptionCertificate.serial]),
  );
  // A second init into the same folder is refused (65).
  const again = capture();
  expect(
    await main(
      [
        'user',
        'init',
        '--unencrypted-key',
        '--ca',
        orgDir,
        '--root',
        join(rootDir, 'ca.cert.pem'),
        '--bundle',
        join(base, 'bundle.json'),
        '--email',
        'erin@c.example',
        '--pseudonym',
        'u-erin',
        '--code',
        'E-77x',
        '--out',
        out,
      ],
      again.io,
    ),
  ).toBe(65);
  expect(again.err.join('\n')).toMatch(/the folder is not empty/);
});

test('send with a profile that has no SMTP settings (as ssmax registry add writes it) names the options that are missing', async () => {
  const out = join(world.dir, 'no-smtp-profile');
  expect(
    await userCommand.run(
      [
        'init',
        '--unencrypted-key',
        '--ca',
        caDir(world.a.ca, 'ca-no-smtp'),
        '--root',
        file('root-no-smtp.pem', world.root.certificate.pem),
        '--bundle',
        file('bundle-no-smtp.json', world.a.bundle),
        '--email',
        `gil@${world.a.domain}`,
        '--pseudonym',
        'u-gil',
        '--code',
        'E-gil9',
        '--out',
        out,
        ...AT,
      ],
      capture().io,
    ),
  ).toBe(0);
  expect(loadUserProfile(out).smtp).toBeUndefined();
  const message = file('no-smtp.eml', `From: gil@${world.a.domain}\r\nTo: x@${world.a.domain}\r\nSubject: s\r\n\r\nhi\r\n`);
  const none = capture();
  expect(await main(['user', 'send', '--profile', out, '--to', `x@${world.a.domain}`, '--in', message], none.io)).toBe(1);
  expect(none.err.join('\n')).toMatch(/no SMTP host, port, user: give --host, --port, --smtp-user \(or set "smtp" in .*profile\.json\)/);
  const some = capture();
  const argv = ['user', 'send', '--profile', out, '--to', `x@${world.a.domain}`, '--in', message, '--host', '127.0.0.1', '--port', '25'];
  expect(await main(argv, some.io)).toBe(1);
  expect(some.err.join('\n')).toMatch(/no SMTP user: give --smtp-user/);
});
