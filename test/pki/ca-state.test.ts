import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/fs/atomic';
import { CaStateError, readCaState, updateCaState } from '../../src/pki/ca-state';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-ca-state-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function reasonOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof CaStateError) return err.reason;
    throw err;
  }
  return 'none';
}

describe('ca.json (src/pki/ca-state.ts): one type, one reader, one atomic writer', () => {
  test('written and read back; a legacy crlNumber is read as a floor and never written; other fields are kept', async () => {
    writeFileSync(
      join(dir, 'ca.json'),
      JSON.stringify({
        kind: 'org',
        crlNumber: 40,
        revoked: [],
        issued: [{ serial: '01', subject: 'CN=x', notAfter: '2027-01-01T00:00:00.000Z' }],
        note: 'kept',
      }),
    );
    expect(readCaState(dir).crlNumber).toBe(40);
    await updateCaState(dir, (state) => {
      expect(state.crlNumber).toBe(40);
      state.revoked.push({ serial: '01', revokedAt: '2026-12-06T00:00:00.000Z', reason: 'keyCompromise' });
    });
    const onDisk = JSON.parse(readFileSync(join(dir, 'ca.json'), 'utf8')) as Record<string, unknown>;
    expect('crlNumber' in onDisk).toBe(false);
    expect(onDisk.note).toBe('kept');
    expect(readCaState(dir).revoked.map((r) => r.serial)).toEqual(['01']);
    // no temporary file left behind; the folder's lock secret (src/fs/folder-lock.ts) only where there is a lock
    expect(readdirSync(dir).filter((f) => f !== 'ca-lock.secret')).toEqual(['ca.json']);
    if (process.platform !== 'win32') expect(statSync(join(dir, 'ca.json')).mode & 0o777).toBe(0o644);
  });

  test('lists missing in an older file read as empty', () => {
    writeFileSync(join(dir, 'ca.json'), JSON.stringify({ kind: 'root' }));
    expect(readCaState(dir)).toMatchObject({ kind: 'root', revoked: [], issued: [] });
  });

  test('a missing, non-JSON or non-CA file is refused with its reason', () => {
    expect(reasonOf(() => readCaState(dir))).toBe('missing');
    writeFileSync(join(dir, 'ca.json'), '{not json');
    expect(reasonOf(() => readCaState(dir))).toBe('not-json');
    writeFileSync(join(dir, 'ca.json'), JSON.stringify({ kind: 'user', revoked: [], issued: [] }));
    expect(reasonOf(() => readCaState(dir))).toBe('malformed');
    writeFileSync(join(dir, 'ca.json'), JSON.stringify({ kind: 'org', revoked: {}, issued: [] }));
    expect(reasonOf(() => readCaState(dir))).toBe('malformed');
  });

  test('writeFileAtomic replaces the whole file and leaves no temporary file, also when the write fails', () => {
    const file = join(dir, 'f.txt');
    writeFileAtomic(file, 'old');
    writeFileAtomic(file, 'new content');
    expect(readFileSync(file, 'utf8')).toBe('new content');
    expect(() => writeFileAtomic(join(dir, 'no-such-folder', 'f.txt'), 'x')).toThrow();
    expect(readdirSync(dir)).toEqual(['f.txt']);
  });
});
