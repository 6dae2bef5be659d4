/**
 * Sealing is the last change to a message. Whatever a later hop of our own
 * would add to the header — Haraka's outbound adds a Message-ID when there is
 * none or it is "<>", and a Date when there is none; a mailbox store such as
 * Postfix adds the same for mail from its local clients — is added here,
 * before the message is encrypted and sealed, so that no later addition can
 * break the seal (Date and Message-ID are protected fields:
 * src/chain/protected-headers.ts). The Received field Haraka's outbound puts
 * on top is a trace field the seals do not cover.
 */
import { randomBytes } from 'node:crypto';
import { splitHeaderBlock } from '../mail/header-block';

/** RFC 5322 date-time in UTC, e.g. "Sun, 06 Dec 2026 03:20:00 +0000". */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

/** The header block's fields (unfolded boundaries kept), and where the body starts. */
function splitHead(message: Buffer): { fields: string[]; body: Buffer; separated: boolean } {
  const { fields, bodyStart, separated } = splitHeaderBlock(message);
  return { fields, body: message.subarray(bodyStart), separated };
}

/**
 * Adds a Date (the `now` given) and a Message-ID (`<random@domain>`) when they
 * are missing; replaces an empty Message-ID ("<>") the way Haraka's outbound
 * would. The id is random, not derived from the content: two submissions with
 * the same bytes and no Message-ID may be two messages, and a recipient's store
 * that drops a second message with a Message-ID it has seen would lose the
 * second (a retry of such a submission is delivered again with another id: a
 * duplicate, never a loss; docs/delivery.md). Returns the message itself when
 * nothing is missing.
 */
export function completeHeaders(message: Buffer, domain: string, now: Date): Buffer {
  const { fields, body, separated } = splitHead(message);
  const valueOf = (name: string) =>
    fields.filter((f) => f.toLowerCase().startsWith(`${name}:`)).map((f) => f.slice(name.length + 1).trim());
  const ids = valueOf('message-id');
  const add: string[] = [];
  let keep = fields;
  if (ids.length === 0 || (ids.length === 1 && ids[0] === '<>')) {
    keep = fields.filter((f) => !f.toLowerCase().startsWith('message-id:'));
    const id = randomBytes(16).toString('hex');
    add.push(`Message-ID: <${id}.ssmax@${domain}>`);
  }
  if (valueOf('date').length === 0) add.push(`Date: ${rfc5322Date(now)}`);
  if (add.length === 0) return message;
  const head = [...keep, ...add].map((f) => `${f}\r\n`).join('');
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), separated ? body : Buffer.alloc(0)]);
}
