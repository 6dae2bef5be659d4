/**
 * writeFileAtomic (src/fs/atomic.ts): a temporary file of its own per write,
 * created exclusively with the intended mode. A stale temporary file at the
 * name an earlier version used (left by a crash, with its own mode) does not
 * lend its mode to the target; two threads writing one target at once each
 * end in a complete file; a failed write leaves no temporary file behind.
 * The concurrent case runs the built module (dist/) in two worker threads:
 * one process, one pid, as two writers in one service would be.
 */
import { chmodSync, existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { writeFileAtomic } from '../../src/fs/atomic';

const DIST = resolve(__dirname, '../../dist/fs/atomic.js');
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-atomic-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('a stale 0644 temporary file at the old fixed name does not make a 0600 target world-readable', () => {
  const target = join(dir, 'secret.key');
  const stale = join(dir, `.secret.key.${process.pid}.tmp`);
  writeFileSync(stale, 'left by a crash');
  chmodSync(stale, 0o644);
  writeFileAtomic(target, 'PRIVATE', 0o600);
  expect(statSync(target).mode & 0o777).toBe(0o600);
  expect(readFileSync(target, 'utf8')).toBe('PRIVATE');
  // the stale file is someone else's: neither used nor removed
  expect(readFileSync(stale, 'utf8')).toBe('left by a crash');
});

test('replacing a 0600 file keeps it 0600 and the content is the new one', () => {
  const target = join(dir, 'state.json');
  writeFileAtomic(target, 'one', 0o600);
  writeFileAtomic(target, 'two', 0o600);
  expect(statSync(target).mode & 0o777).toBe(0o600);
  expect(readFileSync(target, 'utf8')).toBe('two');
  expect(readdirSync(dir)).toEqual(['state.json']);
});

test('a write that fails (the target is a folder) throws and leaves no temporary file', () => {
  const target = join(dir, 'taken');
  mkdirSync(join(target, 'inside'), { recursive: true });
  expect(() => writeFileAtomic(target, 'x')).toThrow();
  expect(readdirSync(dir)).toEqual(['taken']);
});

test('two threads writing one target at once: no write fails, the file is one of the two contents whole', async () => {
  if (!existsSync(DIST)) throw new Error('dist/ is missing: run `npm run build` before this test');
  const target = join(dir, 'shared.bin');
  const size = 1 << 21; // 2 MiB: a write takes long enough for the two to overlap
  const rounds = 25;
  const start = new SharedArrayBuffer(4);
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { writeFileAtomic } = require(workerData.dist);
    const data = Buffer.alloc(workerData.size, workerData.fill);
    const flag = new Int32Array(workerData.start);
    Atomics.wait(flag, 0, 0); // both begin together
    let failed = 0, last = '';
    for (let i = 0; i < workerData.rounds; i++) {
      try { writeFileAtomic(workerData.target, data, 0o600); } catch (err) { failed++; last = err.message; }
    }
    parentPort.postMessage({ failed, last });
  `;
  const run = (fill: string) =>
    new Promise<{ failed: number; last: string }>((ok, fail) => {
      const w = new Worker(code, { eval: true, workerData: { dist: DIST, size, fill, rounds, target, start } });
      w.once('message', ok);
      w.once('error', fail);
    });
  const results = Promise.all([run('a'), run('b')]);
  await new Promise((r) => setTimeout(r, 200)); // both workers waiting
  const flag = new Int32Array(start);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
  const [a, b] = await results;
  expect([a, b]).toEqual([
    { failed: 0, last: '' },
    { failed: 0, last: '' },
  ]);
  const got = readFileSync(target);
  expect(got.length).toBe(size);
  const first = got[0]!;
  expect([0x61, 0x62]).toContain(first);
  expect(got.every((x) => x === first)).toBe(true);
  expect(statSync(target).mode & 0o777).toBe(0o600);
  expect(readdirSync(dir)).toEqual(['shared.bin']);
});
