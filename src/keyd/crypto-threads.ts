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
import { Worker } from 'node:worker_threads';
import { type BlindedDecryptionResponse, type ProvedTransform, answerBlindedDecryption, transformBlindedWithProof } from '../crypto';
import { CryptoError, type CryptoErrorCode } from '../crypto/errors';
import type { Group } from '../crypto/group';
import type { Rng } from '../crypto/random';

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

/** A job for a worker (crypto-worker.ts) and its answer. */
export type Job =
  | { op: 'reencrypt'; privateKey: Uint8Array; publicKey: Uint8Array; e: Uint8Array; f: Uint8Array; target: Uint8Array }
  | { op: 'decrypt'; privateKey: Uint8Array; publicKey: Uint8Array; e: Uint8Array };
export type WorkerJob = Job & { id: number };
export type WorkerAnswer =
  | {
      id: number;
      ok: true;
      u?: Uint8Array;
      v?: Uint8Array;
      z?: Uint8Array;
      c?: Uint8Array;
      s?: Uint8Array;
      s1?: Uint8Array;
      s2?: Uint8Array;
    }
  | { id: number; ok: false; code?: CryptoErrorCode; message: string };

/** The compiled worker; from the sources (tests under ts-jest), the build's copy. */
const WORKER_SCRIPT = __filename.endsWith('.ts')
  ? join(__dirname, '..', '..', 'dist', 'keyd', 'crypto-worker.js')
  : join(__dirname, 'crypto-worker.js');

interface Pending {
  resolve(a: WorkerAnswer): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  /** Jobs not yet posted: every job issued in one turn of the event loop (a batch's operations) goes in one message. */
  outbox: WorkerJob[];
}

/**
 * `threads` workers (at least 1), each taking jobs in turn; the one with the
 * fewest jobs in flight gets the next. The jobs given to a worker in one turn
 * of the event loop (the operations of one batch, docs/keyd-api.md
 * "Batches") travel to it in one message and come back in one, so the
 * hand-off costs once per batch, not once per operation. A worker that dies
 * fails its jobs (the requests answer 500 and are audited as errors) and is
 * replaced.
 */
export class ThreadedCrypto implements KeydCrypto {
  private readonly workers: Slot[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    threads: number,
    private readonly script = WORKER_SCRIPT,
  ) {
    if (!existsSync(script)) throw new Error(`keyd crypto worker "${script}" is missing (run the build)`);
    for (let i = 0; i < Math.max(1, threads); i++) this.workers.push(this.spawn());
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(this.script), pending: new Map<number, Pending>(), outbox: [] };
    slot.worker.on('message', (answers: WorkerAnswer[]) => {
      for (const a of answers) {
        const p = slot.pending.get(a.id);
        slot.pending.delete(a.id);
        p?.resolve(a);
      }
    });
    let failed = false;
    const fail = (err: Error) => {
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      for (const j of slot.outbox) j.privateKey.fill(0);
      slot.outbox = [];
      if (failed) return; // 'error' is followed by 'exit': replace once
      failed = true;
      const at = this.workers.indexOf(slot);
      if (at >= 0 && !this.closed) this.workers[at] = this.spawn();
    };
    slot.worker.on('error', fail);
    slot.worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`crypto worker exited with code ${code}`));
    });
    slot.worker.unref();
    return slot;
  }

  /** Posts a worker's outbox as one message; this thread's copies of the private key are wiped once cloned. */
  private flush(slot: Slot): void {
    const jobs = slot.outbox;
    slot.outbox = [];
    if (jobs.length === 0) return;
    try {
      slot.worker.postMessage(jobs);
    } catch (err) {
      for (const j of jobs) {
        const p = slot.pending.get(j.id);
        slot.pending.delete(j.id);
        p?.reject(err as Error);
      }
    } finally {
      for (const j of jobs) j.privateKey.fill(0);
    }
  }

  private run(job: Job): Promise<WorkerAnswer & { ok: true }> {
    if (this.closed) return Promise.reject(new Error('keyd crypto threads are closed'));
    const slot = this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, {
        resolve: (a) => (a.ok ? resolve(a) : reject(a.code ? new CryptoError(a.code, a.message) : new Error(a.message))),
        reject,
      });
      // Fresh copies: a view into a larger buffer (Node's Buffer pool) would be cloned whole.
      const copy = (u: Uint8Array) => new Uint8Array(u);
      const sent: WorkerJob =
        job.op === 'reencrypt'
          ? {
              id,
              op: job.op,
              privateKey: copy(job.privateKey),
              publicKey: copy(job.publicKey),
              e: copy(job.e),
              f: copy(job.f),
              target: copy(job.target),
            }
          : { id, op: job.op, privateKey: copy(job.privateKey), publicKey: copy(job.publicKey), e: copy(job.e) };
      if (slot.outbox.push(sent) === 1) setImmediate(() => this.flush(slot));
    });
  }

  async reencrypt(
    privateKey: Uint8Array,
    publicKey: Uint8Array,
    request: { e: Uint8Array; f: Uint8Array },
    target: Uint8Array,
  ): Promise<ProvedTransform> {
    const a = await this.run({ op: 'reencrypt', privateKey, publicKey, e: request.e, f: request.f, target });
    return { u: a.u!, v: a.v!, proof: { c: a.c!, s1: a.s1!, s2: a.s2! } };
  }

  async decrypt(privateKey: Uint8Array, publicKey: Uint8Array, request: { e: Uint8Array }): Promise<BlindedDecryptionResponse> {
    const a = await this.run({ op: 'decrypt', privateKey, publicKey, e: request.e });
    return { z: a.z!, proof: { c: a.c!, s: a.s! } };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
