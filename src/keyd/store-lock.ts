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
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Server, createConnection, createServer } from 'node:net';

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

/** Where the store's lock secret is kept. */
const secretFile = (dataDir: string): string => join(dataDir, 'keyd-lock.secret');

/** The store's lock secret: made once, atomically (written aside, then linked into place; the first link wins). */
function lockSecret(dataDir: string): string {
  const file = secretFile(dataDir);
  if (!existsSync(file)) {
    const aside = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
    writeFileSync(aside, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(aside, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // another keyd made it first: theirs counts
    } finally {
      unlinkSync(aside);
    }
  }
  return readFileSync(file, 'utf8').trim();
}

function nameOf(dataDir: string, secret: string): string {
  const { dev, ino } = statSync(dataDir);
  return `\0ssmax-keyd-store-${createHash('sha256').update(`${dev}:${ino}:${secret}`).digest('hex').slice(0, 40)}`;
}

/** The lock's name for the keyd about to run on `dataDir` (the folder and its secret made if missing). */
function lockName(dataDir: string): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return nameOf(dataDir, lockSecret(dataDir));
}

/** The pid of the keyd holding `dataDir`, or undefined when none does (or the platform has no lock). */
export async function storeHolder(dataDir: string, timeoutMs = 2000): Promise<number | undefined> {
  // nothing is made here: without the secret no keyd ever ran on this folder (the one that runs made it first)
  const file = secretFile(dataDir);
  if (!STORE_LOCK_SUPPORTED || !existsSync(file)) return undefined;
  const secret = readFileSync(file, 'utf8').trim();
  return holderOf(nameOf(dataDir, secret), timeoutMs).then((h) => (h.held ? (h.pid ?? -1) : undefined));
}

function holderOf(name: string, timeoutMs: number): Promise<{ held: boolean; pid?: number }> {
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
  const name = lockName(dataDir);
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
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    const h = await holderOf(name, 2000);
    throw new StoreInUseError(dataDir, h.pid);
  }
  server.unref(); // the lock never keeps the process alive by itself
  return {
    release: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}
