/**
 * Delivery status notifications to local senders (RFC 3464). Haraka's outbound
 * writes the failure notices itself (a peer refused a recipient, a copy
 * expired in the queue: multipart/report with message/delivery-status and the
 * headers only, text/rfc822-headers); the plugin routes them, and everything
 * else addressed to a local domain, to the mailbox store ([delivery] host:
 * hook_get_mx), so they arrive. This module writes the one notice Haraka has
 * not: "delayed", once per queued copy after [delivery] delay_notice_seconds.
 * Like Haraka's, it carries the copy's header fields and never its body (a
 * peer copy's body is ciphertext; its headers are the outer ones), comes from
 * the null sender (so it is never bounced again) and goes to the local store
 * only (never to a peer, never sealed).
 */
import { randomUUID } from 'node:crypto';
import { rfc5322Date } from './completion';
import { sanitize } from './replies';

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

/** One printable line of at most 300 characters (values from the queue and peers' replies). */
function line(text: string): string {
  return sanitize(text).trim();
}

/** The enhanced status code in a reply, or 4.0.0. */
function statusOf(reason: string): string {
  return /\b(4\.\d{1,3}\.\d{1,3})\b/.exec(reason)?.[1] ?? '4.0.0';
}

export function delayNotice(n: DelayNotice): Buffer {
  const boundary = `ssmax-dsn-${randomUUID()}`;
  const hours = Math.max(0, Math.round((n.now.getTime() - n.queuedAt.getTime()) / 360000) / 10);
  const subject = /^subject:(.*)$/im.exec(n.headers)?.[1]?.trim() ?? '';
  const original = /^message-id:(.*)$/im.exec(n.headers)?.[1]?.trim();
  const text = [
    `This is the mail system at ${line(n.me)}.`,
    '',
    `Your message${subject ? ` "${line(subject)}"` : ''} has not yet been delivered to:`,
    ...n.rcpts.map((r) => `    ${line(r)}`),
    '',
    `It has been waiting for ${hours} hour(s). The last attempt failed with:`,
    `    ${line(n.reason)}`,
    '',
    n.retryUntil ? `Delivery will be tried until ${rfc5322Date(n.retryUntil)}; you will be told if it fails.` : 'Delivery will be tried again; you will be told if it fails.',
    'You do not need to send the message again.',
  ].join('\r\n');
  const status = [
    `Reporting-MTA: dns;${line(n.me)}`,
    `Arrival-Date: ${rfc5322Date(n.queuedAt)}`,
    ...n.rcpts.flatMap((r) => ['', `Final-Recipient: rfc822;${line(r)}`, 'Action: delayed', `Status: ${statusOf(n.reason)}`, `Diagnostic-Code: smtp;${line(n.reason)}`, ...(n.retryUntil ? [`Will-Retry-Until: ${rfc5322Date(n.retryUntil)}`] : [])]),
  ].join('\r\n');
  const headers = n.headers.endsWith('\r\n') ? n.headers : `${n.headers}\r\n`;
  return Buffer.from([
    `From: Mail Delivery System <MAILER-DAEMON@${line(n.me)}>`,
    `To: ${line(n.to)}`,
    `Subject: Delayed Mail (still being retried)${subject ? `: ${line(subject)}` : ''}`,
    `Date: ${rfc5322Date(n.now)}`,
    `Message-ID: <${randomUUID()}@${line(n.me)}>`,
    ...(original ? [`References: ${line(original)}`] : []),
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    text,
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
  ].join('\r\n'), 'latin1');
}
