/**
 * Replacing a small file so that a reader (or a crash) sees either the old
 * content or the new, never a mix or an empty file: the new content goes to
 * a temporary file of its own in the same folder (a fresh name, created
 * exclusively with the intended mode: a file left by an earlier crash is
 * never reused, and two writers of one file never share a temporary file),
 * is flushed to disk (fsync), and is renamed over the old one (one atomic
 * step on POSIX file systems); the folder is flushed too, so the rename
 * itself survives a crash. On failure the temporary file is removed.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A temporary name next to `path`, unique to this call. */
function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Writes `data` to `path` atomically and durably (temp file + fsync + rename + fsync of the folder); `mode` applies to the new file. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempNameFor(path);
  let created = false;
  try {
    // 'wx': fails rather than open a file that exists (a stale or planted one keeps its own mode and owner)
    const fd = openSync(tmp, 'wx', mode);
    created = true;
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    if (created) rmSync(tmp, { force: true });
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
