/**
 * A mailbox store for the demo and the tests: an SMTP server on loopback
 * that keeps what it receives in memory (standing in for Dovecot LMTP or a
 * Postfix mailbox transport).
 */
import { SMTPServer } from 'smtp-server';

interface PausedConnection {
  _server: { options: { maxClients?: number }; connections: Set<unknown> };
  name: string;
  _setListeners(done: () => void): void;
  connectionReady(): void;
  send(code: number, text: string, andClose?: boolean): void;
}

/**
 * smtp-server holds back its greeting for 100 ms on every connection (to catch
 * "early talkers"; not configurable). Our mailbox store only ever talks to
 * the gateway on loopback, and Haraka's smtp_forward opens one connection per
 * message, so that pause would dominate every relay measured against it
 * (~100 ms per message, whatever the relay does). It greets at once instead;
 * the rest of the connection set-up is smtp-server's own (its init() without
 * the timer).
 */
function greetAtOnce(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { SMTPConnection } = require('smtp-server/lib/smtp-connection') as {
    SMTPConnection: { prototype: PausedConnection & { init(): void; __greetsAtOnce?: boolean } };
  };
  const proto = SMTPConnection.prototype;
  if (proto.__greetsAtOnce) return;
  if (typeof proto._setListeners !== 'function' || typeof proto.connectionReady !== 'function')
    throw new Error('smtp-server changed: cannot remove its greeting pause');
  proto.init = function init(this: PausedConnection) {
    this._setListeners(() => {
      const max = this._server.options.maxClients;
      if (max && this._server.connections.size > max)
        return this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
      this.connectionReady();
    });
  };
  proto.__greetsAtOnce = true;
}

export interface StoredMail {
  readonly from: string;
  readonly to: readonly string[];
  readonly raw: Buffer;
}

export class MailboxStore {
  readonly mails: StoredMail[] = [];
  private readonly server: SMTPServer;
  /** When set, deliveries are refused with this 4xx reply (fault tests)… */
  refuse: string | undefined;
  /** …only those for this recipient, when set. */
  refuseFor: string | undefined;
  /** When set, each message is answered only after this many ms (slow-store tests). */
  delayMs = 0;
  /** When set, each message is answered only once this settles (after `delayMs`): a test keeps a delivery in flight for as long as it needs. */
  gate: Promise<unknown> | undefined;

  constructor() {
    greetAtOnce();
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      size: 64 * 1024 * 1024,
      onData: (stream, session, cb) => {
        const parts: Buffer[] = [];
        stream.on('data', (c: Buffer) => parts.push(c));
        const finish = () => {
          if (this.refuse && (!this.refuseFor || session.envelope.rcptTo.some((r) => r.address === this.refuseFor))) {
            const err = Object.assign(new Error(this.refuse), { responseCode: 451 });
            cb(err);
            return;
          }
          this.mails.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: Buffer.concat(parts),
          });
          cb();
        };
        const gated = () => {
          const gate = this.gate;
          if (gate) void gate.then(finish, finish);
          else finish();
        };
        stream.on('end', () => (this.delayMs > 0 ? void setTimeout(gated, this.delayMs) : gated()));
      },
    });
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        // after listening, an error is a client's connection failing (a gateway killed mid-delivery: ECONNRESET); the store goes on
        this.server.on('error', () => undefined);
        resolve();
      });
    });
  }

  /** Mail for one recipient. */
  for(address: string): StoredMail[] {
    return this.mails.filter((m) => m.to.includes(address));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
