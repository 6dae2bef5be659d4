/**
 * Held messages and the organisation's key versions (docs/inspection.md, "Held messages and key versions").
 *
 * A message held in the quarantine or a list's moderation queue stays encrypted to the version of the
 * organisation's key it arrived under, for as long as it is held. keyd retires a version at its renewal and
 * destroys it `grace_days` later, whatever is still held: a message still held then could never be released.
 * This job keeps every held message openable: an entry whose capsule is for a version older than the current
 * one gets that capsule re-encrypted by keyd to the current version (target `own-newer`, audited by keyd as
 * every re-encryption), kept beside the message in the entry (`capsule`, with `keyId`). The message itself is
 * kept as it arrived: its seals and its author's signature cover its capsules, and the release must still
 * verify them. A release opens the message with the entry's capsule (src/gateway/inspection.ts heldCapsules).
 *
 * One LMDB write transaction per entry, after keyd answered: a run that stops midway (a crash, keyd
 * unreachable) leaves each entry as it was or moved, both openable, and the next run goes on.
 *
 * Every process that keeps messages for a later release runs it for its stores, the same way (`startHeldKeys`):
 * at start and every HELD_KEYS_INTERVAL_MS, well within any grace period, one run at a time, by one process per
 * store: the gateway (Haraka's master or single process) for its quarantine with inline inspection and its lists'
 * moderation queue, the inspector process (`ssmax inspector run`, [inspection] mode=remote) for its quarantine.
 */
import type { Capsule } from '../crypto';
import { formatCapsule, listCapsules, parseCapsule } from '../envelope';
import type { KeydOps } from '../keyd/client-ops';
import { capsuleFor } from '../mail/message-checks';
import { GatewayError } from '../mail/replies';
import type { QuarantineStore } from './quarantine';

/** How often the gateway looks at its held messages' key versions (and once at start): hourly, against a grace of days. */
export const HELD_KEYS_INTERVAL_MS = 3_600_000;

/** What one run did: entries moved to the current version, entries that could not be (with why, logged), whether it stopped early. */
export interface HeldKeysRun {
  readonly moved: number;
  readonly failed: number;
  /** keyd unreachable or refusing for a while: the run stopped; the next one starts again. */
  readonly stopped: boolean;
}

/** The version number of a key id `<domain>:v<N>` (NaN when it names none). */
function versionOf(keyId: string): number {
  const m = /:v(\d+)$/.exec(keyId);
  return m ? Number(m[1]) : NaN;
}

/**
 * Moves every entry of `store` held under an older version of `domain`'s key to the current one. `name` names
 * the store in the log lines (`quarantine`, `list moderation`). What fails is logged, and counted. `stop`: asked
 * before each entry; true ends the run there (the gateway closing), the entries not reached left for the next run.
 */
export async function moveHeldKeys(
  store: QuarantineStore,
  keyd: Pick<KeydOps, 'orgKeys' | 'reencrypt'>,
  domain: string,
  name: string,
  log: (line: string) => void,
  stop: () => boolean = () => false,
): Promise<HeldKeysRun> {
  let moved = 0;
  let failed = 0;
  let current: string;
  try {
    current = (await keyd.orgKeys()).current;
  } catch (err) {
    log(`ssmax held keys: ${name}: the current key version is not known now (${(err as Error).message}); tried again later`);
    return { moved, failed, stopped: true };
  }
  const now = versionOf(current);
  for (const id of store.ids()) {
    if (stop()) return { moved, failed, stopped: true };
    const meta = store.summary(id);
    if (!meta || meta.keyId === current) continue;
    let capsule: Capsule;
    try {
      if (meta.capsule !== undefined) capsule = parseCapsule(meta.capsule);
      else {
        const entry = store.get(id);
        if (!entry) continue; // deleted meanwhile
        capsule = capsuleFor(domain, await listCapsules(entry.message));
      }
    } catch (err) {
      failed++;
      log(`ssmax held keys: ${name}: ${id}: no capsule for ${domain} to move (${(err as Error).message})`);
      continue;
    }
    // already under the current version (or a newer one this run did not know of): recorded, so it is not read again
    if (!(versionOf(capsule.keyId) < now)) {
      await store.setKey(id, meta.capsule ?? null, capsule.keyId, meta.capsule);
      continue;
    }
    try {
      const r = await keyd.reencrypt(capsule, { kind: 'own-newer' }, current);
      if (await store.setKey(id, meta.capsule ?? null, r.capsule.keyId, formatCapsule(r.capsule))) moved++;
    } catch (err) {
      failed++;
      const destroyed = err instanceof GatewayError && err.kind === 'keyDestroyed';
      log(
        destroyed
          ? `ssmax held keys: ${name}: ${id}: its key version ${capsule.keyId} was destroyed before it was moved; it cannot be released (${err.message})`
          : `ssmax held keys: ${name}: ${id}: not moved from ${capsule.keyId} to ${current}: ${(err as Error).message}`,
      );
      // keyd unavailable (4xx): the others would fail the same way; the next run goes on
      if (err instanceof GatewayError && err.temporary) return { moved, failed, stopped: true };
    }
  }
  if (moved > 0) log(`ssmax held keys: ${name}: ${moved} held message(s) moved to ${current}`);
  return { moved, failed, stopped: false };
}

/** A store of messages held for a later release, and its name in the log lines (`quarantine`, `list moderation`). */
export interface HeldStore {
  readonly store: QuarantineStore;
  readonly name: string;
}

/** The held-keys job of one process, started by startHeldKeys. */
export interface HeldKeysJob {
  /** One run now over every store (or the run under way: one at a time); resolves when it ends, never rejects. */
  run(): Promise<void>;
  /** Stops the schedule; a run under way ends at its next entry (the rest is moved at the next start). */
  close(): Promise<void>;
}

/**
 * Keeps the messages of `stores` openable across key versions: one run at start (next turn of the event loop) and
 * every `intervalMs`, one run at a time, each store in turn (moveHeldKeys; an empty store costs no keyd call).
 * `runner` false (a Haraka cluster worker: its master runs the job for the stores the workers share) starts no
 * schedule, and `run` does nothing. A failed run is logged; the next one starts again.
 */
export function startHeldKeys(
  stores: readonly HeldStore[],
  keyd: Pick<KeydOps, 'orgKeys' | 'reencrypt'>,
  domain: string,
  log: (line: string) => void,
  opts: { readonly runner?: boolean; readonly intervalMs?: number } = {},
): HeldKeysJob {
  const runner = opts.runner ?? true;
  let under: Promise<void> | undefined;
  let closing = false;
  const run = (): Promise<void> =>
    !runner || closing
      ? Promise.resolve()
      : (under ??= (async () => {
          for (const { store, name } of stores)
            if (!closing && store.heldCount() > 0) await moveHeldKeys(store, keyd, domain, name, log, () => closing);
        })()
          .catch((err: unknown) => log(`ssmax held keys: run failed: ${(err as Error).message}`))
          .finally(() => (under = undefined)));
  const timer = runner ? setInterval(() => void run(), opts.intervalMs ?? HELD_KEYS_INTERVAL_MS) : undefined;
  timer?.unref();
  const first = runner ? setImmediate(() => void run()) : undefined;
  return {
    run,
    async close() {
      closing = true;
      clearInterval(timer);
      clearImmediate(first);
      await under;
    },
  };
}
