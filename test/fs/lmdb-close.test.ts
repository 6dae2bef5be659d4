/**
 * closeLmdb (src/fs/lmdb-close.ts): an environment closed in the same
 * synchronous run as a transactionSync closes. lmdb's own close() never
 * returns there (it blocks the main thread, so a hang here cannot be caught
 * by a timer in this process): the case runs in a child process with a
 * deadline.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DIST = join(__dirname, '..', '..', 'dist', 'fs', 'lmdb-close.js');

test('a store closed right after a synchronous write transaction, in the same run, closes (and keeps the write)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-lmdb-close-'));
  const script = `
    const { open } = require('lmdb');
    const { closeLmdb } = require(${JSON.stringify(DIST)});
    const root = open({ path: ${JSON.stringify(dir)}, compression: false });
    root.transactionSync(() => root.put('k', 'written'));
    closeLmdb(root).then(() => {
      const again = open({ path: ${JSON.stringify(dir)}, compression: false });
      process.stdout.write('closed ' + again.get('k'));
      return closeLmdb(again);
    });
  `;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: join(__dirname, '..', '..'), timeout: 20000, encoding: 'utf8' });
  expect({ signal: r.signal, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
    signal: null,
    status: 0,
    stdout: 'closed written',
    stderr: '',
  });
});
