/**
 * Handing a held message back to the gateway: the one re-injection used by
 * `ssmax quarantine release`, `ssmax list release` and the web console's
 * quarantine page. The message, with a release field on top naming its id
 * (SSMAX-Quarantine-Release or SSMAX-List-Release), is submitted again
 * through the gateway's SMTP listener (optionally with SMTP AUTH).
 *
 * The gateway honours the field only for an entry its store marks released,
 * and checks that while it takes the message: so the entry is marked
 * released just before the submission, and put back as held when the
 * gateway did not take the message (down, refused, timed out). A release
 * that failed leaves the message held, to be released again; only a 250
 * from the gateway ends it.
 */
import { createTransport } from 'nodemailer';
import type { QuarantineEntry, QuarantineStore } from '../inspect/quarantine';

export interface HeldMessage {
  readonly id: string;
  readonly from: string;
  readonly rcpts: readonly string[];
  readonly message: Uint8Array;
}

export interface ReinjectVia {
  readonly host: string;
  readonly port: number;
  /** SMTP AUTH, when both are given. */
  readonly user?: string | undefined;
  readonly password?: string | undefined;
  /** Defaults: 10 s to connect, 60 s of silence on the connection. */
  readonly connectionTimeoutMs?: number;
  readonly socketTimeoutMs?: number;
}

/** The gateway did not take the message: `message` says why (its SMTP reply when it gave one, never the message's content). */
export class ReinjectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReinjectError';
  }
}

/** The password in a password file's text: its first line, trimmed. */
export function passwordOf(fileText: string): string {
  return fileText.split('\n')[0]!.trim();
}

/** Submits `held` again with `releaseHeader: <id>` on top; resolves with the gateway's 250 reply, or rejects with a ReinjectError. */
export async function reinject(held: HeldMessage, releaseHeader: string, via: ReinjectVia): Promise<string> {
  const t = createTransport({
    host: via.host,
    port: via.port,
    secure: false,
    ignoreTLS: true,
    connectionTimeout: via.connectionTimeoutMs ?? 10000,
    socketTimeout: via.socketTimeoutMs ?? 60000,
    ...(via.user && via.password ? { auth: { user: via.user, pass: via.password } } : {}),
  });
  try {
    const raw = Buffer.concat([Buffer.from(`${releaseHeader}: ${held.id}\r\n`), Buffer.from(held.message)]);
    const r = await t.sendMail({ envelope: { from: held.from, to: [...held.rcpts] }, raw });
    const rejected = (r.rejected ?? []).map(String);
    return rejected.length > 0 ? `${r.response} (refused for ${rejected.join(', ')})` : r.response;
  } catch (err) {
    throw new ReinjectError(`cannot re-inject ${held.id}: ${(err as { response?: string }).response ?? (err as Error).message}`);
  } finally {
    t.close();
  }
}

/** The ids of releases under way in this process (ids are random: one store's do not meet another's); a second click while the first is being sent is refused. */
const underWay = new Set<string>();

/**
 * Releases the entry `id` of `store`: marks it released, re-injects it, and
 * puts it back as held when the gateway did not take it. Resolves with the
 * entry and the gateway's reply; undefined when there is no such entry;
 * rejects with a ReinjectError (the entry held again) otherwise.
 */
export async function releaseHeld(
  store: QuarantineStore,
  id: string,
  releaseHeader: string,
  via: ReinjectVia,
): Promise<{ entry: QuarantineEntry; reply: string } | undefined> {
  if (underWay.has(id)) throw new ReinjectError(`a release of ${id} is under way`);
  underWay.add(id);
  try {
    const entry = await store.release(id);
    if (!entry) return undefined;
    try {
      return { entry, reply: await reinject(entry, releaseHeader, via) };
    } catch (err) {
      await store.holdAgain(entry);
      throw err instanceof ReinjectError ? err : new ReinjectError(`cannot re-inject ${id}: ${(err as Error).message}`);
    }
  } finally {
    underWay.delete(id);
  }
}
