/**
 * Handing a held message back to the gateway: the one re-injection used by
 * `ssmax quarantine release`, `ssmax list release` and the web console's
 * quarantine page. The message, with a release field on top naming its id
 * (SSMAX-Quarantine-Release or SSMAX-List-Release), is submitted again
 * through the gateway's SMTP listener (optionally with SMTP AUTH).
 *
 * A release is a change of the entry's state in the store, each step one
 * LMDB write transaction that checks where it starts from
 * (src/inspect/quarantine.ts): held → releasing (refused, sending nothing,
 * when the entry is not held: a second release, from this process or
 * another); the gateway, while it takes the message, honours the field only
 * for an entry in a release (releasing → released). After the gateway's 250
 * the entry is removed, or held again for the recipients the gateway refused;
 * when the gateway did not take the message (down, refused, timed out) it is
 * put back as held, unless it was deleted meanwhile. A release that failed
 * leaves the message held, to be released again.
 *
 * A release holds its entry for a lease (`leaseMs`, by default ten times the
 * longest SMTP timeout it uses). A release whose process died midway leaves
 * the entry `releasing` until the lease ends; then the entry may be released
 * again, with a new token in the field (`<id> <token>`). The gateway lets a
 * message pass only for the entry's current release, so a release that
 * outlived its lease and was taken over is refused there (550), never
 * delivered a second time. A live release is never cut short on purpose:
 * cutting it after the gateway took the release mark would put a message
 * the gateway may have queued back as held (a duplicate on the next
 * release); it ends on the gateway's answer or its own SMTP timeouts, whose
 * silence bound (60 s) is longer than the gateway's hook timeout (25 s by
 * default), so a live gateway always answers first.
 *
 * The release field carries a live token, and SMTP AUTH a password: to a
 * gateway that is not on loopback (127.0.0.0/8, ::1; a name, even `localhost`, is not) the
 * release requires STARTTLS, with the gateway's certificate verified against
 * the CAs given (`tls.ca`) or the system's roots and its name (`tls.servername`,
 * else the host): a gateway that does not offer it, or whose certificate does
 * not verify, gets nothing (no AUTH, no message) and the entry stays held
 * (ReinjectError with `tls` set). On loopback nothing crosses the network and
 * the release stays in plaintext, as before.
 */
import { isLoopbackAddress } from '../net/loopback';
import { createTransport } from 'nodemailer';
import { DEFAULT_RELEASE_LEASE_MS, type QuarantineEntry, type QuarantineStore, releaseMarker } from '../inspect/quarantine';

/** The release's SMTP timeouts: to connect, and of silence on the connection (the longest it uses). */
export const RELEASE_CONNECT_TIMEOUT_MS = 10_000;
export const RELEASE_SOCKET_TIMEOUT_MS = 60_000;
/** The default lease of a release: ten times its longest timeout ([quarantine] release_lease_seconds, --lease). */
export const RELEASE_LEASE_MS = DEFAULT_RELEASE_LEASE_MS;

export { ReleaseStateError } from '../inspect/quarantine';

export interface HeldMessage {
  readonly id: string;
  readonly from: string;
  readonly rcpts: readonly string[];
  readonly message: Uint8Array;
  /** `inbound`: held on arrival (antivirus, a moderated list): re-injected without logging in (below). */
  readonly direction?: 'outbound' | 'inbound';
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
  /** How long the release holds its entry (releaseHeld; default RELEASE_LEASE_MS). */
  readonly leaseMs?: number;
  /** For STARTTLS to a host that is not loopback: the CAs (PEM) to verify the gateway's certificate with (default: the system's roots), and the name it must carry (default: host). */
  readonly tls?: { readonly ca?: string | Buffer | undefined; readonly servername?: string | undefined };
}

/** Codes of Node's TLS errors: a certificate that does not verify (chain, name, dates) or a failed handshake. */
const TLS_FAILURE = /CERT|SELF_SIGNED|UNABLE_TO_|ERR_TLS|ERR_SSL|EPROTO/;

/**
 * The gateway did not take the message: `message` says why (its SMTP reply
 * when it gave one, never the message's content), and what became of the
 * entry. `held` is true when the entry is held again, to be released again.
 */
export class ReinjectError extends Error {
  constructor(
    message: string,
    readonly held = true,
    /** STARTTLS was required and the gateway did not offer it, or its certificate did not verify: nothing was sent. */
    readonly tls = false,
  ) {
    super(message);
    this.name = 'ReinjectError';
  }
}

/** The password in a password file's text: its first line, trimmed. */
export function passwordOf(fileText: string): string {
  return fileText.split('\n')[0]!.trim();
}

/** The gateway's answer to a submission it took: its 250, and the recipients it refused with its reply to each. */
export interface Taken {
  readonly reply: string;
  readonly refused: readonly { readonly rcpt: string; readonly reply: string }[];
}

/**
 * Submits `held` again with `releaseHeader: <marker>` on top (`marker`: the
 * id unless given); resolves with the gateway's answer when it took the
 * message (for one recipient at least), or rejects with a ReinjectError.
 */
export async function reinject(held: HeldMessage, releaseHeader: string, via: ReinjectVia, marker = held.id): Promise<Taken> {
  // the release token (and the password) never cross the network in plaintext: STARTTLS, verified, unless on loopback
  const tlsRequired = !isLoopbackAddress(via.host);
  const t = createTransport({
    host: via.host,
    port: via.port,
    secure: false,
    ...(tlsRequired
      ? {
          requireTLS: true,
          tls: {
            rejectUnauthorized: true,
            minVersion: 'TLSv1.2' as const,
            ...(via.tls?.ca !== undefined ? { ca: via.tls.ca } : {}),
            ...(via.tls?.servername ? { servername: via.tls.servername } : {}),
          },
        }
      : { ignoreTLS: true }),
    connectionTimeout: via.connectionTimeoutMs ?? RELEASE_CONNECT_TIMEOUT_MS,
    greetingTimeout: via.socketTimeoutMs ?? RELEASE_SOCKET_TIMEOUT_MS,
    socketTimeout: via.socketTimeoutMs ?? RELEASE_SOCKET_TIMEOUT_MS,
    // logging in makes Haraka relay the message, i.e. take it as a submission of this organisation (its
    // queue_outbound): right for a held submission to another domain, wrong for an arrival held on its way in or a
    // post held for a list's moderator, which the submission path refuses (it carries seals, its sender is no user
    // here) every time they are released. Those go back the way they came: to the gateway's port, without logging in
    ...(via.user && via.password && held.direction !== 'inbound' ? { auth: { user: via.user, pass: via.password } } : {}),
  });
  try {
    const raw = Buffer.concat([Buffer.from(`${releaseHeader}: ${marker}\r\n`), Buffer.from(held.message)]);
    const r = await t.sendMail({ envelope: { from: held.from, to: [...held.rcpts] }, raw });
    const errors = (r as { rejectedErrors?: { recipient?: string; response?: string; message?: string }[] }).rejectedErrors ?? [];
    const refused = (r.rejected ?? []).map((a) => {
      const rcpt = String(a);
      const e = errors.find((x) => x.recipient === rcpt);
      return { rcpt, reply: (e?.response ?? e?.message ?? 'refused').slice(0, 300) };
    });
    return { reply: r.response, refused };
  } catch (err) {
    const e = err as { code?: string; originalCode?: string; response?: string; message?: string };
    // STARTTLS refused or failed (ETLS), or the certificate did not verify (the TLS socket's error: its own code kept as originalCode)
    if (tlsRequired && (e.code === 'ETLS' || TLS_FAILURE.test(e.originalCode ?? '')))
      throw new ReinjectError(
        `cannot re-inject ${held.id}: ${via.host}:${via.port} is not loopback, so the release requires STARTTLS with a certificate that verifies, and ${
          e.response
            ? `the gateway refused STARTTLS (${String(e.response).slice(0, 200)})`
            : `TLS failed (${String(e.message).slice(0, 200)})`
        }; nothing was sent (the gateway offers STARTTLS with Haraka's tls plugin; give the CA of its certificate and the name in it: --smtp-ca and --smtp-servername, or the console's [quarantine] smtp_ca and smtp_servername)`,
        true,
        true,
      );
    throw new ReinjectError(`cannot re-inject ${held.id}: ${e.response ?? e.message}`);
  } finally {
    t.close();
  }
}

/** A release the gateway took: for every recipient (`refused` empty, the entry removed), or for some (the refused ones held again). */
export interface Released {
  readonly entry: QuarantineEntry;
  readonly reply: string;
  readonly refused: readonly { readonly rcpt: string; readonly reply: string }[];
  /** Set when the store could not be brought up to date after the gateway took the message (the entry is then left in its release until its lease ends). */
  readonly warning?: string;
}

/** One line for a release's outcome: the gateway's reply, and the recipients it refused (held again) when any. */
export function describeRelease(done: Released): string {
  const refused = done.refused.map((r) => `${r.rcpt} (${r.reply})`).join(', ');
  return [
    done.reply,
    ...(done.refused.length > 0 ? [`refused for ${refused}: held again for those recipients`] : []),
    ...(done.warning ? [done.warning] : []),
  ].join('; ');
}

/**
 * Releases the entry `id` of `store`: marks it as being released (a
 * ReleaseStateError, nothing sent, when it is not held), re-injects it, then
 * removes it (or holds it again for the recipients the gateway refused), or
 * puts it back as held when the gateway did not take it. Resolves with the
 * outcome; undefined when there is no such entry; rejects with a
 * ReinjectError saying why the gateway did not take it and whether the entry
 * is held again (not when it was deleted meanwhile, or when putting it back
 * failed: both errors are in the text).
 */
export async function releaseHeld(
  store: QuarantineStore,
  id: string,
  releaseHeader: string,
  via: ReinjectVia,
): Promise<Released | undefined> {
  const leaseMs = via.leaseMs ?? RELEASE_LEASE_MS;
  const entry = await store.release(id, Date.now(), leaseMs);
  if (!entry) return undefined;
  let taken: Taken;
  try {
    taken = await reinject(entry, releaseHeader, via, releaseMarker(entry));
  } catch (err) {
    const why = err instanceof ReinjectError ? err.message : `cannot re-inject ${id}: ${(err as Error).message}`;
    const tls = err instanceof ReinjectError && err.tls;
    let after: Awaited<ReturnType<QuarantineStore['holdAgain']>>;
    try {
      after = await store.holdAgain(entry);
    } catch (err2) {
      throw new ReinjectError(`${why}; and it could not be put back as held: ${(err2 as Error).message}`, false, tls);
    }
    if (after === 'gone') throw new ReinjectError(`${why}; the entry was deleted meanwhile, so it is not held again`, false, tls);
    if (after === 'other')
      throw new ReinjectError(`${why}; the entry changed meanwhile (another release), so it was left as it is`, false, tls);
    throw new ReinjectError(why, true, tls);
  }
  const note = taken.refused.length > 0 ? `released ${new Date().toISOString()}: ${describeRelease({ entry, ...taken })}` : '';
  let warning: string | undefined;
  try {
    const r = await store.finishRelease(
      entry,
      taken.refused.map((x) => x.rcpt),
      note,
    );
    if (r !== 'done' && taken.refused.length > 0)
      warning = `the entry ${r === 'gone' ? 'was deleted' : 'changed'} meanwhile, so the refused recipients are not held again`;
  } catch (err) {
    warning = `the gateway took it, but the store could not be updated (the entry stays in its release until its lease ends, then it can be released again: copies the gateway handed over are not sent twice): ${(err as Error).message}`;
  }
  return { entry, reply: taken.reply, refused: taken.refused, ...(warning ? { warning } : {}) };
}
