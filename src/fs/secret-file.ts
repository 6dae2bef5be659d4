/**
 * Writing a secret (a private key, a decrypted message, a password file) and
 * making a folder for private keys. A secret never goes into an existing
 * file: `writeFileSync(path, data, { mode })` applies the mode only when it
 * creates the file, so an existing 0644 file would receive the secret with
 * its old mode (and a descriptor opened on it beforehand could read it), and
 * a symlink at the path would be followed to wherever it points. Instead the
 * secret goes to a fresh file of its own in the same folder, created
 * exclusively ('wx') with mode 0600, flushed, and renamed over the path
 * (src/fs/atomic.ts): the old file, or a symlink, is replaced, never written
 * through; a folder at the path is refused.
 */
import { chmodSync, lstatSync, mkdirSync, statSync } from 'node:fs';
import { writeFileAtomic } from './atomic';

/** The file mode of every secret written here. */
export const SECRET_FILE_MODE = 0o600;
/** The mode of a folder made for private keys. */
export const PRIVATE_FOLDER_MODE = 0o700;

/** A folder where a secret file should be (thrown before anything is written). */
export class SecretPathError extends Error {
  readonly code = 'EISDIR';
  constructor(readonly path: string) {
    super(`"${path}" is a folder, not a file`);
    this.name = 'SecretPathError';
  }
}

/**
 * Writes `data` to `path` as a new 0600 file (temporary file created 'wx' with
 * mode 0600 in the same folder, fsync, rename over `path`): whatever was at
 * `path` (a file of another mode, a hard link, a symlink) is replaced, not
 * written into or followed; a folder at `path` is refused (SecretPathError).
 */
export function writeSecretFile(path: string, data: string | Uint8Array): void {
  let existing;
  try {
    existing = lstatSync(path);
  } catch {
    existing = undefined;
  }
  if (existing?.isDirectory()) throw new SecretPathError(path);
  writeFileAtomic(path, data, SECRET_FILE_MODE);
}

/**
 * Makes `path` (and missing parents) a folder for private keys: a folder made
 * here is 0700 whatever the umask; an existing one keeps its mode, which is
 * returned with `open` true when group or others may enter or read it (the
 * caller warns). Errors of mkdir are thrown as they are.
 */
export function createPrivateFolder(path: string): { created: boolean; open: boolean; mode: number } {
  const made = mkdirSync(path, { recursive: true, mode: PRIVATE_FOLDER_MODE });
  if (made !== undefined) {
    chmodSync(path, PRIVATE_FOLDER_MODE); // mkdir's mode is masked by the umask
    return { created: true, open: false, mode: PRIVATE_FOLDER_MODE };
  }
  const mode = statSync(path).mode & 0o777;
  return { created: false, open: (mode & 0o077) !== 0, mode };
}

/** Makes `path` a folder for private keys and sets it 0700, also when it exists (a folder of the program's own layout). */
export function ensurePrivateFolder(path: string): void {
  mkdirSync(path, { recursive: true, mode: PRIVATE_FOLDER_MODE });
  chmodSync(path, PRIVATE_FOLDER_MODE);
}
