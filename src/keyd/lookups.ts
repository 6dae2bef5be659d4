/**
 * The read-only lookups of a gateway or inspector (a user's directory facts,
 * what kind of address an address is, a list's members for a post): answered
 * without an audit record each, since a sender on the Internet decides how
 * often they are asked (one per RCPT) and none of them discloses an identity
 * or uses a key. They are counted instead (`ssmax_keyd_lookups_total`,
 * docs/operations.md). A caller whose role may not ask is refused, and that
 * refusal is audited like any other (docs/keyd-api.md, "Secrets and audit").
 */
import type { Actor } from './service';
import { KeydError } from './errors';

/** Counts one lookup: its op and its result (`ok`, or keyd's error code, `internal` for a fault). */
export type LookupCounter = (op: string, result: string) => void;

/**
 * Runs the lookup `body` for `actor` if its role is one of `roles`, counted by `count`;
 * otherwise hands the `forbidden` refusal to `refuse`, which audits it and throws.
 */
export async function lookup<T>(
  actor: Actor,
  op: string,
  roles: readonly Actor['role'][],
  count: LookupCounter,
  refuse: (err: KeydError) => Promise<never>,
  body: () => T,
): Promise<T> {
  if (!roles.includes(actor.role)) {
    count(op, 'forbidden');
    return refuse(new KeydError('forbidden', `Role "${actor.role}" may not call ${op}`));
  }
  try {
    const result = body();
    count(op, 'ok');
    return result;
  } catch (err) {
    count(op, err instanceof KeydError ? err.code : 'internal');
    throw err;
  }
}
