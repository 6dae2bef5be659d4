/**
 * Secrets are never written into an existing file (src/fs/secret-file.ts):
 * a private key or a decrypted message replaces whatever is at its path with
 * a new 0600 file, so an earlier 0644 file, a descriptor opened on it
 * beforehand, or a symlink planted there never sees the secret; folders made
 * for private keys are 0700. The helper, and `ssmax ca` using it (`ssmax
 * user open -o`: test/user/cli.test.ts; `ssmax setup --force`:
 * test/cli/setup.test.ts).
 */
import {
  chmodSync,
  closeSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { createPrivateFolder, SecretPathError, writeSecretFile } from '../../src/fs/secret-file';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-secret-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Everything a descriptor opened earlier reads now, from the start. */
function readFd(fd: number): string {
  const buf = Buffer.alloc(1 << 16);
  const n = readSync(fd, buf, 0, buf.length, 0);
  return buf.subarray(0, n).toString('utf8');
}

const mode = (p: string) => statSync(p).mode & 0o777;

/** A 0644 file at `path` with an innocent content, and a descriptor open on it (as another user's reader would hold). */
function planted(path: string): { fd: number; ino: number } {
  writeFileSync(path, 'public\n', { mode: 0o644 });
  const fd = openSync(path, 'r');
  return { fd, ino: fstatSync(fd).ino };
}

test('an existing 0644 file is replaced by a new 0600 file: a descriptor opened on the old one reads no secret', () => {
  const path = join(dir, 'key.pem');
  const old = planted(path);
  try {
    writeSecretFile(path, 'SECRET KEY');
    expect(readFd(old.fd)).toBe('public\n');
    expect(statSync(path).ino).not.toBe(old.ino);
    expect(mode(path)).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe('SECRET KEY');
  } finally {
    closeSync(old.fd);
  }
});

test('a symlink at the path is replaced, not followed; a folder is refused; no temporary file is left', () => {
  const elsewhere = join(dir, 'elsewhere.txt');
  writeFileSync(elsewhere, 'target\n', { mode: 0o644 });
  const path = join(dir, 'out.eml');
  symlinkSync(elsewhere, path);
  writeSecretFile(path, 'DECRYPTED');
  expect(readFileSync(elsewhere, 'utf8')).toBe('target\n');
  expect(lstatSync(path).isSymbolicLink()).toBe(false);
  expect(mode(path)).toBe(0o600);
  expect(readFileSync(path, 'utf8')).toBe('DECRYPTED');
  // a dangling symlink (to a path another user could create) is replaced too
  const dangling = join(dir, 'dangling');
  symlinkSync(join(dir, 'nothing-yet'), dangling);
  writeSecretFile(dangling, 'DECRYPTED');
  expect(() => statSync(join(dir, 'nothing-yet'))).toThrow(/ENOENT/);
  mkdirSync(join(dir, 'folder'));
  expect(() => writeSecretFile(join(dir, 'folder'), 'x')).toThrow(SecretPathError);
  expect(statSync(join(dir, 'folder')).isDirectory()).toBe(true);
  expect(readdir(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
});

test('createPrivateFolder: a new folder is 0700 whatever the umask; an existing open one is reported, left as it is', () => {
  const before = process.umask(0o000);
  try {
    const made = createPrivateFolder(join(dir, 'a', 'b'));
    expect(made).toEqual({ created: true, open: false, mode: 0o700 });
    expect(mode(join(dir, 'a', 'b'))).toBe(0o700);
  } finally {
    process.umask(before);
  }
  mkdirSync(join(dir, 'open'), { mode: 0o755 });
  expect(createPrivateFolder(join(dir, 'open'))).toEqual({ created: false, open: true, mode: 0o755 & ~process.umask() });
});

function readdir(d: string): string[] {
  return (jest.requireActual('node:fs') as typeof import('node:fs')).readdirSync(d);
}

async function ssmax(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('ssmax ca: CA folders are made 0700; --force replaces a planted 0644 key file and a symlink, never writes into them', async () => {
  const root = join(dir, 'root');
  expect((await ssmax('ca', 'init-root', '--unencrypted-key', '--dir', root)).code).toBe(0);
  expect(mode(root)).toBe(0o700);
  expect(mode(join(root, 'ca.key.pem'))).toBe(0o600);

  // --force over a key file someone made 0644 and holds open
  const key = join(root, 'ca.key.pem');
  rmSync(key);
  const old = planted(key);
  try {
    expect((await ssmax('ca', 'init-root', '--unencrypted-key', '--dir', root, '--force')).code).toBe(0);
    expect(readFd(old.fd)).toBe('public\n');
    expect(statSync(key).ino).not.toBe(old.ino);
    expect(mode(key)).toBe(0o600);
    expect(readFileSync(key, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  } finally {
    closeSync(old.fd);
  }

  // the organisation CA: its folder 0700; --force over a symlink at ca.key.pem replaces the link
  const org = join(dir, 'org');
  const args = ['ca', 'init-org', '--unencrypted-key', '--root', root, '--dir', org, '--domain', 'a.example', '--org', 'A'];
  expect((await ssmax(...args)).code).toBe(0);
  expect(mode(org)).toBe(0o700);
  const stolen = join(dir, 'stolen.pem');
  writeFileSync(stolen, '', { mode: 0o644 });
  rmSync(join(org, 'ca.key.pem'));
  symlinkSync(stolen, join(org, 'ca.key.pem'));
  expect((await ssmax(...args, '--force', '--second-ca-for-domain')).code).toBe(0);
  expect(readFileSync(stolen, 'utf8')).toBe('');
  expect(lstatSync(join(org, 'ca.key.pem')).isSymbolicLink()).toBe(false);
  expect(mode(join(org, 'ca.key.pem'))).toBe(0o600);

  // ca issue --force: the generated key file replaces a planted one
  const out = join(dir, 'gw');
  writeFileSync(`${out}.key.pem`, 'public\n', { mode: 0o644 });
  const held = openSync(`${out}.key.pem`, 'r');
  try {
    const r = await ssmax('ca', 'issue', 'gateway', '--ca', org, '--out', out, '--host', 'mx.a.example', '--force');
    expect(r.code).toBe(0);
    expect(readFd(held)).toBe('public\n');
    expect(mode(`${out}.key.pem`)).toBe(0o600);
  } finally {
    closeSync(held);
  }

  // a CA key into an existing folder others may read: said, and the key itself 0600
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o755);
  const w = await ssmax('ca', 'init-root', '--unencrypted-key', '--dir', shared);
  expect(w.code).toBe(0);
  expect(mode(shared)).toBe(0o755); // an existing folder is not changed, only warned about
  expect(w.err).toMatch(/warning: ".*shared" is mode 07\d\d: the CA's private key is in it; make it 0700/);
  expect(mode(join(shared, 'ca.key.pem'))).toBe(0o600);

  // a folder where the key file should be: refused with 73, nothing changed
  const odd = join(dir, 'odd');
  mkdirSync(join(odd, 'ca.key.pem'), { recursive: true });
  const refused = await ssmax('ca', 'init-root', '--unencrypted-key', '--dir', odd, '--force');
  expect(refused.code).toBe(73);
  expect(refused.err).toMatch(/Cannot write ".*ca\.key\.pem": EISDIR/);
});
