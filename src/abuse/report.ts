/**
 * Abuse reports across organisations (SSMAX §2.2; docs/protocol.md "Sender
 * tracking"; docs/abuse.md), the receiving side:
 *
 * - `identifyReportedMessage` verifies the seal chain of a received message
 *   with the sealers' bundles and reads, from seal i=1, the sending
 *   organisation (`d=`) and the tracking token (`tt=`); the abuse contact
 *   comes from that organisation's verified bundle. A chain that does not
 *   verify is refused: a token is only worth reporting when the seal that
 *   carries it is genuine. So is a copy this organisation did not receive:
 *   the newest seal must be its own and bind the copy's recipient (`rc=`),
 *   so no organisation reports (and asks to trace) mail sent to another.
 * - `buildAbuseReport` writes an ARF report (RFC 5965): multipart/report with
 *   a human part, message/feedback-report (with the SSMAX fields of
 *   docs/abuse.md) and text/rfc822-headers (the original header block).
 *   Never the body: a decrypted body is the recipient's, and the sealed one
 *   is of no use to the sender's organisation.
 * - `parseAbuseReport` reads such a report back (the sending side).
 *
 * MIME is built with nodemailer's MimeNode (it picks the transfer encodings)
 * and read with mailparser; header blocks are split with @zone-eu/mailsplit.
 */
import { Headers } from '@zone-eu/mailsplit';
import { type ParsedMail, simpleParser } from 'mailparser';
import MimeNode from 'nodemailer/lib/mime-node';
import { type PeerEntry, operatorErrorText } from '../directory/directory';
import { DEFAULT_LIMITS } from '../envelope/limits';
import { parseHead, readHead } from '../envelope/source';
import { withoutTrailingLineEnds } from '../chain/body-hash';
import { AbuseError } from './errors';
import { verifyReceivedChain } from './received-chain';
import type { SealReport } from '../chain/seal-reading';
import { RECIPIENTS_HEADER, RecipientsError, checkRecipients, parseRecipients, recipientFieldsIn } from '../chain/recipients';

/** The SSMAX fields of the message/feedback-report part (docs/abuse.md). */
export const ARF_FIELDS = {
  token: 'X-SSMAX-Tracking-Token',
  domain: 'X-SSMAX-Sealing-Domain',
  messageId: 'X-SSMAX-Message-ID',
  chain: 'X-SSMAX-Chain',
} as const;

const MAX_REPORT_BYTES = 4 * 1024 * 1024;

export interface ReportedMessage {
  /** `d=` of seal i=1: the organisation that sent the message. */
  readonly sealingDomain: string;
  /** `tt=` of seal i=1. */
  readonly trackingToken: string;
  /** The Message-ID field value (with angle brackets), when the message has one. */
  readonly messageId?: string;
  /** The abuse address from the sending organisation's bundle (without `mailto:`). */
  readonly abuseContact: string;
  /** `ssmax-chain=pass header.d=… header.i=…` */
  readonly chainSummary: string;
  /** The top-level header block of the reported message, as received. */
  readonly headers: Buffer;
  /** `t=` of seal i=1 (Unix seconds): when the sending organisation sealed it. */
  readonly sealTime: number;
  /** `t=` of the newest seal (Unix seconds): when the last gateway (ours) received it; the ARF Arrival-Date. */
  readonly arrivalTime?: number;
}

export interface IdentifyOptions {
  /** The verified bundle of an organisation (e.g. `Directory.lookup`); throws when it has none. */
  readonly lookup: (domain: string) => Promise<PeerEntry>;
  /** Milliseconds since the epoch; default Date.now. */
  readonly now?: () => number;
  /**
   * This organisation's domain. Only a copy this organisation received is reported: the newest seal must be
   * its own and bind the copy's recipient (`rc=`, with the one SSMAX-Recipients field that opens it). A copy
   * its gateway delivered in transparent mode (newest seal over the encrypted form) is accepted
   * (src/abuse/received-chain.ts).
   */
  readonly ownDomain: string;
  /** The recipient who complained, when known: it must be an address of `ownDomain` that the newest seal binds. */
  readonly recipient?: string;
}

/**
 * The newest seal must be `ownDomain`'s and bind the recipients of the copy (docs/chain.md, "Recipient
 * binding"): one SSMAX-Recipients field that hashes to its `rc=`, and `recipient`, when given, among them.
 */
function checkOwnCopy(message: Uint8Array, newest: SealReport, ownDomain: string, recipient: string | undefined): void {
  const notOurs = (why: string) => new AbuseError('foreign', `Cannot report the message: ${why}; report only mail ${ownDomain} received`);
  if (newest.domain !== ownDomain)
    throw notOurs(
      `its newest seal (i=${newest.instance}) is by "${newest.domain}", not by ${ownDomain}: this is not a copy ${ownDomain} received`,
    );
  if (!newest.recipientCommitment) throw notOurs(`its newest seal (i=${newest.instance}, ${ownDomain}) binds no recipients`);
  const fields = recipientFieldsIn(message);
  if (fields.length !== 1) throw notOurs(`expected one ${RECIPIENTS_HEADER} field beside the newest seal, found ${fields.length}`);
  const rcpt = recipient?.trim().toLowerCase();
  if (rcpt !== undefined && !rcpt.endsWith(`@${ownDomain}`)) throw notOurs(`the recipient ${rcpt} is not an address of ${ownDomain}`);
  try {
    const { bound } = checkRecipients(parseRecipients(fields[0]!), newest.recipientCommitment, rcpt === undefined ? [] : [rcpt]);
    if (rcpt !== undefined && bound.length !== 1) throw notOurs(`its newest seal does not bind the recipient ${rcpt}`);
  } catch (err) {
    if (err instanceof RecipientsError) throw notOurs(err.message);
    throw err;
  }
}

/** The value of the first `name` field of a header block, unfolded and trimmed. */
function firstValue(headers: Headers, name: string): string | undefined {
  const line = headers.get(name)[0];
  if (line === undefined) return undefined;
  return line
    .slice(line.indexOf(':') + 1)
    .replace(/\r?\n[ \t]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

async function headerBlock(message: Uint8Array, what: string): Promise<Buffer> {
  try {
    const { head } = await readHead(message, DEFAULT_LIMITS);
    return Buffer.from(head);
  } catch (err) {
    throw new AbuseError('format', `Cannot read ${what}: ${operatorErrorText(err)}`);
  }
}

/** Verifies the chain of a received message and finds who sealed it first, with its token and abuse contact. */
export async function identifyReportedMessage(message: Uint8Array, options: IdentifyOptions): Promise<ReportedMessage> {
  if (!(message instanceof Uint8Array)) throw new TypeError('Cannot identify the message: it must be a Uint8Array');
  if (typeof options.ownDomain !== 'string' || options.ownDomain.trim() === '')
    throw new TypeError("Cannot identify the message: the reporting organisation's domain (ownDomain) is required");
  const ownDomain = options.ownDomain.trim().toLowerCase();
  const lookupErrors: string[] = [];
  const lookup = async (domain: string): Promise<PeerEntry> => {
    try {
      return await options.lookup(domain);
    } catch (err) {
      lookupErrors.push(operatorErrorText(err));
      throw err;
    }
  };
  const received = await verifyReceivedChain(message, lookup, ownDomain, options.now ?? Date.now);
  if (received.result === 'none')
    throw new AbuseError('chain', 'Cannot report the message: it carries no SSMAX-Seal, so no organisation can trace its sender');
  if (received.result === 'temperror')
    throw new AbuseError(
      'directory',
      `Cannot report the message: a sealing organisation's bundle is unavailable: ${lookupErrors[0] ?? received.detail}`,
    );
  if (received.result === 'fail')
    throw new AbuseError('chain', `Cannot report the message: its seal chain does not verify (${received.summary}): ${received.detail}`);
  const chain = { ...received.chain, summary: received.summary };
  checkOwnCopy(message, chain.instances[chain.instances.length - 1]!, ownDomain, options.recipient);
  const first = chain.instances[0];
  if (!first || first.trackingToken === undefined)
    throw new AbuseError('chain', 'Cannot report the message: seal i=1 carries no tracking token');
  let entry: PeerEntry;
  try {
    entry = await options.lookup(first.domain);
  } catch (err) {
    throw new AbuseError('directory', `Cannot report the message: no bundle for "${first.domain}": ${operatorErrorText(err)}`);
  }
  const headers = await headerBlock(message, 'the message');
  const messageId = firstValue(parseHead(headers, DEFAULT_LIMITS), 'message-id');
  return {
    sealingDomain: first.domain,
    trackingToken: first.trackingToken,
    abuseContact: entry.abuseContact.replace(/^mailto:/i, ''),
    chainSummary: chain.summary,
    headers,
    sealTime: first.time,
    arrivalTime: chain.instances[chain.instances.length - 1]?.time ?? first.time,
    ...(messageId ? { messageId } : {}),
  };
}

export interface AbuseReportOptions {
  readonly reported: ReportedMessage;
  /** The reporting organisation's abuse desk (From: of the report). */
  readonly from: string;
  /** Default: the abuse contact of the sending organisation's bundle. */
  readonly to?: string;
  /** Host name of the reporting gateway (`Reporting-MTA: dns; …`). */
  readonly reportingMta: string;
  /** The recipient who complained (`Original-Rcpt-To:`), when known. */
  readonly originalRcptTo?: string;
  /** A few words from the person reporting; goes in the human-readable part. */
  readonly comment?: string;
  readonly now: Date;
  /** Message-ID of the report itself; default generated. */
  readonly reportMessageId?: string;
}

const FIELD_VALUE = /^[\x21-\x7e][\x20-\x7e]*$/;

function fieldLine(name: string, value: string): string {
  const v = value.trim();
  if (!FIELD_VALUE.test(v))
    throw new AbuseError('format', `Cannot write feedback field ${name}: value "${v.slice(0, 80)}" is not printable ASCII`);
  return `${name}: ${v}\r\n`;
}

/** The ARF report (RFC 5965 §2) for a message identified by `identifyReportedMessage`, as message bytes. */
export async function buildAbuseReport(opts: AbuseReportOptions): Promise<Buffer> {
  const r = opts.reported;
  const to = opts.to ?? r.abuseContact;
  // RFC 5965 §3.1: Feedback-Type, User-Agent, Version first; then the optional fields.
  const report = [
    fieldLine('Feedback-Type', 'abuse'),
    fieldLine('User-Agent', 'SSMAX-abuse/1'),
    fieldLine('Version', '1'),
    fieldLine('Arrival-Date', new Date((r.arrivalTime ?? r.sealTime) * 1000).toUTCString()),
    fieldLine('Reporting-MTA', `dns; ${opts.reportingMta}`),
    ...(opts.originalRcptTo ? [fieldLine('Original-Rcpt-To', opts.originalRcptTo)] : []),
    fieldLine('Reported-Domain', r.sealingDomain),
    fieldLine(ARF_FIELDS.domain, r.sealingDomain),
    fieldLine(ARF_FIELDS.token, r.trackingToken),
    ...(r.messageId ? [fieldLine(ARF_FIELDS.messageId, r.messageId)] : []),
    fieldLine(ARF_FIELDS.chain, r.chainSummary),
  ].join('');
  const human = [
    `This is an abuse report (RFC 5965) for a message sealed by ${r.sealingDomain}.`,
    '',
    `The message carries the SSMAX tracking token below; ${r.sealingDomain} can resolve it to the registered sender.`,
    `Message-ID: ${r.messageId ?? '(none)'}`,
    `Seal chain: ${r.chainSummary}`,
    ...(opts.comment ? ['', 'Comment from the recipient:', opts.comment] : []),
    '',
    'The original header block is attached; the body is not.',
    '',
  ].join('\r\n');

  const root = new MimeNode('multipart/report; report-type=feedback-report', {
    newline: 'win',
    disableFileAccess: true,
    disableUrlAccess: true,
    hostname: opts.reportingMta,
  });
  root.setHeader({
    From: opts.from,
    To: to,
    Subject: `Abuse report: message from ${r.sealingDomain}${r.messageId ? ` ${r.messageId}` : ''}`,
    Date: opts.now,
    'MIME-Version': '1.0',
    'Auto-Submitted': 'auto-generated',
    ...(opts.reportMessageId ? { 'Message-ID': opts.reportMessageId } : {}),
  });
  root.createChild('text/plain; charset=utf-8').setContent(human);
  root.createChild('message/feedback-report').setContent(report);
  const headers = withoutTrailingLineEnds(r.headers.toString('latin1').replace(/\r?\n/g, '\r\n'));
  root.createChild('text/rfc822-headers').setContent(`${headers}\r\n`);
  return root.build();
}

export interface ParsedAbuseReport {
  readonly feedbackType: string;
  readonly sealingDomain: string;
  readonly trackingToken: string;
  /** From the feedback fields, else from the original headers. */
  readonly messageId?: string;
  readonly reportingMta?: string;
  /** From: of the report. */
  readonly reporter?: string;
  /** The address of From: (lowercased), when it has exactly one: its domain is the reporting organisation of an unsealed report. */
  readonly reporterAddress?: string;
  /** The original header block (text/rfc822-headers), when the report has one. */
  readonly originalHeaders?: Buffer;
}

/** Reads an ARF report (as written by `buildAbuseReport`, or any RFC 5965 report carrying the SSMAX fields). */
export async function parseAbuseReport(raw: Uint8Array): Promise<ParsedAbuseReport> {
  if (!(raw instanceof Uint8Array)) throw new TypeError('Cannot read the abuse report: it must be a Uint8Array');
  if (raw.length > MAX_REPORT_BYTES)
    throw new AbuseError('format', `Cannot read the abuse report: ${raw.length} bytes, more than ${MAX_REPORT_BYTES}`);
  let parsed: ParsedMail;
  try {
    parsed = await simpleParser(Buffer.from(raw), {
      skipHtmlToText: true,
      skipTextToHtml: true,
      skipTextLinks: true,
      skipImageLinks: true,
    });
  } catch (err) {
    throw new AbuseError('format', `Cannot read the abuse report: ${operatorErrorText(err)}`);
  }
  const type = parsed.headers.get('content-type') as { value?: string } | undefined;
  if (type?.value?.toLowerCase() !== 'multipart/report')
    throw new AbuseError('format', `Cannot read the abuse report: content type "${type?.value ?? 'text/plain'}" is not multipart/report`);
  const part = (t: string) => parsed.attachments.find((a) => a.contentType.toLowerCase() === t);
  const fb = part('message/feedback-report');
  if (!fb) throw new AbuseError('format', 'Cannot read the abuse report: it has no message/feedback-report part');
  const fields = new Headers(Buffer.concat([fb.content, Buffer.from('\r\n\r\n')]));
  const feedbackType = firstValue(fields, 'feedback-type');
  if (!feedbackType) throw new AbuseError('format', 'Cannot read the abuse report: the feedback report has no Feedback-Type');
  const sealingDomain = (firstValue(fields, ARF_FIELDS.domain) ?? firstValue(fields, 'reported-domain') ?? '').toLowerCase();
  const trackingToken = firstValue(fields, ARF_FIELDS.token);
  if (!trackingToken) throw new AbuseError('format', `Cannot read the abuse report: the feedback report has no ${ARF_FIELDS.token} field`);
  if (!sealingDomain) throw new AbuseError('format', `Cannot read the abuse report: the feedback report has no ${ARF_FIELDS.domain} field`);
  const originalHeaders = part('text/rfc822-headers')?.content;
  const messageId =
    firstValue(fields, ARF_FIELDS.messageId) ?? (originalHeaders ? firstValue(new Headers(originalHeaders), 'message-id') : undefined);
  const reportingMta = firstValue(fields, 'reporting-mta');
  const reporter = parsed.from?.text;
  const fromAddresses = parsed.from?.value ?? [];
  const reporterAddress = fromAddresses.length === 1 ? fromAddresses[0]?.address?.toLowerCase() : undefined;
  return {
    feedbackType,
    sealingDomain,
    trackingToken,
    ...(messageId ? { messageId } : {}),
    ...(reportingMta ? { reportingMta } : {}),
    ...(reporter ? { reporter } : {}),
    ...(reporterAddress ? { reporterAddress } : {}),
    ...(originalHeaders ? { originalHeaders } : {}),
  };
}
