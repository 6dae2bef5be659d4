/**
 * One keyd per store (docs/scaling.md): `ssmax keyd run` holds its data_dir
 * exclusively while it runs. The lock is a listening Unix socket in Linux's
 * abstract namespace: binding it is atomic, and the kernel releases it when
 * the process ends however it ends (kill -9 included), so there is never a
 * stale lock to clear. The holder answers a connection with its pid, so the
 * second keyd can name it. The abstract namespace has no permissions, so the
 * name is not guessable: it is a hash of the store folder's device and inode
 * (the same store through two paths or bind mounts gives one name) and of a
 * random secret kept in the store folder (`keyd-lock.secret`, mode 0600),
 * which only keyd's own user can read — another local user cannot take the
 * name first and keep keyd from starting.
 *
 * The tools that open the store beside a running keyd (`keyd backup`,
 * `keyd audit verify`, `keyd rotate`: LMDB lets several processes share an
 * environment) take no lock; `keyd restore`, which replaces the store,
 * refuses while it is held.
 *
 * The abstract namespace belongs to a network namespace: two keyds in
 * containers with separate network namespaces sharing one volume do not see
 * each other's lock (docs/scaling.md).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type FolderLockKind, folderLockName, holdFolder, lockHolder } from '../fs/folder-lock';

/** Another keyd holds the store. */
export class StoreInUseError extends Error {
  override readonly name = 'StoreInUseError';
  constructor(
    readonly dataDir: string,
    readonly pid: number | undefined,
  ) {
    super(
      `keyd store "${dataDir}" is in use by another keyd (${pid === undefined ? 'its pid unknown' : `pid ${pid}`}): one keyd per store; stop it first (docs/scaling.md)`,
    );
  }
}

export interface StoreLock {
  release(): Promise<void>;
}

/** Whether the store lock is supported here (Linux: the abstract socket namespace). */
export const STORE_LOCK_SUPPORTED = process.platform === 'linux';

/** The store's lock (src/fs/folder-lock.ts): its secret `keyd-lock.secret` in the store folder. */
const STORE: FolderLockKind = { secretFile: 'keyd-lock.secret', prefix: 'ssmax-keyd-store-' };

/** The pid of the keyd holding `dataDir`, or undefined when none does (or the platform has no lock). */
export async function storeHolder(dataDir: string, timeoutMs = 2000): Promise<number | undefined> {
  // nothing is made here: without the secret no keyd ever ran on this folder (the one that runs made it first)
  const file = join(dataDir, STORE.secretFile);
  if (!STORE_LOCK_SUPPORTED || !existsSync(file)) return undefined;
  const name = folderLockName(dataDir, STORE, readFileSync(file, 'utf8').trim());
  return lockHolder(name, timeoutMs).then((h) => (h.held ? (h.pid ?? -1) : undefined));
}

/**
 * Takes the store's lock, or throws StoreInUseError naming the keyd that
 * holds it. Where there is no lock (not Linux), `warn` is told and nothing
 * is held.
 */
export async function lockStore(dataDir: string, warn?: (line: string) => void): Promise<StoreLock> {
  if (!STORE_LOCK_SUPPORTED) {
    warn?.(`keyd: WARNING no store lock on ${process.platform}: make sure no other keyd runs on "${dataDir}"`);
    return { release: () => Promise.resolve() };
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const held = await holdFolder(dataDir, STORE);
  if ('heldBy' in held) throw new StoreInUseError(dataDir, held.heldBy);
  return held;
}
