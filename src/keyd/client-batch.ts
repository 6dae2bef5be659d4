/**
 * Coalescing of blinded operations on their way to keyd (docs/keyd-api.md,
 * "Batches"): re-encryptions and decryptions issued within a short window —
 * by default, in the same turn of the event loop, such as one per recipient
 * of a message, or by concurrent messages — travel in one POST /v1/batch,
 * transparently to the callers: each gets the answer, or the error, that the
 * single endpoint would have given it. A refusal of one operation fails only
 * its own caller; a failure of the whole request (keyd unreachable, busy,
 * timeout) fails every operation in it, each with keyd's error, as a single
 * call would have failed.
 *
 * A list's fan-out (src/lists/expand.ts) uses the same requests without
 * waiting for a window: `many` sends an explicit set of operations at once,
 * in batches of up to FANOUT_MAX_OPS (keyd's default `[limits]
 * max_batch_ops`), a few batches in flight, each operation settling on its own.
 *
 * An operation alone in its window goes to the single endpoint; a keyd that
 * does not know /v1/batch (404) is asked one operation at a time; a batch
 * keyd finds too large (413: fewer operations allowed there, or too many
 * bytes) is split in halves until it fits.
 */
import { type KeydClient, KeydClientError } from './client';

export interface BatchSettings {
  /** How long the first operation waits for others (ms); 0: only those issued in the same turn of the event loop. */
  readonly windowMs: number;
  /** Most operations in one batch (1: never batch). At most keyd's `[limits] max_batch_ops`. */
  readonly maxOps: number;
  /** Most request body bytes in one batch; within keyd's `[limits] max_body_bytes`. */
  readonly maxBytes: number;
}

export const BATCH_DEFAULTS: BatchSettings = { windowMs: 0, maxOps: 8, maxBytes: 60000 };

/**
 * An explicit fan-out (`many`): operations per batch — keyd's default `[limits] max_batch_ops`, so
 * that a post to 1,000 members takes 16 requests; a keyd set lower answers 413 and the batches are
 * halved — and batches in flight at once (keyd computes one while the next travels, without taking
 * all of keyd's `max_in_flight` for one post).
 */
export const FANOUT_MAX_OPS = 64;
export const FANOUT_IN_FLIGHT = 4;

export type BlindedOp = 'reencrypt' | 'decrypt';

interface Queued {
  readonly op: BlindedOp;
  readonly body: Record<string, unknown>;
  resolve(value: Record<string, unknown>): void;
  reject(err: unknown): void;
}

interface Slot {
  error?: { code?: unknown; message?: unknown; status?: unknown; details?: unknown };
}

export class KeydBatcher {
  private queue: Queued[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** Requests sent, single or batch (for tests and the bench). */
  requests = 0;

  constructor(
    private readonly client: KeydClient,
    private readonly settings: BatchSettings = BATCH_DEFAULTS,
  ) {}

  /** One blinded operation: `body` is what the single endpoint takes; resolves with what it answers. */
  call<T = Record<string, unknown>>(op: BlindedOp, body: Record<string, unknown>): Promise<T> {
    if (this.settings.maxOps <= 1) return this.single(op, body) as Promise<T>;
    const size = Buffer.byteLength(JSON.stringify(body)) + 20;
    if (this.queue.length > 0 && this.bytes + size > this.settings.maxBytes) this.flush();
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, body, resolve: resolve as (v: Record<string, unknown>) => void, reject });
      this.bytes += size;
      if (this.queue.length >= this.settings.maxOps) this.flush();
      else if (!this.timer)
        this.timer = this.settings.windowMs > 0 ? setTimeout(() => this.flush(), this.settings.windowMs) : setImmediate(() => this.flush());
    });
  }

  private single(op: BlindedOp, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.requests++;
    return this.client.call('POST', `/v1/${op}`, body);
  }

  /**
   * An explicit set of operations of one kind, sent now (no window): in batches of at most
   * FANOUT_MAX_OPS operations and `maxBytes`, FANOUT_IN_FLIGHT at a time. Each operation settles
   * on its own, as `call` would: its answer, or its refusal, or the whole request's failure.
   * With `maxOps` 1 (never batch) each goes to the single endpoint.
   */
  async many<T = Record<string, unknown>>(op: BlindedOp, bodies: readonly Record<string, unknown>[]): Promise<PromiseSettledResult<T>[]> {
    const perBatch = this.settings.maxOps <= 1 ? 1 : FANOUT_MAX_OPS;
    const batches: Queued[][] = [];
    const settled: Promise<T>[] = [];
    let batch: Queued[] = [];
    let bytes = 0;
    for (const body of bodies) {
      const size = Buffer.byteLength(JSON.stringify(body)) + 20;
      if (batch.length > 0 && (batch.length >= perBatch || bytes + size > this.settings.maxBytes)) {
        batches.push(batch);
        batch = [];
        bytes = 0;
      }
      const into = batch;
      settled.push(
        new Promise<T>((resolve, reject) => into.push({ op, body, resolve: resolve as (v: Record<string, unknown>) => void, reject })),
      );
      bytes += size;
    }
    if (batch.length > 0) batches.push(batch);
    const all = Promise.allSettled(settled); // handled from the start: a refusal settles before the last batch is sent
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < batches.length) await this.send(batches[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(FANOUT_IN_FLIGHT, batches.length) }, worker));
    return all;
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = undefined;
    }
    const batch = this.queue;
    this.queue = [];
    this.bytes = 0;
    void this.send(batch);
  }

  /** Sends `batch` (one request, or the single endpoint for one operation); resolves when every operation in it has settled. Never rejects. */
  private async send(batch: readonly Queued[]): Promise<void> {
    if (batch.length === 0) return;
    if (batch.length === 1) {
      const q = batch[0]!;
      await this.single(q.op, q.body).then(q.resolve, q.reject);
      return;
    }
    this.requests++;
    let r: { results?: unknown };
    try {
      r = await this.client.call<{ results?: unknown }>('POST', '/v1/batch', { ops: batch.map((q) => ({ ...q.body, op: q.op })) });
    } catch (err) {
      if (err instanceof KeydClientError && err.status === 404) {
        // an older keyd: one at a time
        await Promise.all(batch.map((q) => this.single(q.op, q.body).then(q.resolve, q.reject)));
        return;
      }
      if (err instanceof KeydClientError && err.status === 413) {
        // a smaller batch limit there (operations or bytes): halves, until they fit
        const half = Math.ceil(batch.length / 2);
        await Promise.all([this.send(batch.slice(0, half)), this.send(batch.slice(half))]);
        return;
      }
      for (const q of batch) q.reject(err);
      return;
    }
    const results = r.results;
    if (!Array.isArray(results) || results.length !== batch.length) {
      const err = new KeydClientError(
        'bad-response',
        `keyd answered a batch of ${batch.length} with ${Array.isArray(results) ? results.length : 'no'} results`,
        502,
      );
      for (const q of batch) q.reject(err);
      return;
    }
    batch.forEach((q, i) => {
      const slot = results[i] as Slot | null;
      if (!slot || typeof slot !== 'object')
        q.reject(new KeydClientError('bad-response', 'keyd answered a batch slot that is not an object', 502));
      else if (slot.error) q.reject(slotError(slot.error));
      else q.resolve(slot as Record<string, unknown>);
    });
  }
}

function slotError(e: NonNullable<Slot['error']>): KeydClientError {
  const status = typeof e.status === 'number' && e.status >= 400 && e.status < 600 ? e.status : 502;
  const details = e.details && typeof e.details === 'object' ? (e.details as Record<string, string>) : undefined;
  return new KeydClientError(
    typeof e.code === 'string' ? e.code : 'error',
    typeof e.message === 'string' ? e.message : `keyd refused the operation (${status})`,
    status,
    details,
  );
}
