/**
 * Delivery of local copies straight to the mailbox store (over SMTP, e.g. to
 * the organisation's Postfix, or over LMTP, e.g. to Dovecot's LMTP service:
 * `[delivery] protocol`), before the gateway answers 250: copies
 * for local users — plaintext ones in transparent mode included — never sit
 * in this gateway's spool. A retried message is delivered exactly once: each
 * (arrival, recipient) pair delivered is recorded in LMDB, and skipped when
 * the sender retries after a partial failure. Over LMTP the store answers the
 * message once per recipient: a recipient refused there (at RCPT or after
 * the data) is not recorded, so the sender's retry reaches it alone.
 */
import { createHash } from 'node:crypto';
import { type Database, open } from 'lmdb';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Copy } from './deps';
import { GatewayError } from './replies';

const KEEP_MS = 7 * 86400000;

/**
 * The identity of an arrival across retries: its bytes without the Received
 * fields, which each receiving attempt adds afresh (time, session id).
 */
export function arrivalId(arrival: Buffer): string {
  const end = arrival.indexOf('\r\n\r\n');
  const head = end < 0 ? arrival : arrival.subarray(0, end + 2);
  const fields = head.toString('latin1').split(/\r\n(?![ \t])/).filter((f) => !/^received:/i.test(f));
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

/** What the store refused of one message: each refused recipient with the store's reply to it. */
interface Refused {
  readonly rejected: string[];
  readonly replies: string[];
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
  private readonly waiting: (() => void)[] = [];
  private readonly dead = new WeakSet<SMTPConnection>();
  private count = 0;
  private closed = false;

  constructor(private readonly host: string, private readonly port: number, private readonly max: number, private readonly timeoutMs: number, private readonly protocol: DeliveryProtocol) {}

  /**
   * Sends one message; resolves with the recipients the store refused (it
   * took the message for the others). Over LMTP that includes recipients
   * refused in the per-recipient replies after the data.
   */
  async send(from: string, to: readonly string[], message: Buffer): Promise<Refused> {
    for (let attempt = 0; ; attempt++) {
      const { session, reused } = await this.acquire();
      let info: { rejected: string[]; rejectedErrors?: SendFailure[] };
      try {
        info = await new Promise((resolve, reject) => session.send({ from, to: [...to] }, message, (err, i) => (err || !i ? reject(err ?? new Error('no answer')) : resolve(i))));
      } catch (err) {
        this.discard(session);
        const f = err as SendFailure;
        if (reused && attempt === 0 && f.responseCode === undefined && (f.command === undefined || /^MAIL/i.test(f.command))) continue;
        throw err;
      }
      this.release(session);
      return { rejected: [...info.rejected], replies: (info.rejectedErrors ?? []).map((e) => e.response ?? e.message) };
    }
  }

  private async acquire(): Promise<{ session: SMTPConnection; reused: boolean }> {
    for (;;) {
      if (this.closed) throw new Error('delivery is closed');
      const idle = this.idle.pop();
      if (idle && !this.dead.has(idle)) return { session: idle, reused: true };
      if (idle) continue;
      if (this.count < this.max) return { session: await this.open(), reused: false };
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private open(): Promise<SMTPConnection> {
    this.count++;
    const session = new SMTPConnection({ host: this.host, port: this.port, lmtp: this.protocol === 'lmtp', secure: false, ignoreTLS: true, connectionTimeout: this.timeoutMs, greetingTimeout: this.timeoutMs, socketTimeout: this.timeoutMs });
    return new Promise((resolve, reject) => {
      let ready = false;
      const gone = (err?: Error) => {
        if (this.dead.has(session)) return;
        this.dead.add(session);
        this.count--;
        this.wake();
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

  private release(session: SMTPConnection): void {
    if (this.dead.has(session)) return;
    if (this.closed) {
      session.quit();
      return;
    }
    this.idle.push(session);
    this.wake();
  }

  private discard(session: SMTPConnection): void {
    if (!this.dead.has(session)) {
      this.dead.add(session);
      this.count--;
      this.wake();
    }
    session.close();
  }

  private wake(): void {
    this.waiting.shift()?.();
  }

  close(): void {
    this.closed = true;
    for (const s of this.idle.splice(0)) s.quit();
    for (const w of this.waiting.splice(0)) w();
  }
}

/** Sessions kept to the mailbox store: as many as the SMTP sessions a gateway commonly serves at once. */
const SESSIONS = 16;

export class LocalDelivery {
  private readonly sessions: SmtpSessions;
  private readonly delivered: Database<number, string>;

  constructor(host: string, port: number, timeoutMs: number, stateDir: string, protocol: DeliveryProtocol = 'smtp') {
    this.sessions = new SmtpSessions(host, port, SESSIONS, timeoutMs, protocol);
    this.delivered = open<number, string>({ path: stateDir, compression: false });
    const cutoff = Date.now() - KEEP_MS;
    for (const { key, value } of this.delivered.getRange({})) if (value < cutoff) void this.delivered.remove(key);
  }

  /** Delivers every local copy of one arrival; throws a 4xx GatewayError if the store fails. */
  async deliver(arrival: Buffer, from: string, copies: readonly Copy[]): Promise<void> {
    const id = arrivalId(arrival);
    for (const copy of copies) {
      const todo = copy.rcpts.filter((r) => this.delivered.get(`${id}:${r}`) === undefined);
      if (todo.length === 0) continue;
      let refused: Refused;
      try {
        refused = await this.sessions.send(from, todo, copy.message);
      } catch (err) {
        throw new GatewayError('deliveryUnavailable', (err as SendFailure).response ?? (err as Error).message);
      }
      // The store took the message for the others: record them, so the sender's retry reaches only the refused.
      const taken = todo.filter((r) => !refused.rejected.some((x) => x.toLowerCase() === r.toLowerCase()));
      await this.delivered.childTransaction(() => {
        for (const r of taken) this.delivered.put(`${id}:${r}`, Date.now());
      });
      if (taken.length < todo.length) throw new GatewayError('deliveryUnavailable', `${refused.replies[0] ?? 'refused'} (${refused.rejected.join(', ')})`);
    }
  }

  async close(): Promise<void> {
    this.sessions.close();
    await this.delivered.close();
  }
}
