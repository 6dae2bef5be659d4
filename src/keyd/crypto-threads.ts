/**
 * Where keyd runs the key-service half of its blinded operations: inline on
 * the main thread, or on worker threads so the HTTPS front, target checks
 * and audit appends of the next requests proceed while one computes
 * (`[limits] crypto_threads`). The answers are the same either way; the
 * private key scalar crosses to the worker in memory only (never logged,
 * never written). Errors of the crypto core come back as CryptoError with
 * their code, as inline.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type LoadedWorker, endWorker, isLoadedMessage, startWorker } from '../threads/loaded-worker';
import { type BlindedDecryptionResponse, type ProvedTransform, answerBlindedDecryption, transformBlindedWithProof } from '../crypto';
import { defaultGroup } from '../crypto/backend';
import { CryptoError } from '../crypto/errors';
import type { Group } from '../crypto/group';
import type { Rng } from '../crypto/random';
import {
  type AnswerMessage,
  type Job,
  type JobAnswer,
  type JobMessage,
  MAX_FIELD_BYTES,
  fits,
  packJobs,
  unpackAnswers,
} from './crypto-wire';
import { answerJob } from './crypto-job';

export interface KeydCrypto {
  /** With the proof of docs/format.md ("The re-encryption proof"); `publicKeyUncompressed` is X = x·G. */
  reencrypt(
    privateKey: Uint8Array,
    publicKeyUncompressed: Uint8Array,
    request: { e: Uint8Array; f: Uint8Array },
    targetPublicKey: Uint8Array,
  ): Promise<ProvedTransform>;
  decrypt(privateKey: Uint8Array, publicKeyUncompressed: Uint8Array, request: { e: Uint8Array }): Promise<BlindedDecryptionResponse>;
  close(): Promise<void>;
}

/** On the calling thread. */
export function inlineCrypto(group: Group, rng: Rng): KeydCrypto {
  return {
    reencrypt: async (privateKey, publicKey, request, target) =>
      transformBlindedWithProof(group, privateKey, request, target, rng, publicKey),
    decrypt: async (privateKey, publicKey, request) => answerBlindedDecryption(group, privateKey, publicKey, request, rng),
    close: async () => undefined,
  };
}

/** The compiled worker; from the sources (tests under ts-jest), the build's copy. */
const WORKER_SCRIPT = __filename.endsWith('.ts')
  ? join(__dirname, '..', '..', 'dist', 'keyd', 'crypto-worker.js')
  : join(__dirname, 'crypto-worker.js');

interface Pending {
  resolve(a: JobAnswer & { ok: true }): void;
  reject(e: Error): void;
}

interface Slot {
  thread: LoadedWorker;
  /** Jobs posted and not yet answered, by message id, in job order. */
  inFlight: Map<number, Pending[]>;
  /** Jobs not yet posted: every job issued in one turn of the event loop (a batch's operations) goes in one message. */
  outbox: { job: Job; pending: Pending }[];
}

/**
 * `threads` workers (at least 1), each taking jobs in turn; the one with the
 * fewest jobs in flight gets the next. The jobs given to a worker in one turn
 * of the event loop (the operations of one batch, docs/keyd-api.md
 * "Batches") travel to it packed in one transferred buffer and come back in
 * one (crypto-wire.ts), so the hand-off costs once per batch, not once per
 * operation. A worker that dies fails its jobs (the requests answer 500 and
 * are audited as errors) and is replaced.
 */
export class ThreadedCrypto implements KeydCrypto {
  private readonly workers: Slot[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    threads: number,
    private readonly script = WORKER_SCRIPT,
    /**
     * Compute a job alone in its turn on this thread when its crypto thread is idle (false: always hand over). Only
     * with the native backend, where a job takes about as long as the hand-offs it saves; the WebAssembly fallback's
     * constant-time multiplications take milliseconds, which would hold up this thread's TLS, parsing and audit.
     */
    private readonly inlineWhenIdle = defaultGroup.name === 'native',
  ) {
    if (!existsSync(script)) throw new Error(`keyd crypto worker "${script}" is missing (run the build)`);
    for (let i = 0; i < Math.max(1, threads); i++) this.workers.push(this.spawn());
  }

  private spawn(): Slot {
    const thread = startWorker(this.script);
    const slot: Slot = { thread, inFlight: new Map(), outbox: [] };
    thread.worker.on('message', (m: AnswerMessage) => {
      if (isLoadedMessage(m)) return;
      const pending = slot.inFlight.get(m.id) ?? [];
      slot.inFlight.delete(m.id);
      let answers: JobAnswer[] = [];
      try {
        answers = unpackAnswers(m);
      } catch {
        // a malformed answer: each of its jobs fails below
      }
      for (const [i, p] of pending.entries()) {
        const a = answers[i] ?? { ok: false, message: 'crypto worker fault' };
        if (a.ok) p.resolve(a);
        else p.reject(a.code ? new CryptoError(a.code, a.message) : new Error(a.message));
      }
    });
    let failed = false;
    const fail = (err: Error) => {
      failPending(slot, err);
      if (failed) return; // 'error' is followed by 'exit': replace once
      failed = true;
      const at = this.workers.indexOf(slot);
      if (at >= 0 && !this.closed) this.workers[at] = this.spawn();
    };
    thread.worker.on('error', fail);
    thread.worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`crypto worker exited with code ${code}`));
    });
    thread.worker.unref();
    return slot;
  }

  /**
   * Posts a worker's outbox as one message. The key is copied only into the
   * packed buffer, which is transferred (none stays here) or wiped. A job
   * alone in its turn, for a thread with nothing in flight, is computed here
   * instead (`inlineWhenIdle`): nothing would run beside it, and the two
   * hand-offs between threads cost more than they save (docs/keyd-api.md,
   * "Crypto threads").
   */
  private flush(slot: Slot): void {
    const queued = slot.outbox;
    slot.outbox = [];
    if (queued.length === 0) return;
    try {
      this.post(slot, queued);
    } finally {
      for (const q of queued) q.job.privateKey.fill(0); // the jobs' own copies (run): packed, transferred or used by now
    }
  }

  private post(slot: Slot, queued: Slot['outbox']): void {
    if (this.inlineWhenIdle && queued.length === 1 && slot.inFlight.size === 0) {
      const { job, pending } = queued[0]!;
      const a = answerJob(job);
      if (a.ok) pending.resolve(a);
      else pending.reject(a.code ? new CryptoError(a.code, a.message) : new Error(a.message));
      return;
    }
    const id = this.nextId++;
    const pending = queued.map((q) => q.pending);
    let buffer: ArrayBuffer | undefined;
    try {
      buffer = packJobs(queued.map((q) => q.job));
      slot.inFlight.set(id, pending);
      slot.thread.worker.postMessage({ id, buffer } satisfies JobMessage, [buffer]);
    } catch (err) {
      slot.inFlight.delete(id);
      for (const p of pending) p.reject(err as Error);
      if (buffer && buffer.byteLength > 0) new Uint8Array(buffer).fill(0); // not transferred: its keys stay here, wiped
    }
  }

  private run(job: Job): Promise<JobAnswer & { ok: true }> {
    if (this.closed) return Promise.reject(new Error('keyd crypto threads are closed'));
    // every field has a length byte: a longer one (no valid point or key is) is refused here, as the crypto core would
    if (!fits(job)) return Promise.reject(new CryptoError('bad-point', `Cannot parse a point or key longer than ${MAX_FIELD_BYTES} bytes`));
    const slot = this.workers.reduce((a, b) => (pendingOf(b) < pendingOf(a) ? b : a));
    // the job's own copy of the key: the keyring wipes a cached key it drops (a rotation, or any change of the key
    // records by another writer) before the outbox is flushed at the next turn; this copy is wiped once packed or used
    const own: Job = { ...job, privateKey: new Uint8Array(job.privateKey) };
    return new Promise((resolve, reject) => {
      // the caller's other arrays, read (copied into the packed buffer) when the outbox is flushed, never changed
      if (slot.outbox.push({ job: own, pending: { resolve, reject } }) === 1) setImmediate(() => this.flush(slot));
    });
  }

  async reencrypt(
    privateKey: Uint8Array,
    publicKey: Uint8Array,
    request: { e: Uint8Array; f: Uint8Array },
    target: Uint8Array,
  ): Promise<ProvedTransform> {
    const a = await this.run({ op: 'reencrypt', privateKey, publicKey, e: request.e, f: request.f, target });
    if (a.op !== 'reencrypt') throw new Error('crypto worker fault');
    return { u: a.u, v: a.v, proof: { c: a.c, s1: a.s1, s2: a.s2 } };
  }

  async decrypt(privateKey: Uint8Array, publicKey: Uint8Array, request: { e: Uint8Array }): Promise<BlindedDecryptionResponse> {
    const a = await this.run({ op: 'decrypt', privateKey, publicKey, e: request.e });
    if (a.op !== 'decrypt') throw new Error('crypto worker fault');
    return { z: a.z, proof: { c: a.c, s: a.s } };
  }

  async close(): Promise<void> {
    this.closed = true;
    // jobs not answered yet fail now (their requests answer 500), rather than wait for threads that are going away
    for (const slot of this.workers) failPending(slot, new Error('keyd crypto threads are closed'));
    await Promise.all(this.workers.map((w) => endWorker(w.thread))); // never inside a module load: src/threads/loaded-worker.ts
  }
}

/** Fails every job of `slot` not answered yet (posted or waiting to be). */
function failPending(slot: Slot, err: Error): void {
  for (const ps of slot.inFlight.values()) for (const p of ps) p.reject(err);
  slot.inFlight.clear();
  for (const { job, pending } of slot.outbox) {
    job.privateKey.fill(0); // the job's own copy of the key (run): never sent now
    pending.reject(err);
  }
  slot.outbox = [];
}

/** Jobs a worker has not answered yet (posted or waiting to be). */
function pendingOf(slot: Slot): number {
  let n = slot.outbox.length;
  for (const ps of slot.inFlight.values()) n += ps.length;
  return n;
}
