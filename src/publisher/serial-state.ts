/**
 * The publisher's serial, persisted so it grows strictly across restarts
 * (peers refuse a bundle whose serial is below the last one they accepted:
 * docs/pki.md, "replayed"). The file is small JSON, replaced atomically
 * (write to a temporary file, fsync, rename), and is written *before* the
 * bundle with that serial is served: a crash can skip a serial, never reuse one.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../fs/atomic';
import { cannotRead, errnoCode } from '../errors/errno';
import { FOLDER_LOCK_SUPPORTED, type FolderLock, type FolderLockKind, holdFolder } from '../fs/folder-lock';

/** The state file's folder lock (src/fs/folder-lock.ts), held for as long as a publisher runs. */
const PUBLISHER_LOCK: FolderLockKind = { secretFile: 'publisher-lock.secret', prefix: 'ssmax-publisher-' };

/** Another publisher runs with this state file. */
export class StateInUseError extends Error {
  override readonly name = 'StateInUseError';
  constructor(
    readonly file: string,
    readonly pid: number | undefined,
  ) {
    super(
      `publisher state "${file}" is in use by another publisher (${pid === undefined ? 'its pid unknown' : `pid ${pid}`}): one publisher per organisation's serial (two would issue the same serials with different bundles, or one fall behind the other, which peers refuse as replayed); stop it first (docs/scaling.md)`,
    );
  }
}

/**
 * Takes the lock of the folder of `file` for this process, or throws StateInUseError naming the publisher that
 * holds it: the serial is read once and grown in memory, so a second publisher on the same state would reuse it.
 * Without lock support (not Linux) nothing is held.
 */
export async function lockPublisherState(file: string): Promise<FolderLock> {
  if (!FOLDER_LOCK_SUPPORTED) return { release: () => Promise.resolve() };
  mkdirSync(dirname(file), { recursive: true });
  const held = await holdFolder(dirname(file), PUBLISHER_LOCK);
  if ('heldBy' in held) throw new StateInUseError(file, held.heldBy);
  return held;
}

export interface PublicationRecord {
  readonly serial: number;
  readonly id: string;
  readonly issued: string;
  readonly expires: string;
}

export class SerialState {
  private last: PublicationRecord | undefined;

  constructor(private readonly file: string) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw new Error(cannotRead('publisher state', file, err), { cause: err });
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new Error(`Cannot read publisher state "${file}": not JSON`);
    }
    const serial = (doc as { serial?: unknown })?.serial;
    if (typeof serial !== 'number' || !Number.isSafeInteger(serial) || serial < 0)
      throw new Error(`Cannot read publisher state "${file}": serial "${String(serial)}" is not a non-negative integer`);
    this.last = doc as PublicationRecord;
  }

  /** The last serial written, or -1. */
  get serial(): number {
    return this.last?.serial ?? -1;
  }

  get lastPublication(): PublicationRecord | undefined {
    return this.last;
  }

  /** Persists the publication durably; throws when it cannot (the bundle must then not be served). */
  record(rec: PublicationRecord): void {
    if (rec.serial <= this.serial) throw new Error(`Cannot record serial ${rec.serial}: not above ${this.serial}`);
    writeFileAtomic(this.file, `${JSON.stringify(rec, null, 2)}\n`, 0o600);
    this.last = rec;
  }
}
