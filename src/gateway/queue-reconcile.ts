/**
 * Reconciling the exactly-once record with Haraka's outbound queue after the
 * gateway stopped (crash, kill -9). A peer copy is handed over by writing it
 * to Haraka's queue (a file, fsynced and renamed into place) and then
 * recording the hand-over in LMDB (delivery.ts). A stop between the two
 * leaves the copy queued on disk while the record still shows an open
 * intent; the sender, who got no 250, retries, and without this step the
 * retry would seal a new copy the peer cannot tell from a new message.
 *
 * Each queued peer copy carries, in the notes Haraka keeps in the queue
 * file's header (its "todo"), the arrival identity and the recipients it was
 * queued for (`COPY_NOTE`). When the gateway starts, before it takes mail,
 * every queue file is read (header only) and the intents they answer are
 * recorded as handed over: the restarted Haraka delivers the queued file
 * itself, and the sender's retry finds the copy done. While Haraka delivers a
 * queued copy, the `delivered` hook records it too before Haraka removes the
 * file, so no moment exists where the copy is neither on disk nor recorded.
 */
import { closeSync, openSync, readSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The name of the note a queued peer copy carries. */
export const COPY_NOTE = 'ssmax_copy';

/** What a queued peer copy says of itself: the arrival's identity and the recipients of this copy. */
export interface QueuedCopy {
  readonly id: string;
  readonly rcpts: readonly string[];
}

/** The notes to queue a peer copy with (Haraka writes them into the queue file's header). */
export function copyNotes(copy: QueuedCopy): Record<string, unknown> {
  return { [COPY_NOTE]: { id: copy.id, rcpts: [...copy.rcpts] } };
}

/** The copy a queue file's (or a queued mail's) notes name, if they name a well-formed one. */
export function copyOf(notes: unknown): QueuedCopy | undefined {
  const c = (notes as Record<string, unknown> | undefined)?.[COPY_NOTE] as { id?: unknown; rcpts?: unknown } | undefined;
  if (!c || typeof c.id !== 'string' || !/^[0-9a-f]{16,128}$/i.test(c.id)) return undefined;
  if (!Array.isArray(c.rcpts) || !c.rcpts.every((r) => typeof r === 'string' && r.length <= 320)) return undefined;
  return { id: c.id, rcpts: c.rcpts as string[] };
}

/** A queue file's header is at most this long (it holds the envelope and notes, not the message). */
const MAX_TODO = 16 * 1024 * 1024;

/**
 * The header ("todo") of one Haraka queue file: 4 bytes of length (big-endian),
 * then the JSON. Undefined when the file is not one (or unreadable, or gone meanwhile).
 */
function todoOf(path: string): unknown {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const len = Buffer.alloc(4);
    if (readSync(fd, len, 0, 4, 0) !== 4) return undefined;
    const n = len.readUInt32BE(0);
    if (n === 0 || n > MAX_TODO) return undefined;
    const body = Buffer.alloc(n);
    if (readSync(fd, body, 0, n, 4) !== n) return undefined;
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Which file names in the queue directory Haraka loads as queued mail (outbound/qfile.js, outbound/queue.js read_parts). */
export type QueueFileTest = (name: string) => boolean;

/**
 * Haraka's rule when its own is not at hand: not a temporary file (written, not yet renamed
 * into place: "__tmp__." or "." first; Haraka deletes them when it starts), not a file it set
 * aside ("error."), and a name of its seven parts (arrival_next_attempts_pid_uid_counter_host).
 */
export const harakaQueueFile: QueueFileTest = (name) =>
  !name.startsWith('.') && !name.startsWith('__tmp__.') && !name.startsWith('error.') && name.split('_').length === 7;

/**
 * Every peer copy that sits in Haraka's queue directory `dir`: only the files
 * Haraka will load and deliver (`loads`). A temporary file being written when
 * the gateway stopped is not a copy: Haraka removes it when it starts, so
 * counting it as handed over would lose the copy.
 */
export function queuedCopies(dir: string, loads: QueueFileTest = harakaQueueFile): QueuedCopy[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return []; // no queue yet: nothing was queued
  }
  const out: QueuedCopy[] = [];
  for (const name of names) {
    if (!loads(name)) continue;
    const todo = todoOf(join(dir, name)) as { notes?: unknown } | undefined;
    const copy = copyOf(todo?.notes);
    if (copy) out.push(copy);
  }
  return out;
}
