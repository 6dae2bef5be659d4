/**
 * Watches folders (inotify, through fs.watch) while something runs and
 * reports every entry created or changed there — and whether any file written
 * held a given marker — for the "no plaintext on disk" checks. Files that
 * live a few milliseconds are seen too: the event names them even when the
 * file is gone by the time it is read. For a tree, every folder gets its own
 * watch (node's recursive watch on Linux misses short-lived files), and a
 * folder created during the run is watched as soon as its event arrives.
 * Before the run, a probe file in every watched folder must be seen: a watch
 * that is not live fails the check instead of passing it.
 */
import { randomBytes } from 'node:crypto';
import { type FSWatcher, readFileSync, readdirSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Seen {
  /** Every entry an event named, as dir/name. */
  readonly entries: string[];
  /** Files that still existed when read and held the marker. */
  readonly withMarker: string[];
}

export async function watchDuring<T>(
  dirs: readonly { readonly dir: string; readonly recursive: boolean }[],
  marker: Buffer,
  run: () => Promise<T>,
): Promise<{ result: T; seen: Seen }> {
  const entries: string[] = [];
  const withMarker: string[] = [];
  const watchers = new Map<string, FSWatcher>();
  const add = (dir: string, recursive: boolean) => {
    if (watchers.has(dir)) return;
    try {
      watchers.set(
        dir,
        watch(dir, (_event, name) => {
          if (!name) return;
          const path = join(dir, name.toString());
          entries.push(path);
          try {
            const st = statSync(path);
            if (st.isDirectory() && recursive) add(path, true);
            else if (st.isFile() && readFileSync(path).includes(marker)) withMarker.push(path);
          } catch {
            /* already gone */
          }
        }),
      );
    } catch {
      return; // gone before it could be watched
    }
    if (!recursive) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) add(join(dir, e.name), true);
  };
  for (const { dir, recursive } of dirs) add(dir, recursive);
  try {
    const probes = [...watchers.keys()].map((dir) => join(dir, `.watch-probe-${randomBytes(6).toString('hex')}`));
    for (const p of probes) {
      writeFileSync(p, 'probe');
      rmSync(p);
    }
    const until = Date.now() + 5000;
    while (!probes.every((p) => entries.includes(p))) {
      if (Date.now() > until) throw new Error(`watch not live for ${probes.filter((p) => !entries.includes(p)).join(', ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    entries.length = 0;
    const result = await run();
    await new Promise((r) => setTimeout(r, 300)); // let the last events arrive
    return { result, seen: { entries, withMarker } };
  } finally {
    for (const w of watchers.values()) w.close();
  }
}
