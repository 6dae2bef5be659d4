/**
 * LMDB's own consistent copy of an open environment (a plain copy of data.mdb under a writer can take pages of
 * different transactions), into `outDir/data.mdb`, mode 0600 in a folder of mode 0700: LMDB writes its copy
 * (0644) into a private folder inside `outDir`, where it is made 0600 before it is moved into place. The caller
 * checks first that `outDir` is absent or empty.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RootDatabase } from 'lmdb';

export async function lmdbBackup(root: Pick<RootDatabase, 'backup'>, outDir: string): Promise<void> {
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  chmodSync(outDir, 0o700); // an existing empty folder keeps its own mode otherwise (and mkdir's is masked by the umask)
  const copying = mkdtempSync(join(outDir, 'copy-'));
  try {
    chmodSync(copying, 0o700);
    await root.backup(copying, false); // writes COPYING/data.mdb
    chmodSync(join(copying, 'data.mdb'), 0o600);
    renameSync(join(copying, 'data.mdb'), join(outDir, 'data.mdb'));
  } finally {
    rmSync(copying, { recursive: true, force: true });
  }
}

/** Whether a backup may be written into `dir`: it does not exist, or holds nothing. */
export function emptyOrAbsent(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}
