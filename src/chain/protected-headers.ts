/**
 * Which header fields the chain protects, and which may appear only once
 * (docs/protocol.md "Authentication chain"; RFC 5322 §3.6 for the singletons).
 *
 * Every name of PROTECTED_HEADERS must be listed in `h=` of every user
 * signature and seal, whether or not the message carries it: signing an absent
 * field signs its absence (DKIM "over-signing", RFC 6376 §8.15), so a Cc or a
 * second capsule added after signing breaks the signature.
 *
 * The MIME headers of the root (Content-Type, Content-Transfer-Encoding,
 * Content-Disposition) are protected by their meaning inside the structural
 * body hash, not byte-wise here: transfer re-encoding and charset conversion
 * in transit rewrite them legitimately (docs/chain.md, "What is protected").
 */
export const PROTECTED_HEADERS: readonly string[] = Object.freeze([
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'subject',
  'date',
  'message-id',
  'in-reply-to',
  'references',
  'mime-version',
  'ssmax-version',
  'ssmax-capsule',
]);

/**
 * Fields that may appear at most once in the root header block. Two of them
 * are a verification failure, never resolved by choosing one: readers disagree
 * on which one they show (the "double From" attack).
 */
export const SINGLETON_HEADERS: ReadonlySet<string> = new Set([
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'bcc',
  'subject',
  'date',
  'message-id',
  'in-reply-to',
  'references',
  'mime-version',
  'ssmax-version',
  'content-type',
  'content-transfer-encoding',
  'content-disposition',
  'content-id',
]);

/** MIME fields that may appear at most once in the header block of any MIME part. */
export const PART_SINGLETON_HEADERS: readonly string[] = Object.freeze([
  'content-type',
  'content-transfer-encoding',
  'content-disposition',
  'content-id',
  'content-location',
]);

/** Display headers of an embedded message (message/rfc822) that its body hash covers, decoded. */
export const EMBEDDED_DISPLAY_HEADERS: readonly string[] = Object.freeze([
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'subject',
  'date',
  'message-id',
]);
