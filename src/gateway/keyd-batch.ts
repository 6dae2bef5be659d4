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
 * An operation alone in its window goes to the single endpoint; a keyd that
 * does not know /v1/batch (404) or takes fewer operations per batch (413) is
 * asked one operation at a time.
 */
import { type KeydClient, KeydClientError } from '../keyd/client';

export interface BatchSettings {
  /** How long the first operation waits for others (ms); 0: only those issued in the same turn of the event loop. */
  readonly windowMs: number;
  /** Most operations in one batch (1: never batch). At most keyd's `[limits] max_batch_ops`. */
  readonly maxOps: number;
  /** Most request body bytes in one batch; within keyd's `[limits] max_body_bytes`. */
  readonly maxBytes: number;
}

export const BATCH_DEFAULTS: BatchSettings = { windowMs: 0, maxOps: 8, maxBytes: 60000 };

export type BlindedOp = 'reencrypt' | 'decrypt';

interface Queued {
  readonly op: BlindedOp;
  readonly body: Record<string, unknown>;
  resolve(value: Record<string, unknown>): void;
  reject(err: unknown): void;
}

interface Slot { error?: { code?: unknown; message?: unknown; status?: unknown; details?: unknown } }

export class KeydBatcher {
  private queue: Queued[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** Requests sent, single or batch (for tests and the bench). */
  requests = 0;

  constructor(private readonly client: KeydClient, private readonly settings: BatchSettings = BATCH_DEFAULTS) {}

  /** One blinded operation: `body` is what the single endpoint takes; resolves with what it answers. */
  call<T = Record<string, unknown>>(op: BlindedOp, body: Record<string, unknown>): Promise<T> {
    if (this.settings.maxOps <= 1) return this.single(op, body) as Promise<T>;
    const size = Buffer.byteLength(JSON.stringify(body)) + 20;
    if (this.queue.length > 0 && this.bytes + size > this.settings.maxBytes) this.flush();
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, body, resolve: resolve as (v: Record<string, unknown>) => void, reject });
      this.bytes += size;
      if (this.queue.length >= this.settings.maxOps) this.flush();
      else if (!this.timer) this.timer = this.settings.windowMs > 0 ? setTimeout(() => this.flush(), this.settings.windowMs) : setImmediate(() => this.flush());
    });
  }

  private single(op: BlindedOp, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.requests++;
    return this.client.call('POST', `/v1/${op}`, body);
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
    if (batch.length === 0) return;
    if (batch.length === 1) {
      const q = batch[0]!;
      this.single(q.op, q.body).then(q.resolve, q.reject);
      return;
    }
    this.requests++;
    this.client.call<{ results?: unknown }>('POST', '/v1/batch', { ops: batch.map((q) => ({ ...q.body, op: q.op })) }).then(
      (r) => {
        const results = r.results;
        if (!Array.isArray(results) || results.length !== batch.length) {
          const err = new KeydClientError('bad-response', `keyd answered a batch of ${batch.length} with ${Array.isArray(results) ? results.length : 'no'} results`, 502);
          for (const q of batch) q.reject(err);
          return;
        }
        batch.forEach((q, i) => {
          const slot = results[i] as Slot | null;
          if (!slot || typeof slot !== 'object') q.reject(new KeydClientError('bad-response', 'keyd answered a batch slot that is not an object', 502));
          else if (slot.error) q.reject(slotError(slot.error));
          else q.resolve(slot as Record<string, unknown>);
        });
      },
      (err: unknown) => {
        if (err instanceof KeydClientError && (err.status === 404 || err.status === 413)) {
          // an older keyd, or a smaller batch limit there: one at a time
          for (const q of batch) this.single(q.op, q.body).then(q.resolve, q.reject);
          return;
        }
        for (const q of batch) q.reject(err);
      },
    );
  }
}

function slotError(e: NonNullable<Slot['error']>): KeydClientError {
  const status = typeof e.status === 'number' && e.status >= 400 && e.status < 600 ? e.status : 502;
  const details = e.details && typeof e.details === 'object' ? (e.details as Record<string, string>) : undefined;
  return new KeydClientError(typeof e.code === 'string' ? e.code : 'error', typeof e.message === 'string' ? e.message : `keyd refused the operation (${status})`, status, details);
}
