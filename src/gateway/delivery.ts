/**
 * Delivery of local copies straight to the mailbox store (over SMTP, e.g. to
 * the organisation's Postfix, or over LMTP, e.g. to Dovecot's LMTP service:
 * `[delivery] protocol`), before the gateway answers 250: copies
 * for local users — plaintext ones in transparent mode included — never sit
 * in this gateway's spool. A retried message is delivered exactly once: each
 * (arrival, recipient) pair delivered — to the mailbox store or queued for a
 * peer — is recorded in LMDB, and skipped when the sender retries after a
 * partial failure or a timeout. Over LMTP the store answers the message once
 * per recipient: a recipient refused there (at RCPT or after the data) is not
 * recorded, so the sender's retry reaches it alone. Before a copy is handed
 * over, its intent is recorded; an intent without its completion found later
 * means the gateway stopped (crash, kill -9) while handing that copy over:
 * the copy is handed over again (never lose mail) and the possible duplicate
 * is logged (docs/delivery.md, "What remains").
 */
import { createHash, randomBytes } from 'node:crypto';
import { type Database, open } from 'lmdb';
import { closeLmdb } from '../fs/lmdb-close';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { sealIdentity } from './binding';
import type { Copy } from './deps';
import { DELIVERED_RECORD_SECONDS } from './config';
import { GatewayError } from '../mail/replies';
import type { QueuedCopy } from './queue-reconcile';
import { Limit } from '../net/limit';
import { isField, splitHeaderBlock } from '../mail/header-block';
import { envelopeSenderOf } from '../lists/bounces';
import { LIST_RELEASE_HEADER, RELEASE_HEADER, parseReleaseMarker } from '../inspect/quarantine';

const KEEP_MS = DELIVERED_RECORD_SECONDS * 1000;

/**
 * The record of one (arrival, recipient): > 0 handed over (or refused for good and settled) at that
 * time; an intent (a hand-over begun, not completed) as `{at, pid}` — or, as older versions wrote it,
 * < 0 at -value; a refusal for good whose attempt (`pid`) is still deciding what the sender is told
 * (a report, then `settle`) as `{at, pid, refused: true}`: no copy went.
 */
type Mark = number | Intent;
interface Intent {
  readonly at: number;
  readonly pid: number;
  readonly refused?: true;
}

/**
 * How long a refusal for good waits for its attempt to settle it (report it, then `settle`): another
 * attempt of the same message meanwhile (a retry after the hook timed out, in this process or another
 * Haraka worker) waits for that outcome rather than hand the copy over and report it a second time.
 * Longer than the hook's timeout; an attempt that never settles (it answered the sender 5xx itself, or
 * failed) lets the next one go on after it.
 */
const REFUSAL_SETTLE_MS = 30_000;

const handedOver = (m: Mark | undefined): boolean => typeof m === 'number' && m > 0;
/** The mark of a refusal for good not settled yet, or undefined. */
function refusalMark(m: Mark | undefined): Intent | undefined {
  return m && typeof m === 'object' && m.refused === true ? m : undefined;
}
function intentOf(m: Mark | undefined): Intent | undefined {
  if (typeof m === 'number') return m < 0 ? { at: -m, pid: 0 } : undefined;
  return m && !refusalMark(m) ? m : undefined;
}
/** Whether the mark is an intent of this process (in it, one attempt at a time holds a recipient: `inflight`). */
function ownIntent(m: Mark | undefined): boolean {
  return intentOf(m)?.pid === process.pid;
}
/** A refusal for good of another attempt, being reported now: not settled yet, and no copy went. */
function refusalPending(mark: Mark | undefined, since: number | undefined): boolean {
  const m = refusalMark(mark);
  if (!m) return false;
  // this attempt's own (a recipient reached twice within it) never waits for itself
  if (m.pid === process.pid && since !== undefined && m.at >= since) return false;
  return Date.now() - m.at < REFUSAL_SETTLE_MS && (m.pid === process.pid || alive(m.pid));
}
const markTime = (m: Mark): number => (typeof m === 'number' ? Math.abs(m) : m.at);

/** Recipients an earlier attempt of the message settled (recorded before `since`, this attempt's start): collected by `once`. */
export interface EarlierAttempts {
  readonly since: number;
  readonly rcpts: string[];
  /** Recipients this attempt marked refused for good (collected by `once`): settled by its report, else `unmark`ed. */
  readonly marked?: string[];
}

/**
 * How long an intent of another live process (a Haraka cluster worker, `nodes=N`, sharing this
 * store) is taken for a hand-over in progress there, to be waited for; older, it was abandoned.
 */
const FOREIGN_INTENT_MS = 10 * 60 * 1000;

function alive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The header fields of `arrival`, each unfolded boundary kept (split at CRLF not followed by a space or tab). */
function headFields(arrival: Buffer): { fields: string[]; end: number } {
  const end = arrival.indexOf('\r\n\r\n');
  const head = end < 0 ? arrival : arrival.subarray(0, end + 2);
  return { fields: head.toString('latin1').split(/\r\n(?![ \t])/), end };
}

/** True when the header block holds a seal field (any spelling of the name, as arrivalId reads it). */
function hasSeal(arrival: Buffer): boolean {
  return /^ssmax-seal[ \t]*:/im.test(arrival.subarray(0, Math.max(0, arrival.indexOf('\r\n\r\n'))).toString('latin1'));
}

/**
 * Whether a retry of `arrival` can be told from another message with the same
 * bytes: a sealed arrival (its newest seal carries its own time and tracking
 * token), or a message that names itself (a Message-ID field other than empty
 * or "<>"; RFC 5322 §3.6.4: two messages with one Message-ID are one message).
 * Anything else — an alert a script sends twice without Message-ID, Date or a
 * signature — may be a second message as well as a retry.
 */
export function identifiable(arrival: Buffer): boolean {
  return sealedIdentity(arrival) !== undefined || namesItself(arrival);
}

/** A release field (quarantine or list moderation) whose value is a release marker: the field's name (lower case) and the entry's id. */
function releaseField(field: string): { name: string; id: string } | undefined {
  const name = [RELEASE_HEADER, LIST_RELEASE_HEADER].find((n) => isField(field, n));
  const marker = name ? parseReleaseMarker(field.slice(field.indexOf(':') + 1).replace(/\r\n/g, '')) : undefined;
  return marker ? { name: name!.toLowerCase(), id: marker.id } : undefined;
}

/** What the newest seal signs (binding.ts), or undefined for an unsealed arrival or unreadable seals (the bytes decide then). */
function sealedIdentity(arrival: Buffer): string | undefined {
  if (!hasSeal(arrival)) return undefined;
  try {
    return sealIdentity(arrival);
  } catch {
    return undefined; // unreadable seals never reach delivery (the chain check refused them)
  }
}

/** Whether the message has a Message-ID other than empty or "<>" (`head`: its header fields, read once by the caller). */
function namesItself(arrival: Buffer, head = headFields(arrival)): boolean {
  return head.fields.some((f) => {
    const m = /^message-id[ \t]*:([^]*)$/i.exec(f);
    if (!m) return false;
    const value = m[1]!.replace(/\s+/g, '');
    return value !== '' && value !== '<>';
  });
}

/**
 * The key of one attempt's delivery record (and of its delivery id): the
 * arrival's identity when a retry can be told from another message
 * (`identifiable`), so the sender's retry finds what an earlier attempt handed
 * over; otherwise a fresh random one (64 hex digits, like an identity: queue
 * notes carry it, queue-reconcile.ts), so a second message with the same bytes
 * is delivered rather than skipped as already delivered after its 250. A
 * retry of such a message may then hand a copy over twice: a duplicate, never
 * a loss (docs/delivery.md).
 */
export function attemptId(arrival: Buffer): string {
  return retryIdentity(arrival) ?? randomBytes(32).toString('hex');
}

/** The arrival's identity across the sender's retries (`identifiable`), or undefined when a retry cannot be told from another message. */
export function retryIdentity(arrival: Buffer): string | undefined {
  const sealed = sealedIdentity(arrival);
  if (sealed !== undefined) return sealed;
  const head = headFields(arrival); // split once for both questions
  return namesItself(arrival, head) ? bytesId(arrival, head) : undefined;
}

/**
 * The identity of an arrival across retries: its bytes without the Received
 * fields, which each receiving attempt adds afresh (time, session id).
 */
export function arrivalId(arrival: Buffer): string {
  // A sealed arrival is identified by what its newest seal signs (binding.ts): a replay with
  // changed unprotected headers is the same arrival, and is not delivered twice.
  return sealedIdentity(arrival) ?? bytesId(arrival);
}

/**
 * A hash of the arrival's bytes without its Received fields, and with a release field's marker as the entry's id
 * alone: a release's token changes from one release of an entry to the next (src/inspect/quarantine.ts), and a copy
 * one release of a message that names itself handed over is not handed over again by the next (a release whose
 * releaser died after the gateway took it is released again once its lease ended). A release field alone does not
 * make a message name itself: one the gateway does not honour (no inspection here, no list addressed) may stand on
 * two different messages with the same bytes.
 */
function bytesId(arrival: Buffer, head = headFields(arrival)): string {
  const { fields: all, end } = head;
  const fields = all
    .filter((f) => !/^received:/i.test(f))
    .map((f) => {
      const release = releaseField(f);
      return release ? `${release.name}: ${release.id}` : f;
    });
  const h = createHash('sha256').update(fields.join('\r\n'), 'latin1');
  if (end >= 0) h.update(arrival.subarray(end + 2));
  return h.digest('hex');
}

/** An SMTP failure while handing a copy over: `reply` is the store's answer, if it answered. */
interface SendFailure extends Error {
  readonly response?: string;
  readonly responseCode?: number;
  readonly command?: string;
}

export type DeliveryProtocol = 'smtp' | 'lmtp';

/** One recipient the store refused, with its reply code and reply. */
export interface Refusal {
  readonly rcpt: string;
  readonly code: number;
  readonly reply: string;
  /** The list the refused copy was expanded from (`Copy.list`): the address the sender knows. */
  readonly list?: string;
}

/** What the store refused of one message: each refused recipient with the store's reply to it. */
export interface Refused {
  readonly refused: Refusal[];
}

/**
 * The recipients a store refused while it took the message for others, each
 * with its reply. A refusal that names no recipient (nodemailer gives the
 * address with each, but it is not promised) cannot be matched: every
 * recipient the store did not list as accepted is then refused for now
 * (4.0.0) and retried, never recorded as delivered by mistake.
 */
export function refusalsOf(
  to: readonly string[],
  info: { accepted?: readonly string[]; rejected: readonly string[]; rejectedErrors?: readonly (SendFailure & { recipient?: string })[] },
): Refusal[] {
  const ours = new Map(to.map((t) => [t.toLowerCase(), t]));
  const named = (info.rejectedErrors ?? []).map((e, i) => ({
    rcpt: ours.get((e.recipient ?? info.rejected[i] ?? '').toLowerCase()),
    code: codeOf(e),
    reply: e.response ?? e.message,
  }));
  const unnamed = named.find((r) => r.rcpt === undefined);
  if (!unnamed) return named.map((r) => ({ rcpt: r.rcpt!, code: r.code, reply: r.reply }));
  const accepted = new Set((info.accepted ?? []).map((a) => a.toLowerCase()));
  const byRcpt = new Map(named.filter((r) => r.rcpt !== undefined).map((r) => [r.rcpt, r]));
  return to
    .filter((t) => !accepted.has(t.toLowerCase()))
    .map((rcpt) => {
      const own = byRcpt.get(rcpt);
      return own
        ? { rcpt, code: own.code, reply: own.reply }
        : { rcpt, code: 450, reply: `4.0.0 ${unnamed.reply} (a refusal naming no recipient of this copy)` };
    });
}

/** A reply code the store gave, or 0 when it gave none. */
function codeOf(err: SendFailure | undefined): number {
  return typeof err?.responseCode === 'number' ? err.responseCode : 0;
}
/**
 * Kept SMTP (or LMTP) sessions to the mailbox store, up to `max` at once, each used by
 * one copy at a time (nodemailer's protocol layer; no message composer: the
 * copies are complete messages). A session that fails is closed, never
 * reused; one that was idle and turns out closed by the store before
 * answering MAIL is replaced once, since nothing was handed over on it.
 */
class SmtpSessions {
  private readonly idle: SMTPConnection[] = [];
  private readonly dead = new WeakSet<SMTPConnection>();
  /** Sessions in use: an idle one is taken first, a new one opened only when none is idle, so at most `max` are open. */
  private readonly inUse: Limit;
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    max: number,
    private readonly timeoutMs: number,
    private readonly protocol: DeliveryProtocol,
  ) {
    this.inUse = new Limit(max);
  }

  /**
   * Sends one message; resolves with the recipients the store refused (it
   * took the message for the others). Over LMTP that includes recipients
   * refused in the per-recipient replies after the data.
   */
  async send(from: string, to: readonly string[], message: Buffer): Promise<Refused> {
    const release = await this.inUse.acquire();
    try {
      return await this.sendHolding(from, to, message);
    } finally {
      release();
    }
  }

  private async sendHolding(from: string, to: readonly string[], message: Buffer): Promise<Refused> {
    for (let attempt = 0; ; attempt++) {
      const { session, reused } = await this.take();
      let info: { rejected: string[]; rejectedErrors?: (SendFailure & { recipient?: string })[] };
      try {
        info = await new Promise((resolve, reject) =>
          session.send({ from, to: [...to] }, message, (err, i) => (err || !i ? reject(err ?? new Error('no answer')) : resolve(i))),
        );
      } catch (err) {
        this.discard(session);
        const f = err as SendFailure & { rejected?: string[]; rejectedErrors?: (SendFailure & { recipient?: string })[] };
        if (reused && attempt === 0 && f.responseCode === undefined && (f.command === undefined || /^MAIL/i.test(f.command))) continue;
        // every recipient refused at RCPT: each with its own reply (permanent or temporary)
        if (f.rejectedErrors && f.rejectedErrors.length > 0 && f.rejectedErrors.length >= to.length) {
          return { refused: refusalsOf(to, { accepted: [], rejected: f.rejected ?? to, rejectedErrors: f.rejectedErrors }) };
        }
        // a permanent refusal of the whole message (MAIL, or the data over SMTP): every recipient, with that reply
        if (codeOf(f) >= 500) return { refused: to.map((rcpt) => ({ rcpt, code: codeOf(f), reply: f.response ?? f.message })) };
        throw err;
      }
      this.putBack(session);
      return { refused: refusalsOf(to, info) };
    }
  }

  /** An idle session, else a new one (the caller holds a place of `inUse`). */
  private async take(): Promise<{ session: SMTPConnection; reused: boolean }> {
    for (;;) {
      if (this.closed) throw new Error('delivery is closed');
      const idle = this.idle.pop();
      if (!idle) return { session: await this.open(), reused: false };
      if (!this.dead.has(idle)) return { session: idle, reused: true };
    }
  }

  private open(): Promise<SMTPConnection> {
    const session = new SMTPConnection({
      host: this.host,
      port: this.port,
      lmtp: this.protocol === 'lmtp',
      secure: false,
      ignoreTLS: true,
      connectionTimeout: this.timeoutMs,
      greetingTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs,
    });
    return new Promise((resolve, reject) => {
      let ready = false;
      const gone = (err?: Error) => {
        if (this.dead.has(session)) return;
        this.dead.add(session);
        if (!ready) reject(err ?? new Error('the mailbox store closed the connection'));
      };
      session.on('error', gone);
      session.on('end', () => gone());
      session.connect(() => {
        ready = true;
        if (session._socket) session._socket.setNoDelay(true);
        resolve(session);
      });
    });
  }

  private putBack(session: SMTPConnection): void {
    if (this.dead.has(session)) return;
    if (this.closed) {
      session.quit();
      return;
    }
    this.idle.push(session);
  }

  private discard(session: SMTPConnection): void {
    this.dead.add(session);
    session.close();
  }

  close(): void {
    this.closed = true;
    for (const s of this.idle.splice(0)) s.quit();
  }
}

/**
 * Whether the mailbox store at host:port answers now: a new session (TCP, its greeting, EHLO or LHLO), then QUIT;
 * nothing is sent. Resolves when it does; rejects with the reason in words otherwise (readiness: src/ops/gateway-ops.ts).
 */
function probeMailboxStore(host: string, port: number, protocol: DeliveryProtocol, timeoutMs: number): Promise<void> {
  const session = new SMTPConnection({
    host,
    port,
    lmtp: protocol === 'lmtp',
    secure: false,
    ignoreTLS: true,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  });
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (err?: Error) => {
      if (settled) return;
      settled = true;
      session.close();
      reject(new Error(storeFailureText(err)));
    };
    session.on('error', fail);
    session.on('end', () => fail());
    session.connect(() => {
      if (settled) return;
      settled = true;
      session.quit();
      resolve();
    });
  });
}

/** Why a session to the mailbox store failed, in words: the system's reason first (connection refused…), then its own text. */
function storeFailureText(err: Error | undefined): string {
  if (!err) return 'the store closed the connection before its greeting';
  const text = err.message.replace(/\s+/g, ' ').trim().slice(0, 160);
  const words: [RegExp, string][] = [
    [/ECONNREFUSED/, 'connection refused'],
    [/ENOTFOUND|EAI_AGAIN/, 'host name not found'],
    [/EHOSTUNREACH|ENETUNREACH/, 'host unreachable'],
    [/ECONNRESET/, 'connection reset'],
    [/timeout|ETIMEDOUT|never received/i, 'no answer in time'],
  ];
  const said = words.find(([re]) => re.test(text) || re.test(String((err as { code?: unknown }).code ?? '')));
  return said ? `${said[1]} (${text})` : text;
}

/** Sessions kept to the mailbox store: as many as the SMTP sessions a gateway commonly serves at once. */
const SESSIONS = 16;

/** One copy's hand-over: resolves with the recipients refused (and the store's replies), throws when nothing was taken. */
export type HandOver = (todo: readonly string[]) => Promise<Refused>;

/** The header field naming a copy's delivery: a mailbox store that keeps what it has seen (Dovecot's Sieve "duplicate") drops a second copy of it. */
export const DELIVERY_ID_HEADER = 'SSMAX-Delivery-Id';

/**
 * The stable id of one arrival's delivery, the same for every attempt (the
 * arrival's identity: sealed message identity, or its bytes without the
 * Received fields). The store keeps its record per user, so together they
 * name one (message, recipient).
 */
export function deliveryId(arrivalIdentity: string): string {
  return createHash('sha256').update('ssmax-delivery-id\0', 'latin1').update(arrivalIdentity, 'latin1').digest('hex').slice(0, 40);
}

/** The copy with our delivery id on top (a field this hop adds, like a trace field), and no other field of that name (a sender cannot choose it). */
export function withDeliveryId(message: Buffer, id: string): Buffer {
  const { fields, headEnd } = splitHeaderBlock(message);
  let rest: Buffer = message;
  // also a field written with spaces before its colon ("SSMAX-Delivery-Id : …"): a sender cannot choose the id in any spelling
  if (fields.some((f) => isField(f, DELIVERY_ID_HEADER))) {
    const kept = fields.filter((f) => !isField(f, DELIVERY_ID_HEADER));
    rest = Buffer.concat([Buffer.from(kept.map((f) => `${f}\r\n`).join(''), 'latin1'), message.subarray(headEnd)]);
  }
  return Buffer.concat([Buffer.from(`${DELIVERY_ID_HEADER}: ${id}\r\n`, 'latin1'), rest]);
}

export class LocalDelivery {
  private readonly sessions: SmtpSessions;
  private readonly delivered: Database<Mark, string>;
  /** (arrival, recipient) pairs being handed over now: a retry waits for them (the timed-out attempt's copy may still be on its way). */
  private readonly inflight = new Map<string, Promise<unknown>>();
  /**
   * redelivered: copies handed over again because an earlier attempt stopped midway (see above);
   * pendingAtStart: intents without completion found when this process opened the record (the gateway stopped while handing them over).
   */
  readonly stats = { redelivered: 0, pendingAtStart: 0, reconciled: 0 };
  /** Settled when the record was reconciled with Haraka's queue (queue-reconcile.ts): no claim before it. */
  private reconciled: Promise<unknown> = Promise.resolve();
  onRedeliver: (what: string) => void = () => undefined;
  /** Over LMTP: the hand-over in progress per mailbox (one at a time, see `oneAtATime`). */
  private readonly mailboxes = new Map<string, Promise<void>>();

  /**
   * `deliveryId`: put `DELIVERY_ID_HEADER` on every copy (default: over LMTP, where the
   * store is Dovecot and its duplicate check can use it; `[delivery] delivery_id`).
   */
  constructor(
    private readonly host: string,
    private readonly port: number,
    timeoutMs: number,
    stateDir: string,
    private readonly protocol: DeliveryProtocol = 'smtp',
    private readonly deliveryId: boolean = protocol === 'lmtp',
  ) {
    this.sessions = new SmtpSessions(host, port, SESSIONS, timeoutMs, protocol);
    this.delivered = open<Mark, string>({ path: stateDir, compression: false });
    const cutoff = Date.now() - KEEP_MS;
    const expired: string[] = [];
    for (const { key, value } of this.delivered.getRange({})) {
      if (markTime(value) < cutoff) expired.push(key);
      else if (!key.startsWith('note:') && intentOf(value) && !alive(intentOf(value)!.pid)) this.stats.pendingAtStart++; // not another live worker's
    }
    // each read again inside the transaction that removes it: another worker may have marked the key afresh since the
    // scan (a retry at the boundary), and its fresh mark must stay (removed, the next retry would hand the copy over again)
    if (expired.length > 0)
      this.delivered
        .transaction(() => {
          for (const key of expired) {
            const now = this.delivered.get(key);
            if (now !== undefined && markTime(now) < cutoff) this.delivered.remove(key);
          }
        })
        .catch(() => undefined); // not removed: tried again at the next start
  }

  /**
   * Hands one copy over once per recipient: waits for an attempt of the same
   * pairs in progress, skips the recorded, checks `signal` (aborted when the
   * hook already answered 4xx: then nothing new goes out), records the
   * intent, hands over, records the recipients taken. Throws `failure(err)`
   * when the hand-over fails, a 4xx naming the refused recipients when some
   * were refused for now. Resolves with the recipients refused for good
   * (a 5xx of the store): not recorded, the caller decides (a 5xx to the
   * sender, or a report) and then records them with `settle`. Recipients
   * skipped because an earlier attempt (one recorded before `already.since`)
   * settled them — handed their copy over, or had it refused for good and
   * reported — are added to `already.rcpts` (the caller says so in its reply:
   * nothing was sent again).
   */
  async once(
    id: string,
    rcpts: readonly string[],
    signal: AbortSignal | undefined,
    hand: HandOver,
    failure: (err: unknown) => GatewayError,
    already?: EarlierAttempts,
  ): Promise<Refusal[]> {
    const key = (r: string) => `${id}:${r.toLowerCase()}`;
    await this.reconciled;
    let todo: string[];
    let again: string[];
    let gate!: () => void;
    for (;;) {
      const busy = rcpts.map((r) => this.inflight.get(key(r))).filter((p) => p !== undefined);
      if (busy.length > 0) {
        await Promise.allSettled(busy);
        continue;
      }
      signal?.throwIfAborted();
      // Held from here (synchronously after the check) so no other attempt in this process slips in while we claim.
      const held = new Promise<void>((r) => {
        gate = r;
      });
      for (const r of rcpts) this.inflight.set(key(r), held);
      const release = () => {
        for (const r of rcpts) if (this.inflight.get(key(r)) === held) this.inflight.delete(key(r));
        gate();
      };
      let claim: { todo: string[]; again: string[]; done: string[]; elsewhere: number };
      try {
        // The claim is one LMDB write transaction: exclusive across processes, so two Haraka workers
        // (cluster mode) sharing this store never both hand the same recipient's copy over.
        claim = await this.delivered.transaction(() => {
          const c = { todo: [] as string[], again: [] as string[], done: [] as string[], elsewhere: 0 };
          for (const r of rcpts) {
            const m = this.delivered.get(key(r));
            if (handedOver(m)) {
              if (already && markTime(m!) < already.since) c.done.push(r); // an earlier attempt's, not this one's (a member also addressed directly)
              continue;
            }
            // another attempt is reporting this recipient's refusal for good: its outcome decides (settled, or the mark lapses)
            if (refusalPending(m, already?.since)) {
              c.elsewhere++;
              continue;
            }
            const intent = intentOf(m);
            if (intent && intent.pid !== process.pid && alive(intent.pid) && Date.now() - intent.at < FOREIGN_INTENT_MS) c.elsewhere++;
            if (intent) c.again.push(r);
            c.todo.push(r);
          }
          if (c.elsewhere === 0) for (const r of c.todo) this.delivered.put(key(r), { at: Date.now(), pid: process.pid });
          return c;
        });
      } catch (err) {
        release();
        throw err;
      }
      if (claim.elsewhere > 0) {
        // another worker is handing these over now: its outcome decides (recorded, or the intent removed)
        release();
        await new Promise((r) => setTimeout(r, 25));
        continue;
      }
      ({ todo, again } = claim);
      already?.rcpts.push(...claim.done);
      if (todo.length === 0) {
        release();
        return [];
      }
      for (const r of rcpts) if (!todo.includes(r) && this.inflight.get(key(r)) === held) this.inflight.delete(key(r));
      break;
    }
    if (again.length > 0) {
      this.stats.redelivered += again.length;
      this.onRedeliver(`${id.slice(0, 16)} for ${again.join(', ')}`);
    }
    const work = (async () => {
      let answer: Refused;
      try {
        answer = await hand(todo);
      } catch (err) {
        // nothing taken: the intent goes (a retry is a first attempt again) — this attempt's own only: a hand-over that
        // ran past FOREIGN_INTENT_MS may have been taken over by another worker meanwhile, whose record must stay
        await this.delivered.transaction(() => {
          for (const r of todo) if (ownIntent(this.delivered.get(key(r)))) this.delivered.remove(key(r));
        });
        throw failure(err);
      }
      // one lookup per recipient, not a scan of the refusals (a copy holds up to 1,000 recipients)
      const refusals = new Map<string, (typeof answer.refused)[number]>();
      for (const x of answer.refused) if (!refusals.has(x.rcpt.toLowerCase())) refusals.set(x.rcpt.toLowerCase(), x);
      const refusalOf = (r: string) => refusals.get(r.toLowerCase());
      const taken = todo.filter((r) => !refusalOf(r));
      await this.delivered.transaction(() => {
        for (const r of taken) this.delivered.put(key(r), Date.now());
        for (const r of todo) {
          const refusal = refusalOf(r);
          if (!refusal) continue;
          // refused for good: marked until the caller reports and settles it (a retry meanwhile waits for that);
          // refused for now: nothing kept, the retry hands it over again
          // only over this attempt's own intent: a worker that took the copy over meanwhile (and handed it over) decides
          if (!ownIntent(this.delivered.get(key(r)))) continue;
          if (refusal.code >= 500) this.delivered.put(key(r), { at: Date.now(), pid: process.pid, refused: true });
          else this.delivered.remove(key(r));
        }
      });
      for (const r of todo) if ((refusalOf(r)?.code ?? 0) >= 500) already?.marked?.push(r);
      const refused = todo.map(refusalOf).filter((x) => x !== undefined);
      const later = refused.filter((x) => x.code < 500);
      if (later.length > 0) throw new GatewayError('deliveryUnavailable', `${later[0]!.reply} (${later.map((x) => x.rcpt).join(', ')})`);
      return refused;
    })();
    for (const r of todo) this.inflight.set(key(r), work);
    gate();
    try {
      return await work;
    } finally {
      for (const r of todo) if (this.inflight.get(key(r)) === work) this.inflight.delete(key(r));
    }
  }

  /**
   * Over LMTP, one hand-over at a time per mailbox: Dovecot's duplicate record
   * (Sieve "duplicate", per user) loses entries when deliveries to one user
   * commit concurrently (each rewrites the file it read), and a lost entry is
   * a duplicate the store no longer catches. Copies to different mailboxes go
   * at once.
   */
  private async oneAtATime<T>(rcpts: readonly string[], work: () => Promise<T>): Promise<T> {
    if (this.protocol !== 'lmtp') return work();
    const keys = [...new Set(rcpts.map((r) => r.toLowerCase()))];
    for (;;) {
      const busy = keys.map((k) => this.mailboxes.get(k)).filter((p) => p !== undefined);
      if (busy.length === 0) break;
      await Promise.allSettled(busy);
    }
    const running = work();
    const done = running.then(
      () => undefined,
      () => undefined,
    );
    for (const k of keys) this.mailboxes.set(k, done);
    try {
      return await running;
    } finally {
      for (const k of keys) if (this.mailboxes.get(k) === done) this.mailboxes.delete(k);
    }
  }

  /**
   * Records copies as handed over that Haraka holds in its queue (queue-reconcile.ts):
   * at start, every copy found in the queue directory; later, a queued copy
   * Haraka has just delivered (before it removes the file). Open intents among
   * them were hand-overs that completed while the gateway stopped before
   * recording them: they are no longer pending.
   */
  markQueued(copies: readonly QueuedCopy[]): Promise<number> {
    const work = this.delivered.transaction(() => {
      let settled = 0;
      for (const c of copies) {
        for (const r of c.rcpts) {
          const k = `${c.id}:${r.toLowerCase()}`;
          const m = this.delivered.get(k);
          if (handedOver(m)) continue;
          const intent = intentOf(m);
          if (intent && !alive(intent.pid)) settled++;
          this.delivered.put(k, Date.now());
        }
      }
      return settled;
    });
    return work.then((settled) => {
      this.stats.reconciled += settled;
      this.stats.pendingAtStart = Math.max(0, this.stats.pendingAtStart - settled);
      return settled;
    });
  }

  /** At start, before the gateway takes mail: every copy in Haraka's queue is recorded (markQueued); claims wait for it. */
  reconcile(copies: readonly QueuedCopy[]): Promise<number> {
    const work = this.markQueued(copies);
    this.reconciled = work.catch(() => undefined);
    return work;
  }

  /**
   * The recipients (lowercase) an earlier attempt of `id` settled or began to hand over — recorded before
   * `since`, this attempt's start —, each with whether it was settled (true: its copy handed over, or it was
   * refused for good and reported) or only begun (false: an intent, whose copy may not have arrived: a stop
   * midway). Any entry means a copy of the message may have gone before this attempt decides anything
   * (plugin.ts `send`: no 5xx for a message once a copy of it went); only a settled one means that recipient
   * needs nothing more. Read only; one range of the record.
   */
  async earlier(id: string, since: number): Promise<Map<string, boolean>> {
    await this.reconciled; // copies found in Haraka's queue at start count as handed over
    const out = new Map<string, boolean>();
    // every key of the message is `${id}:${rcpt}`; ';' is the character after ':'
    for (const { key, value } of this.delivered.getRange({ start: `${id}:`, end: `${id};` }))
      if (markTime(value) < since && !refusalMark(value)) out.set(key.slice(id.length + 1), handedOver(value));
    return out;
  }

  /**
   * Removes the marks this process left on `rcpts` as refused for good, not settled (its attempt failed, or
   * answered the sender itself, before reporting them): a retry then goes on at once instead of waiting for a
   * report that never comes. Settled recipients and other processes' marks stay.
   */
  async unmark(id: string, rcpts: readonly string[]): Promise<void> {
    if (rcpts.length === 0) return;
    await this.delivered.transaction(() => {
      for (const r of rcpts) {
        const k = `${id}:${r.toLowerCase()}`;
        const m = this.delivered.get(k);
        if (refusalMark(m)?.pid === process.pid) this.delivered.remove(k);
      }
    });
  }

  /** Records recipients as done without a copy (refused for good, and the sender told): a retry does not try them again. */
  async settle(id: string, rcpts: readonly string[]): Promise<void> {
    await this.delivered.transaction(() => {
      for (const r of rcpts) {
        const k = `${id}:${r.toLowerCase()}`;
        const m = this.delivered.get(k);
        // a refusal this attempt marked keeps its time: an attempt that waited for it counts it as an earlier one's
        this.delivered.put(k, refusalMark(m)?.at ?? Date.now());
      }
    });
  }

  /**
   * Delivers every local copy of one arrival, each carrying the arrival's
   * delivery id on top (`DELIVERY_ID_HEADER`, when enabled), recorded under `id`
   * (`attemptId` by default: a message a retry cannot be told from is recorded per
   * attempt); throws a 4xx GatewayError if the store
   * fails for now (it took the copy for the others: the retry reaches only the
   * refused). Resolves with the recipients the store refused for good;
   * `already` collects those an earlier attempt settled (as `once`).
   */
  async deliver(
    arrival: Buffer,
    from: string,
    copies: readonly Copy[],
    signal?: AbortSignal,
    id: string = attemptId(arrival),
    already?: EarlierAttempts,
  ): Promise<Refusal[]> {
    const dId = this.deliveryId ? deliveryId(id) : undefined;
    const refused: Refusal[] = [];
    for (const copy of copies) {
      // the turn is taken before the intent is recorded: an intent open after a crash is a copy really on its way
      const answer = await this.oneAtATime(copy.rcpts, () =>
        this.once(
          id,
          copy.rcpts,
          signal,
          // a list's copy with the list's bounce address (src/lists/bounces.ts): a store that reports later reports to the list, not the poster
          (todo) => this.sessions.send(envelopeSenderOf(copy, from), todo, dId ? withDeliveryId(copy.message, dId) : copy.message),
          (err) => new GatewayError('deliveryUnavailable', (err as SendFailure).response ?? (err as Error).message),
          already,
        ),
      );
      refused.push(...(copy.list ? answer.map((r) => ({ ...r, list: copy.list })) : answer));
    }
    return refused;
  }

  /** Whether the mailbox store answers now (a new session, nothing sent: `probeMailboxStore`); rejects with the reason. */
  probe(timeoutMs: number): Promise<void> {
    return probeMailboxStore(this.host, this.port, this.protocol, timeoutMs);
  }

  /** Where the store is, as [delivery] names it: host:port (an IPv6 address in brackets) and the protocol. */
  get where(): { readonly address: string; readonly protocol: DeliveryProtocol } {
    return { address: this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`, protocol: this.protocol };
  }

  /** Whether `key` was noted (kept like the delivery records): for notices sent once. */
  noted(key: string): boolean {
    return this.delivered.get(`note:${key}`) !== undefined;
  }

  /** Notes `key` (after the notice went out). */
  async note(key: string): Promise<void> {
    await this.delivered.put(`note:${key}`, Date.now());
  }

  async close(): Promise<void> {
    this.sessions.close();
    await closeLmdb(this.delivered);
  }
}
