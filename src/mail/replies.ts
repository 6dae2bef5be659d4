/**
 * Every decision of the gateway, as one SMTP reply, in one table (final ones
 * are 550: Haraka answers a DENY after DATA with 550 whatever code it is
 * given; the enhanced status code tells them apart) (STYLE.md,
 * after Postfix). Anything not in the table — an exception, a rejected
 * promise, a timeout, an unreachable key service or directory — is a
 * temporary failure: the sending MTA keeps the message and retries; nothing
 * is relayed (docs/protocol.md, "Fault model"). Final decisions are 5xx with
 * an enhanced status code (RFC 3463) and a clear text, never message content.
 */
import { ChainFormatError, type FailReason } from '../chain/result';
import { CryptoError } from '../crypto/errors';

export interface Reply {
  readonly code: number;
  /** Enhanced status code class.subject.detail, e.g. "5.7.7". */
  readonly status: string;
  readonly text: string;
}

export const REPLIES = {
  // Temporary (4xx): retry later
  internal: { code: 451, status: '4.3.0', text: 'SSMAX gateway fault' },
  timeout: { code: 451, status: '4.4.7', text: 'SSMAX processing timed out' },
  keydUnavailable: { code: 451, status: '4.7.5', text: 'Key service unavailable' },
  // a CRL file of [pki] crls the gateway cannot read (src/pki/crl-files.ts): never an acceptance without it
  crlUnreadable: { code: 451, status: '4.7.0', text: 'Revocation list unreadable' },
  bundleUnavailable: { code: 451, status: '4.7.5', text: 'SSMAX bundle of the peer domain unavailable' },
  // the sender's signing certificate cannot be judged now (its revocation state unknown, not valid yet, on hold)
  userCertificateUnconfirmed: {
    code: 451,
    status: '4.7.5',
    text: "User signature cannot be checked now: the sender's signing certificate",
  },
  chainTemperror: { code: 451, status: '4.7.5', text: 'SSMAX chain could not be verified now' },
  sealCertificateUnconfirmed: {
    code: 451,
    status: '4.7.5',
    text: "SSMAX sealing certificate not in the sealer's bundle as cached here; bundle could not be fetched afresh, retry later",
  },
  deliveryUnavailable: { code: 451, status: '4.4.1', text: 'Mailbox store unavailable' },
  keyRetiredRefresh: { code: 451, status: '4.7.5', text: 'Key version retired here; refresh the bundle and retry' },
  inspectionUnavailable: { code: 451, status: '4.7.5', text: 'Inspection unavailable' },
  // the quarantine or the moderation queue is at a cap that releases free again (bytes in all or of this sender, messages):
  // held later, never lost nor delivered (one that alone is over a byte cap: heldTooLarge, final)
  quarantineFull: { code: 451, status: '4.3.1', text: 'Storage for held messages is full, retry later' },
  // RFC 5321 4.5.3.1.10: a RCPT beyond the recipients one message may have here (MAX_RECIPIENTS); the sender sends the rest in another transaction
  tooManyRecipients: { code: 452, status: '4.5.3', text: 'Too many recipients' },
  // Final (5xx)
  dlpRejected: { code: 550, status: '5.7.1', text: 'Message refused by a data-loss prevention rule' },
  virusFound: { code: 550, status: '5.7.1', text: 'Message refused: malware found' },
  encryptionRequired: { code: 550, status: '5.7.4', text: 'Domain requires SSMAX encryption and publishes no SSMAX bundle' },
  encryptedNoPeer: { code: 550, status: '5.7.4', text: 'Encrypted message cannot be delivered to a domain without SSMAX' },
  /**
   * RFC 3463 X.7.5 (the key information needed is not valid): the recipient domain's bundle, or keyd's judgement of its
   * certificate, refused for good — its organisation's CA revoked (not on hold) or expired (src/gateway/peer-bundle.ts).
   */
  peerRefused: { code: 550, status: '5.7.5', text: "SSMAX keys of the recipient's domain refused for good" },
  chainFailed: { code: 550, status: '5.7.7', text: 'SSMAX chain fails' },
  /** A later hop changed what an earlier seal signed (src/chain/seal-reading.ts earlierMatches; docs/security.md "Tampering by a later hop"). */
  earlierSealBodyChanged: { code: 550, status: '5.7.7', text: 'SSMAX chain fails: the body is not the one an earlier seal signed' },
  earlierSealHeadersChanged: {
    code: 550,
    status: '5.7.7',
    text: 'SSMAX chain fails: protected header fields of an unencrypted message changed after an earlier seal',
  },
  senderNotAligned: { code: 550, status: '5.7.21', text: 'SSMAX seal i=1 is not by the organisation of the From (or Sender) domain' },
  recipientNotBound: { code: 550, status: '5.7.1', text: 'Recipient not bound by the SSMAX seal' },
  sealTooOld: { code: 550, status: '5.4.7', text: 'SSMAX seal older than this gateway accepts' },
  /** A seal dated before the seal before it, or the newest made longer after seal i=1 than [chain] max_seal_age_seconds (src/gateway/binding.ts). */
  sealHopTooLong: { code: 550, status: '5.4.7', text: 'SSMAX seals out of order or made further apart than this gateway accepts' },
  sealCertificateRefused: { code: 550, status: '5.7.5', text: 'SSMAX sealing certificate refused' },
  signatureFailed: { code: 550, status: '5.7.20', text: 'User signature does not verify' },
  // a list's post must be encrypted to this organisation and sealed by the sender's (docs/lists.md): plain mail is no post
  listNeedsSsmax: {
    code: 550,
    status: '5.7.1',
    text: 'Mailing list takes only encrypted SSMAX mail (from an SSMAX organisation or submitted here)',
  },
  /** RFC 3463 X.7.5: the key information needed to validate the message is not valid (as for a revoked sealing certificate). */
  userCertificateRevoked: { code: 550, status: '5.7.5', text: "User signature refused: the sender's signing certificate is revoked" },
  /** As revoked: the signing certificate is not valid now (a submission is judged at the gateway's clock, never at the signer's t=). */
  userCertificateExpired: { code: 550, status: '5.7.5', text: "User signature refused: the sender's signing certificate has expired" },
  /** RFC 7372 X.7.21 (no acceptable signature): t= older than [chain] max_seal_age_seconds. */
  userSignatureTooOld: { code: 550, status: '5.7.21', text: 'User signature older than this gateway accepts' },
  signerNotFrom: { code: 550, status: '5.7.22', text: 'User signature is not by the author (signer is not the single From)' },
  nullSenderToPeer: { code: 550, status: '5.7.1', text: 'Null-sender mail from a trusted relay goes to local users only' },
  /** Null-sender mail from a trusted relay that is no delivery status report of a mail system (src/gateway/relay-notice.ts). */
  nullSenderNotReport: {
    code: 550,
    status: '5.7.1',
    text: 'Null-sender mail from a trusted relay must be a delivery status report of a mail system',
  },
  senderNotRegistered: { code: 550, status: '5.7.1', text: 'Sender is not a registered user of this organisation' },
  /** A submission authenticated here (SMTP AUTH) whose From, or non-null envelope sender, is not the login's address (docs/security.md). */
  senderNotLogin: { code: 550, status: '5.7.1', text: 'Sender address not owned by the authenticated user' },
  senderNotOwn: { code: 550, status: '5.7.1', text: 'Sender field names an address of another organisation' },
  duplicateHeader: { code: 550, status: '5.6.7', text: 'Duplicate singleton header field' },
  headerLineBreak: { code: 550, status: '5.6.0', text: 'Bare CR or LF inside a header field' },
  /** RFC 5322 allows no NUL in a header; parsers drop it, so the address checked would not be the one a reader shows. */
  headerNul: { code: 550, status: '5.6.0', text: 'Header field holds a NUL byte' },
  /** A CR not followed by LF in the body: a next hop taking <CR>.<CR> as the end of DATA would run what follows as commands (SMTP smuggling). */
  bareCr: { code: 550, status: '5.6.0', text: 'Bare CR in the message (a CR not followed by LF); end every line with CRLF' },
  /** Raw 8-bit bytes in a header field are UTF-8 or nothing (RFC 6532); other charsets go in encoded words (RFC 2047). */
  headerNotUtf8: { code: 550, status: '5.6.0', text: 'Header field holds bytes that are not UTF-8 (use RFC 2047 encoded words)' },
  badFormat: { code: 550, status: '5.6.0', text: 'Malformed message' },
  // each recipient's (or list member's) copy is the whole message: count × size over [main] max_copy_bytes
  tooManyCopies: { code: 552, status: '5.3.4', text: 'Message too large for its number of recipients' },
  badCapsule: { code: 550, status: '5.7.5', text: 'Malformed or foreign SSMAX capsule' },
  keyDestroyed: { code: 550, status: '5.7.5', text: 'Key version destroyed here; fetch the current one' },
  noLocalRecipient: { code: 550, status: '5.1.1', text: 'No such local recipient' },
  /** RCPT TO whose domain is no domain name, an internationalised one that maps to none included (src/chain/alignment.ts canonicalDomain). */
  recipientDomainInvalid: { code: 550, status: '5.1.2', text: 'Recipient domain is not a domain name' },
  /** MAIL FROM whose domain is no domain name (as recipientDomainInvalid). */
  senderDomainInvalid: { code: 550, status: '5.1.7', text: 'Sender address domain is not a domain name' },
  /** The mailbox store refused the message for every recipient for good; the status is the store's own (GatewayError.withStatus). */
  mailboxRefused: { code: 550, status: '5.0.0', text: 'Mailbox store refused the message' },
  /** A release field (SSMAX-Quarantine-Release, SSMAX-List-Release) naming no release under way here: forged, or a release taken over after its lease (docs/inspection.md). */
  releaseNotHonoured: { code: 550, status: '5.7.1', text: 'Release field not honoured: no such release under way here' },
  tooLarge: { code: 552, status: '5.3.4', text: 'Message too large' },
  /** A message that alone is over a cap of the quarantine or the moderation queue (src/inspect/quarantine.ts): it can never be held. */
  heldTooLarge: { code: 552, status: '5.3.4', text: 'Message too large to be held' },
  formatLimit: { code: 552, status: '5.3.4', text: 'Message exceeds a format limit' },
  /** A message longer than clamd takes in one scan (its StreamMaxLength; 100M unless set): it can never be scanned (docs/inspection.md). */
  tooLargeToScan: { code: 552, status: '5.3.4', text: 'Message too large for the antivirus scan' },
  /** Haraka keeps only headers.max_lines lines of a header and silently drops every later field: such a message is refused, never relayed cut. */
  headerTooManyLines: { code: 552, status: '5.3.4', text: 'Message header has more lines than the gateway can relay' },
  // mailing lists (src/lists/, docs/lists.md)
  listLoop: { code: 550, status: '5.4.6', text: 'Mailing list loop detected' },
  listNotMember: { code: 550, status: '5.7.2', text: 'Posting to this list is restricted to its members' },
} as const satisfies Record<string, Reply>;

export type ReplyName = keyof typeof REPLIES;

/** A decision with its reply; `detail` adds a precise reason (never message content). */
export class GatewayError extends Error {
  readonly reply: Reply;
  /** Which reply of REPLIES this is. */
  readonly kind: ReplyName;

  constructor(name: ReplyName, detail?: string) {
    const base = REPLIES[name];
    const text = detail ? `${base.text}: ${detail}` : base.text;
    super(text);
    this.name = 'GatewayError';
    this.kind = name;
    this.reply = { ...base, text: sanitize(text) };
  }

  /** A final decision with the enhanced status code another server gave (e.g. the mailbox store's 5.1.1 or 5.2.2). */
  static withStatus(name: ReplyName, status: string, detail?: string): GatewayError {
    const e = new GatewayError(name, detail);
    if (/^5\.\d{1,3}\.\d{1,3}$/.test(status) && e.reply.code >= 500) (e as { reply: Reply }).reply = { ...e.reply, status };
    return e;
  }

  get temporary(): boolean {
    return this.reply.code < 500;
  }
}

/**
 * One printable line: no CR/LF or control characters can reach an SMTP reply. Longer than `max` characters
 * (300 unless given), it is cut to `max` - 3 and "..." — by whole characters, never inside a surrogate pair.
 */
export function sanitize(text: string, max = 300): string {
  const chars = [...text].map((ch) => (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f ? ' ' : ch));
  return chars.length > max ? `${chars.slice(0, max - 3).join('')}...` : chars.join('');
}

/**
 * Any error as a reply, decided by cause: GatewayErrors as they are; a limit or
 * format failure of the message itself, whichever parser met it (the envelope's
 * MIME splitting, the chain's body hash), is final — 5.3.4 for a limit, 5.6.0
 * for a malformed message — with the parser's own words naming it; everything
 * else is a fault of ours or of a service we depend on: temporary.
 */
export function replyFor(err: unknown): Reply {
  if (err instanceof GatewayError) return err.reply;
  const cause = messageFault(err);
  return cause ? new GatewayError(cause.name, cause.detail).reply : REPLIES.internal;
}

/** The final reply for an error that is the message's own fault, or undefined. */
export function messageFault(err: unknown): { name: ReplyName; detail: string } | undefined {
  if (err instanceof CryptoError) {
    if (err.code === 'limit') return { name: 'formatLimit', detail: err.message };
    if (err.code === 'bad-format') return { name: 'badFormat', detail: err.message };
    return undefined;
  }
  if (err instanceof ChainFormatError) return { name: err.reason === 'limit-exceeded' ? 'formatLimit' : 'badFormat', detail: err.message };
  // @zone-eu/mailsplit's own limits (EMAXLEN), met through mailparser when inspection reads the plaintext
  // (e.g. inside an encrypted message, which no other parser of the gateway opens)
  if (err instanceof Error && (err as { code?: unknown }).code === 'EMAXLEN')
    return { name: 'formatLimit', detail: mailsplitLimit(err.message) };
  return undefined;
}

/** mailsplit's limit messages, naming the limit and its value. */
function mailsplitLimit(message: string): string {
  if (/child nodes/i.test(message)) return "the message has more than 1000 MIME parts (inspection parser's limit)";
  if (/header size/i.test(message)) return "a MIME part's header is larger than 1 MB (inspection parser's limit)";
  return `inspection parser: ${message.slice(0, 120)}`;
}

/**
 * The error as the decision it is: a fault of the message itself (`messageFault`)
 * becomes its final GatewayError (so it keeps its meaning across a process
 * boundary, e.g. from the inspector process); anything else is returned as it is.
 */
export function decided(err: unknown): unknown {
  if (err instanceof GatewayError) return err;
  const cause = messageFault(err);
  return cause ? new GatewayError(cause.name, cause.detail) : err;
}

/** The final reply for a chain verification that failed on the message's form rather than its seals, or undefined. */
export function chainFormatFault(reason: FailReason, detail: string): GatewayError | undefined {
  if (reason === 'limit-exceeded') return new GatewayError('formatLimit', detail);
  if (reason === 'body-unparseable') return new GatewayError('badFormat', detail);
  return undefined;
}

/** The name of a gateway reply (for answers that cross the process boundary); undefined if it is not one of ours. */
export function replyNameOf(reply: Reply): ReplyName | undefined {
  return (Object.keys(REPLIES) as ReplyName[]).find(
    (n) =>
      REPLIES[n].status === reply.status &&
      REPLIES[n].code === reply.code &&
      (reply.text === REPLIES[n].text || reply.text.startsWith(`${REPLIES[n].text}: `)),
  );
}
