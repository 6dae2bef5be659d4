/**
 * The store lock's name (src/keyd/store-lock.ts): not guessable by another
 * local user (the abstract socket namespace has no permissions), the same for
 * one store reached through two paths, and nothing made by only asking who
 * holds a store.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, statSync, symlinkSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STORE_LOCK_SUPPORTED, StoreInUseError, lockStore, storeHolder } from '../../src/keyd/store-lock';

const linux = STORE_LOCK_SUPPORTED ? test : test.skip;

function listen(name: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ path: name, exclusive: true }, () => resolve(s));
  });
}

linux(
  'a name taken first from the store path alone (what another local user could work out) does not keep keyd from its lock',
  async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ssmax-lock-')), 'data');
    mkdirSync(dir);
    const guessed = `\0ssmax-keyd-store-${createHash('sha256').update(realpathSync(dir)).digest('hex').slice(0, 40)}`;
    const squatter = await listen(guessed);
    try {
      const lock = await lockStore(dir);
      expect(statSync(join(dir, 'keyd-lock.secret')).mode & 0o777).toBe(0o600);
      expect(await storeHolder(dir)).toBe(process.pid);
      await lock.release();
    } finally {
      squatter.close();
    }
  },
);

linux('one store through two paths: the second lock is refused, naming the holder', async () => {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-lock-'));
  const dir = join(base, 'data');
  const lock = await lockStore(dir);
  symlinkSync(dir, join(base, 'other-path'));
  try {
    await expect(lockStore(join(base, 'other-path'))).rejects.toThrow(StoreInUseError);
    await expect(lockStore(join(base, 'other-path'))).rejects.toThrow(`pid ${process.pid}`);
  } finally {
    await lock.release();
  }
  const again = await lockStore(join(base, 'other-path')); // released: free again
  await again.release();
});

test('asking who holds a store makes nothing in its folder', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-lock-'));
  expect(await storeHolder(dir)).toBeUndefined();
  expect(readdirSync(dir)).toEqual([]);
});
