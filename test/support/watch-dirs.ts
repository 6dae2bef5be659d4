/**
 * Watches folders (inotify, through fs.watch) while something runs and
 * reports every entry created or changed there — and whether any file written
 * held a given marker — for the "no plaintext on disk" checks. Files that
 * live a few milliseconds are seen too: the event names them even when the
 * file is gone by the time it is read.
 */
import { type FSWatcher, readFileSync, statSync, watch } from 'node:fs';
import { join } from 'node:path';

export interface Seen {
  /** Every entry an event named, as dir/name. */
  readonly entries: string[];
  /** Files that still existed when read and held the marker. */
  readonly withMarker: string[];
}

export async function watchDuring<T>(dirs: readonly { readonly dir: string; readonly recursive: boolean }[], marker: Buffer, run: () => Promise<T>): Promise<{ result: T; seen: Seen }> {
  const entries: string[] = [];
  const withMarker: string[] = [];
  const watchers: FSWatcher[] = dirs.map(({ dir, recursive }) => watch(dir, { recursive }, (_event, name) => {
    if (!name) return;
    const path = join(dir, name.toString());
    entries.push(path);
    try {
      if (statSync(path).isFile() && readFileSync(path).includes(marker)) withMarker.push(path);
    } catch {
      /* already gone */
    }
  }));
  try {
    const result = await run();
    await new Promise((r) => setTimeout(r, 300)); // let the last events arrive
    return { result, seen: { entries, withMarker } };
  } finally {
    for (const w of watchers) w.close();
  }
}
