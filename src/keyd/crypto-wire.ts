/**
 * The messages between keyd's main thread and its crypto threads
 * (crypto-threads.ts, crypto-worker.ts). The jobs of one batch travel packed
 * in one ArrayBuffer that is transferred, not cloned, and come back the same
 * way: no structured clone of five byte arrays per job. Transferring also
 * means the main thread keeps no copy of the private key once a batch has
 * left: the buffer is detached there, and the worker wipes it after computing.
 *
 * A job: its kind (1 re-encryption, 2 decryption), then its fields, each one
 * length byte and its bytes — re-encryption: private key, public key, E′, F′,
 * target; decryption: private key, public key, E′. An answer: 1 and its
 * fields (u, v, c, s1, s2, or z, c, s), or 0 for a job that failed, whose
 * error travels in `failures` beside the buffer.
 */
import type { CryptoErrorCode } from '../crypto/errors';

export type Job =
  | { op: 'reencrypt'; privateKey: Uint8Array; publicKey: Uint8Array; e: Uint8Array; f: Uint8Array; target: Uint8Array }
  | { op: 'decrypt'; privateKey: Uint8Array; publicKey: Uint8Array; e: Uint8Array };

export type JobAnswer =
  | { ok: true; op: 'reencrypt'; u: Uint8Array; v: Uint8Array; c: Uint8Array; s1: Uint8Array; s2: Uint8Array }
  | { ok: true; op: 'decrypt'; z: Uint8Array; c: Uint8Array; s: Uint8Array }
  | { ok: false; code?: CryptoErrorCode; message: string };

/** A batch of packed jobs, as posted to a worker (its buffer in the transfer list). */
export interface JobMessage {
  readonly id: number;
  readonly buffer: ArrayBuffer;
}

/** The answers to one JobMessage, in job order. */
export interface AnswerMessage {
  readonly id: number;
  readonly buffer: ArrayBuffer;
  readonly failures: readonly { readonly index: number; readonly code?: CryptoErrorCode; readonly message: string }[];
}

/** The longest field a job or an answer can carry (one length byte). */
export const MAX_FIELD_BYTES = 255;

const OPS = { reencrypt: 1, decrypt: 2 } as const;

function fieldsOf(job: Job): readonly Uint8Array[] {
  return job.op === 'reencrypt' ? [job.privateKey, job.publicKey, job.e, job.f, job.target] : [job.privateKey, job.publicKey, job.e];
}

function answerFieldsOf(a: JobAnswer & { ok: true }): readonly Uint8Array[] {
  return a.op === 'reencrypt' ? [a.u, a.v, a.c, a.s1, a.s2] : [a.z, a.c, a.s];
}

/** True iff every field of `job` fits its length byte. */
export function fits(job: Job): boolean {
  return fieldsOf(job).every((f) => f.length <= MAX_FIELD_BYTES);
}

function pack(kinds: readonly number[], fields: readonly (readonly Uint8Array[])[]): ArrayBuffer {
  let size = 0;
  for (const fs of fields) for (const f of fs) size += 1 + f.length;
  const out = new Uint8Array(kinds.length + size);
  let at = 0;
  for (const [i, kind] of kinds.entries()) {
    out[at++] = kind;
    for (const f of fields[i]!) {
      if (f.length > MAX_FIELD_BYTES) throw new RangeError(`a crypto-thread field of ${f.length} bytes does not fit`);
      out[at++] = f.length;
      out.set(f, at);
      at += f.length;
    }
  }
  return out.buffer;
}

/** Reads `count` fields at `at`: views into `bytes`, no copies. */
function readFields(bytes: Uint8Array, at: number, count: number): { fields: Uint8Array[]; at: number } {
  const fields: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const n = bytes[at++];
    if (n === undefined || at + n > bytes.length) throw new RangeError('truncated crypto-thread message');
    fields.push(bytes.subarray(at, at + n));
    at += n;
  }
  return { fields, at };
}

export function packJobs(jobs: readonly Job[]): ArrayBuffer {
  return pack(
    jobs.map((j) => OPS[j.op]),
    jobs.map(fieldsOf),
  );
}

/** The jobs of a packed buffer, their fields views into it (wipe the buffer, and so every copy, when done). */
export function unpackJobs(buffer: ArrayBuffer): Job[] {
  const bytes = new Uint8Array(buffer);
  const jobs: Job[] = [];
  let at = 0;
  while (at < bytes.length) {
    const kind = bytes[at++];
    if (kind === OPS.reencrypt) {
      const r = readFields(bytes, at, 5);
      const [privateKey, publicKey, e, f, target] = r.fields as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
      jobs.push({ op: 'reencrypt', privateKey, publicKey, e, f, target });
      at = r.at;
    } else if (kind === OPS.decrypt) {
      const r = readFields(bytes, at, 3);
      const [privateKey, publicKey, e] = r.fields as [Uint8Array, Uint8Array, Uint8Array];
      jobs.push({ op: 'decrypt', privateKey, publicKey, e });
      at = r.at;
    } else {
      throw new RangeError(`unknown crypto-thread job kind ${String(kind)}`);
    }
  }
  return jobs;
}

export function packAnswers(id: number, answers: readonly JobAnswer[]): AnswerMessage {
  const failures: { index: number; code?: CryptoErrorCode; message: string }[] = [];
  const kinds: number[] = [];
  const fields: (readonly Uint8Array[])[] = [];
  for (const [index, a] of answers.entries()) {
    if (a.ok) {
      kinds.push(OPS[a.op]);
      fields.push(answerFieldsOf(a));
    } else {
      kinds.push(0);
      fields.push([]);
      failures.push({ index, ...(a.code ? { code: a.code } : {}), message: a.message });
    }
  }
  return { id, buffer: pack(kinds, fields), failures };
}

/** The answers of a message, in job order; answer fields are views into its buffer. */
export function unpackAnswers(m: AnswerMessage): JobAnswer[] {
  const bytes = new Uint8Array(m.buffer);
  const failed = new Map(m.failures.map((f) => [f.index, f]));
  const answers: JobAnswer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const kind = bytes[at++];
    const index = answers.length;
    if (kind === 0) {
      const f = failed.get(index);
      answers.push({ ok: false, ...(f?.code ? { code: f.code } : {}), message: f?.message ?? 'crypto worker fault' });
    } else if (kind === OPS.reencrypt) {
      const r = readFields(bytes, at, 5);
      const [u, v, c, s1, s2] = r.fields as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
      answers.push({ ok: true, op: 'reencrypt', u, v, c, s1, s2 });
      at = r.at;
    } else if (kind === OPS.decrypt) {
      const r = readFields(bytes, at, 3);
      const [z, c, s] = r.fields as [Uint8Array, Uint8Array, Uint8Array];
      answers.push({ ok: true, op: 'decrypt', z, c, s });
      at = r.at;
    } else {
      throw new RangeError(`unknown crypto-thread answer kind ${String(kind)}`);
    }
  }
  return answers;
}
