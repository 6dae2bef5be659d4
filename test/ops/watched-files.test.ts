/**
 * WatchedFiles (src/ops/reload.ts): the CRL files the gateway and the
 * inspector check certificates against are read once and then only when they
 * change on disk (the FileWatch, once a second in service), not at every
 * check.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WatchedFiles } from '../../src/ops/reload';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-watched-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const waitFor = async (ok: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

test('an unchanged file is read once, however many checks use it', () => {
  const file = join(dir, 'org-ca.crl.pem');
  writeFileSync(file, 'CRL 1');
  let reads = 0;
  const read = (f: string) => {
    reads++;
    return readFileSync(f, 'utf8');
  };
  // the watch's own comparison (once a second in service) is an hour away here: only checks read
  const files = new WatchedFiles([file], read, () => undefined, 'CRL', 3_600_000);
  try {
    expect(reads).toBe(0); // not before the first use
    for (let i = 0; i < 1000; i++) expect(files.current()).toEqual(['CRL 1']);
    expect(reads).toBe(1);
  } finally {
    files.stop();
  }
});

test('a replaced file is used from the watch’s next check on; a file that cannot be re-read leaves the previous text, with a WARNING', async () => {
  const file = join(dir, 'org-ca.crl.pem');
  const other = join(dir, 'root.crl.pem');
  writeFileSync(file, 'CRL 1');
  writeFileSync(other, 'ROOT CRL');
  const log: string[] = [];
  const files = new WatchedFiles(
    [file, other],
    (f) => readFileSync(f, 'utf8'),
    (l) => log.push(l),
    'CRL',
    50,
  );
  try {
    expect(files.current()).toEqual(['CRL 1', 'ROOT CRL']);
    // replaced as keyd replaces it: a new file renamed into place
    writeFileSync(`${file}.new`, 'CRL 2');
    renameSync(`${file}.new`, file);
    await waitFor(() => files.current()[0] === 'CRL 2');
    expect(files.current()).toEqual(['CRL 2', 'ROOT CRL']);
    expect(log).toContain(`CRL reloaded (${file})`);

    rmSync(file);
    await waitFor(() => log.some((l) => l.startsWith('WARNING cannot re-read CRL')));
    expect(files.current()).toEqual(['CRL 2', 'ROOT CRL']);
  } finally {
    files.stop();
  }
});

test('a file missing at the first use throws (the check fails, for now) and is read at the next use once it is there', () => {
  const file = join(dir, 'org-ca.crl.pem');
  const files = new WatchedFiles(
    [file],
    (f) => {
      try {
        return readFileSync(f, 'utf8');
      } catch {
        throw new Error(`Cannot read CRL ${f}`);
      }
    },
    () => undefined,
    'CRL',
  );
  try {
    expect(() => files.current()).toThrow(`Cannot read CRL ${file}`);
    writeFileSync(file, 'CRL 1');
    expect(files.current()).toEqual(['CRL 1']);
  } finally {
    files.stop();
  }
});

test('no files: nothing to read or watch', () => {
  const files = new WatchedFiles(
    [],
    () => 'never',
    () => undefined,
    'CRL',
  );
  expect(files.current()).toEqual([]);
  files.stop();
});
