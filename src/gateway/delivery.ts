/**
 * Delivery of local copies straight to the mailbox store (SMTP or LMTP
 * service such as Postfix/Dovecot), before the gateway answers 250: copies
 * for local users — plaintext ones in transparent mode included — never sit
 * in this gateway's spool. A retried message is delivered exactly once: each
 * (arrival, recipient) pair delivered is recorded in LMDB, and skipped when
 * the sender retries after a partial failure.
 */
import { createHash } from 'node:crypto';
import { type Database, open } from 'lmdb';
import { createTransport } from 'nodemailer';
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

export class LocalDelivery {
  private readonly transport: ReturnType<typeof createTransport>;
  private readonly delivered: Database<number, string>;

  constructor(host: string, port: number, timeoutMs: number, stateDir: string) {
    this.transport = createTransport({ host, port, secure: false, ignoreTLS: true, pool: true, maxConnections: 8, connectionTimeout: timeoutMs, greetingTimeout: timeoutMs, socketTimeout: timeoutMs });
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
      try {
        await this.transport.sendMail({ envelope: { from, to: todo }, raw: copy.message });
      } catch (err) {
        throw new GatewayError('deliveryUnavailable', (err as { response?: string }).response ?? (err as Error).message);
      }
      await this.delivered.childTransaction(() => {
        for (const r of todo) this.delivered.put(`${id}:${r}`, Date.now());
      });
    }
  }

  async close(): Promise<void> {
    this.transport.close();
    await this.delivered.close();
  }
}
