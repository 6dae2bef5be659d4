/**
 * A mailbox store for the demo and the tests: an SMTP server on loopback
 * that keeps what it receives in memory (standing in for Dovecot LMTP or a
 * Postfix mailbox transport).
 */
import { SMTPServer } from 'smtp-server';

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

  constructor() {
    this.server = new SMTPServer({
      authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false, size: 64 * 1024 * 1024,
      onData: (stream, session, cb) => {
        const parts: Buffer[] = [];
        stream.on('data', (c: Buffer) => parts.push(c));
        stream.on('end', () => {
          if (this.refuse && (!this.refuseFor || session.envelope.rcptTo.some((r) => r.address === this.refuseFor))) {
            const err = Object.assign(new Error(this.refuse), { responseCode: 451 });
            cb(err);
            return;
          }
          this.mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(parts) });
          cb();
        });
      },
    });
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
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
