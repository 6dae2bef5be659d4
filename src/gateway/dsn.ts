/**
 * Delivery status notifications to local senders (RFC 3464). Haraka's outbound
 * writes the failure notices itself (a peer refused a recipient, a copy
 * expired in the queue: multipart/report with message/delivery-status and the
 * headers only, text/rfc822-headers); the plugin routes them, and everything
 * else addressed to a local domain, to the mailbox store ([delivery] host:
 * hook_get_mx), so they arrive. This module writes the notices Haraka has
 * not: "delayed", once per queued copy after [delivery] delay_notice_seconds
 * (recorded as sent only after it was queued: a notice that could not be
 * queued is tried again at the next deferral), and "failed" for recipients
 * the mailbox store refused for good after others of the same message were
 * taken. Like Haraka's, each carries the copy's header fields and never its body (a
 * peer copy's body is ciphertext; its headers are the outer ones), comes from
 * the null sender (so it is never bounced again) and goes to the local store
 * only (never to a peer, never sealed).
 */
import { randomUUID } from 'node:crypto';
import { rfc5322Date } from './completion';
import { sanitize } from '../mail/replies';

export interface DelayNotice {
  /** This gateway's host name (Reporting-MTA). */
  readonly me: string;
  /** The local sender the notice goes to. */
  readonly to: string;
  readonly rcpts: readonly string[];
  /** When the copy was queued. */
  readonly queuedAt: Date;
  /** When the queue gives up on it (Will-Retry-Until), if known. */
  readonly retryUntil?: Date;
  /** The last temporary failure, one line (e.g. the peer's 4xx reply). */
  readonly reason: string;
  /** The queued copy's header block (CRLF lines), for text/rfc822-headers. */
  readonly headers: string;
  readonly now: Date;
}

/**
 * One printable line of at most 300 bytes (values from the queue, peers' replies, the message's own header).
 * A notice is written one character per byte (`report`), and header text here is the message's bytes read so
 * (raw UTF-8 in a Subject, RFC 6532): a cut falls before the UTF-8 character it would split, so the notice's
 * Subject stays UTF-8 and Haraka's queue takes it (outbound-queue.ts checkUtf8Fields).
 */
export function line(text: string): string {
  return cutUtf8Bytes(sanitize(text, Infinity).trim(), MAX_LINE);
}

const MAX_LINE = 300;

/**
 * `bytes` (one character per byte) cut to at most `max` bytes with "..." when longer, never inside a UTF-8 character:
 * the cut moves back over at most three continuation bytes (10xxxxxx) to the lead byte of the character it would split.
 */
export function cutUtf8Bytes(bytes: string, max: number): string {
  if (bytes.length <= max) return bytes;
  let end = max - 3;
  for (let back = 0; back < 3 && end > 0 && (bytes.charCodeAt(end) & 0xc0) === 0x80 && bytes.charCodeAt(end) < 0x100; back++) end--;
  return `${bytes.slice(0, end)}...`;
}

/** The enhanced status code (RFC 3463) in a reply, of the class of `fallback`, else `fallback`. */
export function statusOf(reason: string, fallback: string): string {
  const pattern = fallback.startsWith('5') ? /\b(5\.\d{1,3}\.\d{1,3})\b/ : /\b(4\.\d{1,3}\.\d{1,3})\b/;
  return pattern.exec(reason)?.[1] ?? fallback;
}

export function delayNotice(n: DelayNotice): Buffer {
  const hours = Math.max(0, Math.round((n.now.getTime() - n.queuedAt.getTime()) / 360000) / 10);
  const subject = subjectOf(n.headers);
  return report(
    n,
    'Delayed Mail (still being retried)',
    [
      `Your message${subject ? ` "${line(subject)}"` : ''} has not yet been delivered to:`,
      ...n.rcpts.map((r) => `    ${line(r)}`),
      '',
      `It has been waiting for ${hours} hour(s). The last attempt failed with:`,
      `    ${line(n.reason)}`,
      '',
      n.retryUntil
        ? `Delivery will be tried until ${rfc5322Date(n.retryUntil)}; you will be told if it fails.`
        : 'Delivery will be tried again; you will be told if it fails.',
      'You do not need to send the message again.',
    ],
    n.rcpts.flatMap((r) => [
      '',
      `Final-Recipient: rfc822;${line(r)}`,
      'Action: delayed',
      `Status: ${statusOf(n.reason, '4.0.0')}`,
      `Diagnostic-Code: smtp;${line(n.reason)}`,
      ...(n.retryUntil ? [`Will-Retry-Until: ${rfc5322Date(n.retryUntil)}`] : []),
    ]),
  );
}

export interface FailureNotice {
  /** This gateway's host name (Reporting-MTA). */
  readonly me: string;
  /** The sender the notice goes to. */
  readonly to: string;
  /** Each recipient refused for good, with the mailbox store's reply. */
  readonly failed: readonly { readonly rcpt: string; readonly reply: string }[];
  /** When the message arrived. */
  readonly queuedAt: Date;
  /** The message's header block (CRLF lines), for text/rfc822-headers. */
  readonly headers: string;
  readonly now: Date;
}

/** "failed": recipients the mailbox store refused for good while it took the message for the others (the sender got 250). */
export function failureNotice(n: FailureNotice): Buffer {
  const subject = subjectOf(n.headers);
  return report(
    n,
    'Undelivered Mail Returned to Sender',
    [
      `Your message${subject ? ` "${line(subject)}"` : ''} could not be delivered to:`,
      ...n.failed.map((f) => `    ${line(f.rcpt)}: ${line(f.reply)}`),
      '',
      'This is a permanent error; it will not be tried again. The other recipients received it.',
    ],
    n.failed.flatMap((f) => [
      '',
      `Final-Recipient: rfc822;${line(f.rcpt)}`,
      'Action: failed',
      `Status: ${statusOf(f.reply, '5.0.0')}`,
      `Diagnostic-Code: smtp;${line(f.reply)}`,
    ]),
  );
}

function subjectOf(headers: string): string {
  return /^subject:(.*)$/im.exec(headers)?.[1]?.trim() ?? '';
}

function report(
  n: { readonly me: string; readonly to: string; readonly queuedAt: Date; readonly headers: string; readonly now: Date },
  title: string,
  text: string[],
  perRecipient: string[],
): Buffer {
  const boundary = `ssmax-dsn-${randomUUID()}`;
  const subject = subjectOf(n.headers);
  const original = /^message-id:(.*)$/im.exec(n.headers)?.[1]?.trim();
  const status = [`Reporting-MTA: dns;${line(n.me)}`, `Arrival-Date: ${rfc5322Date(n.queuedAt)}`, ...perRecipient].join('\r\n');
  const headers = n.headers.endsWith('\r\n') ? n.headers : `${n.headers}\r\n`;
  return Buffer.from(
    [
      `From: Mail Delivery System <MAILER-DAEMON@${line(n.me)}>`,
      `To: ${line(n.to)}`,
      `Subject: ${title}${subject ? `: ${line(subject)}` : ''}`,
      `Date: ${rfc5322Date(n.now)}`,
      `Message-ID: <${randomUUID()}@${line(n.me)}>`,
      ...(original ? [`References: ${line(original)}`] : []),
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
      '',
      `--${boundary}`,
      // the message's Subject is quoted as it came (raw UTF-8 when it was)
      'Content-Type: text/plain; charset=utf-8',
      '',
      [`This is the mail system at ${line(n.me)}.`, '', ...text].join('\r\n'),
      '',
      `--${boundary}`,
      'Content-Type: message/delivery-status',
      '',
      status,
      '',
      `--${boundary}`,
      'Content-Type: text/rfc822-headers',
      '',
      headers,
      `--${boundary}--`,
      '',
    ].join('\r\n'),
    'latin1',
  );
}

/** At most this much of a message's header block goes into a notice. */
export const MAX_NOTICE_HEADER = 262144;

/**
 * The header block of a message (at most 256 KB): the same reader as a queued
 * copy's (HeaderCollector), given the message's first 256 KB and the three
 * bytes a blank line at the bound may need — never more, however long the
 * message.
 */
export function headerBlock(message: Buffer): string {
  const collector = new HeaderCollector();
  collector.push(message.subarray(0, MAX_NOTICE_HEADER + 4));
  return collector.result();
}

/**
 * The header block of a message read in chunks (a queued copy's data stream):
 * each chunk is searched for the blank line once, with the three bytes before
 * it (where a CRLF CRLF split across chunks starts), so the work is linear in
 * what was read, whatever the chunk sizes; reading stops at 256 KB.
 */
export class HeaderCollector {
  /** The chunks as read (joined once, at the end: appending to one string and searching it would copy it whole at each chunk). */
  private readonly parts: string[] = [];
  private length = 0;
  /** The last three characters read. */
  private tail = '';
  private end = -1;

  /** Adds a chunk; true once the header block is complete or the bound is reached (read no further). */
  push(chunk: Buffer | string): boolean {
    if (this.done) return true;
    const text = typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    const window = this.tail + text;
    const at = window.indexOf('\r\n\r\n');
    if (at >= 0) this.end = this.length - this.tail.length + at;
    this.parts.push(text);
    this.length += text.length;
    this.tail = window.slice(-3);
    return this.done;
  }

  get done(): boolean {
    return this.end >= 0 || this.length > MAX_NOTICE_HEADER;
  }

  /** The header block with its last CRLF (all that was read, up to 256 KB, when no blank line was met). */
  result(): string {
    const text = this.parts.join('');
    return text.slice(0, this.end >= 0 && this.end < MAX_NOTICE_HEADER ? Math.min(this.end + 2, MAX_NOTICE_HEADER) : MAX_NOTICE_HEADER);
  }
}

/** The header block of a queued copy (at most 256 KB) from its data stream; what was read so far when the stream fails. Never rejects. */
export function streamedHeader(open: () => NodeJS.ReadableStream & { destroy?: () => void }): Promise<string> {
  return new Promise((resolve) => {
    const collector = new HeaderCollector();
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      resolve(collector.result());
    };
    try {
      const stream = open();
      stream.on('data', (c: Buffer | string) => {
        if (!collector.push(c)) return;
        finish();
        stream.destroy?.();
      });
      stream.on('end', finish);
      stream.on('error', finish);
    } catch {
      finish();
    }
  });
}

/** What a queued copy is, for its delay notice (from Haraka's queue entry). */
export interface DelayedCopy {
  /** The queue's id of the copy: one notice per id. */
  readonly id: string;
  readonly queuedAt: Date;
  readonly sender: string;
  readonly rcpts: readonly string[];
  readonly reason: string;
}

export interface DelayNotices {
  readonly me: string;
  readonly localDomains: readonly string[];
  readonly delayNoticeMs: number;
  /** The record of notices sent (LocalDelivery: noted/note). */
  readonly marks: { noted(key: string): boolean; note(key: string): Promise<void> };
  /** Queues a notice to a local sender (Haraka's outbound, null sender); rejects when it was not queued. */
  send(to: string, notice: Buffer): Promise<void>;
}

/** Notices being sent now (one per copy at a time). */
const sending = new Set<string>();

/**
 * One delay notice per queued copy, to its local sender, once it has waited
 * `delayNoticeMs`: marked as sent only after `send` queued it, so a notice
 * that could not be queued goes at the next deferral. Resolves with whether a
 * notice was sent now.
 */
export async function notifyDelay(
  d: DelayNotices,
  copy: DelayedCopy,
  headers: () => Promise<string>,
  now: Date = new Date(),
): Promise<boolean> {
  const domain = copy.sender.slice(copy.sender.lastIndexOf('@') + 1).toLowerCase();
  if (!copy.sender.includes('@') || !d.localDomains.includes(domain)) return false; // a notice itself (null sender), or not from here
  if (now.getTime() - copy.queuedAt.getTime() < d.delayNoticeMs) return false;
  const key = `delay:${copy.id}`;
  if (d.marks.noted(key) || sending.has(key)) return false;
  sending.add(key);
  try {
    const notice = delayNotice({
      me: d.me,
      to: copy.sender,
      rcpts: copy.rcpts,
      queuedAt: copy.queuedAt,
      now,
      reason: copy.reason,
      headers: await headers(),
    });
    await d.send(copy.sender, notice);
    await d.marks.note(key);
    return true;
  } finally {
    sending.delete(key);
  }
}
