/**
 * An exclusive lock on a folder, held by one process at a time (keyd's store,
 * src/keyd/store-lock.ts; a CA folder's ca.json, src/pki/ca-state.ts). The
 * lock is a listening Unix socket in Linux's abstract namespace: binding it is
 * atomic, and the kernel releases it when the process ends however it ends
 * (kill -9 included), so there is never a stale lock to clear. The holder
 * answers a connection with its pid, so a process that waits can name it.
 *
 * The abstract namespace has no permissions, so the name is not guessable: it
 * is a hash of the folder's device and inode (one folder through two paths or
 * bind mounts gives one name) and of a random secret kept in the folder (mode
 * 0600), which only the folder's own user can read — another local user cannot
 * take the name first. The lock is local to one host and one network
 * namespace: processes on two hosts sharing the folder over a network file
 * system, or in containers with separate network namespaces sharing a volume,
 * do not see each other's lock. Elsewhere than on Linux there is no lock.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Server, createConnection, createServer } from 'node:net';

/** Whether folder locks are supported here (Linux: the abstract socket namespace). */
export const FOLDER_LOCK_SUPPORTED = process.platform === 'linux';

/** What names one kind of folder lock: its secret file in the folder and the prefix of its socket name. */
export interface FolderLockKind {
  readonly secretFile: string;
  readonly prefix: string;
}

/** The folder's lock secret: made once, atomically (written aside, then linked into place; the first link wins). */
export function folderSecret(dir: string, kind: FolderLockKind): string {
  const file = join(dir, kind.secretFile);
  if (!existsSync(file)) {
    const aside = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
    writeFileSync(aside, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(aside, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // another process made it first: theirs counts
    } finally {
      unlinkSync(aside);
    }
  }
  return readFileSync(file, 'utf8').trim();
}

/** The abstract socket name of the lock on `dir` with `secret`. */
export function folderLockName(dir: string, kind: FolderLockKind, secret: string): string {
  const { dev, ino } = statSync(dir);
  return `\0${kind.prefix}${createHash('sha256').update(`${dev}:${ino}:${secret}`).digest('hex').slice(0, 40)}`;
}

/** Whether someone holds the lock `name`, and its pid when it answers within `timeoutMs`. */
export function lockHolder(name: string, timeoutMs: number): Promise<{ held: boolean; pid?: number }> {
  return new Promise((resolve) => {
    const socket = createConnection({ path: name });
    let text = '';
    let connected = false;
    const done = (r: { held: boolean; pid?: number }) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ held: connected }), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => (connected = true));
    socket.on('data', (d: string) => {
      text += d;
      if (text.length > 64) done({ held: true });
    });
    socket.on('end', () => {
      const pid = Number(/^pid (\d{1,10})\n/.exec(text)?.[1]);
      done(Number.isSafeInteger(pid) && pid > 0 ? { held: true, pid } : { held: true });
    });
    socket.on('error', () => done({ held: connected }));
  });
}

export interface FolderLock {
  release(): Promise<void>;
}

/** Binds the lock `name`: the lock, or undefined when another process holds it. */
export async function bindLock(name: string): Promise<FolderLock | undefined> {
  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(`pid ${process.pid}\n`);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: name, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return undefined;
    throw err;
  }
  server.unref(); // the lock never keeps the process alive by itself
  return { release: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/**
 * Takes the lock on `dir` at once, for as long as this process keeps it (a daemon's lock on its state: released by
 * `release`, or when the process ends): the lock, or the pid of the process holding it (undefined when it does not
 * answer in time). The folder must exist; its secret is made if missing. Only where FOLDER_LOCK_SUPPORTED.
 */
export async function holdFolder(dir: string, kind: FolderLockKind): Promise<FolderLock | { readonly heldBy: number | undefined }> {
  const name = folderLockName(dir, kind, folderSecret(dir, kind));
  const lock = await bindLock(name);
  if (lock) return lock;
  return { heldBy: (await lockHolder(name, 2000)).pid };
}

/** The lock on a folder was held by another process for longer than the caller would wait. */
export class FolderBusyError extends Error {
  override readonly name = 'FolderBusyError';
  constructor(
    readonly dir: string,
    readonly pid: number | undefined,
    readonly waitedMs: number,
  ) {
    super(`"${dir}" is locked by another process (${pid === undefined ? 'its pid unknown' : `pid ${pid}`}); waited ${waitedMs} ms`);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs `fn` holding the lock on `dir`, waiting up to `waitMs` for another
 * holder to release it (then FolderBusyError); the lock is released when `fn`
 * settles, whether it returned or threw. Without lock support, `fn` runs unlocked.
 */
export async function withFolderLock<T>(dir: string, kind: FolderLockKind, waitMs: number, fn: () => T | Promise<T>): Promise<T> {
  if (!FOLDER_LOCK_SUPPORTED) return fn();
  const name = folderLockName(dir, kind, folderSecret(dir, kind));
  const started = Date.now();
  let lock = await bindLock(name);
  while (!lock) {
    if (Date.now() - started >= waitMs) {
      const h = await lockHolder(name, 1000);
      throw new FolderBusyError(dir, h.pid, Date.now() - started);
    }
    await sleep(10 + Math.floor(Math.random() * 20));
    lock = await bindLock(name);
  }
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
