/**
 * Replacing a small file so that a reader (or a crash) sees either the old
 * content or the new, never a mix or an empty file: the new content goes to
 * a temporary file in the same folder, is flushed to disk (fsync), and is
 * renamed over the old one (one atomic step on POSIX file systems); the
 * folder is flushed too, so the rename itself survives a crash.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Writes `data` to `path` atomically and durably (temp file + fsync + rename + fsync of the folder); `mode` applies to the new file. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  syncFolder(dirname(path));
}

/** Flushes a folder's entries (a rename in it) to disk; where the platform cannot open a folder for this, the rename stands unflushed. */
function syncFolder(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // Windows and some file systems refuse fsync on a folder
  } finally {
    closeSync(fd);
  }
}
