/**
 * POST /v1/batch: many blinded operations in one request (docs/keyd-api.md,
 * "Batches"). Each operation is a re-encryption or a decryption with its own
 * key id, blinded points and (for re-encryptions) its own target; each is
 * checked and authorised on its own — the caller's role, the target — exactly
 * as the single endpoints do, and each gets its own audit record. The records
 * of the whole batch are written in one audit transaction (one durable
 * commit) before any answer leaves; if that write fails, no answer leaves
 * (503 audit-failed for the request). A refused operation is refused in its
 * own slot of the answer; the others proceed.
 */
import type { AuditLog } from './audit';
import { KEYD_DEFAULTS } from './config';
import { KeydError } from './errors';
import type { Actor, Evaluated, KeyService } from './service';

/** Default most operations in one batch (`[limits] max_batch_ops`). */
export const DEFAULT_MAX_BATCH_OPS: number = KEYD_DEFAULTS.max_batch_ops;

export type BatchOp = 'reencrypt' | 'decrypt';

/** One slot of the answer: the single endpoint's answer, or its error object with the status it would have had. */
export type BatchSlot =
  Record<string, unknown> | { error: { code: string; message: string; status: number; details?: Record<string, string> } };

export class BatchHandler {
  /** `log`: where an operation's internal error is written (its stack; the caller sees only "internal"), as the server does for single requests. */
  constructor(
    private readonly service: KeyService,
    private readonly audit: AuditLog,
    private readonly clock: () => Date,
    private readonly maxOps = DEFAULT_MAX_BATCH_OPS,
    private readonly log?: (line: string) => void,
  ) {}

  /** `body`: `{ ops: [{ op: "reencrypt" | "decrypt", ...the single endpoint's fields }] }`; answers `{ results: [...] }` in the same order. */
  async run(actor: Actor, body: Record<string, unknown>): Promise<{ results: BatchSlot[] }> {
    const ops = body.ops;
    if (!Array.isArray(ops) || ops.length === 0) throw new KeydError('bad-request', 'Field "ops" must be a non-empty array of operations');
    if (ops.length > this.maxOps)
      throw new KeydError('too-large', `A batch holds at most ${this.maxOps} operations (got ${ops.length}); split it`);
    const now = this.clock();
    const done = await Promise.all(
      ops.map((raw, i): Promise<Evaluated<Record<string, unknown>>> => {
        if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return Promise.resolve(this.malformed(actor, i, 'must be an object'));
        const o = raw as Record<string, unknown>;
        if (o.op !== 'reencrypt' && o.op !== 'decrypt')
          return Promise.resolve(this.malformed(actor, i, 'has no "op" of "reencrypt" or "decrypt"'));
        return this.service.blindedOperation(actor, o.op, o);
      }),
    );
    // Blinded operations change no state: the records alone, all in one transaction, before any answer.
    await this.audit.appendMany(
      done.map((d) => d.record),
      now,
    );
    for (const d of done)
      if (!d.ok && !(d.error instanceof KeydError))
        this.log?.(`keyd: internal error in a batch operation: ${(d.error as Error)?.stack ?? String(d.error)}`);
    return { results: done.map((d) => (d.ok ? d.result : slotOf(d.error))) };
  }

  /** An entry that is no operation at all: refused in its slot and audited as such. */
  private malformed(actor: Actor, i: number, what: string): Evaluated<Record<string, unknown>> {
    const error = new KeydError('bad-request', `Operation ${i} ${what}`);
    return {
      ok: false,
      error,
      record: { actor: actor.name, role: actor.role, op: 'batch', result: 'refused', reason: `bad-request: ${error.message}` },
    };
  }
}

function slotOf(err: unknown): BatchSlot {
  const e = err instanceof KeydError ? err : new KeydError('internal', 'Internal error');
  return { error: { code: e.code, message: e.message, status: e.status, ...(e.details ? { details: e.details } : {}) } };
}
