/**
 * Verification outcomes of the authentication chain, as data (STYLE.md, mailauth):
 * a closed union `pass | fail | temperror | none`, a closed set of failure
 * reasons, and a one-line summary in the shape of an Authentication-Results
 * method (RFC 8601 §2.2: `method=result reason="…" ptype.property=value`).
 *
 * Guarantees: a summary is one line of printable ASCII; nothing a sender
 * controls reaches it except values that passed the strict tag grammar.
 */

/** Why a signature or a chain failed. Closed: a verifier never invents another. */
export type FailReason =
  /** A user signature or seal field does not follow the grammar (docs/chain.md). */
  | 'malformed'
  /** A hard limit of CHAIN_LIMITS was exceeded (seal count, parts, depth, lengths). */
  | 'limit-exceeded'
  /** A singleton header (From, Subject, Content-Type, …) or auth field appears more than once. */
  | 'duplicate-header'
  /** The message has no From field. */
  | 'missing-from'
  /** The MIME structure could not be read. */
  | 'body-unparseable'
  /** The `h=` list leaves out a header the format requires to be protected. */
  | 'protected-header-uncovered'
  /** The certificate lookup knows no certificate for `c=`. */
  | 'unknown-certificate'
  /** The certificate's domain is not the seal's `d=`. */
  | 'certificate-domain-mismatch'
  /** The ECDSA signature `b=` does not verify. */
  | 'signature-invalid'
  /** The protected headers are not those the signer saw (`hh=`). */
  | 'header-hash-mismatch'
  /** The structural body hash is not the signer's (`bh=`). */
  | 'body-hash-mismatch'
  /**
   * An earlier seal's `bh=` is not the newest seal's: a later hop changed the
   * body, which no hop does (re-encryption, list copies and forwarding replace
   * capsules in the header only).
   */
  | 'earlier-body-hash-mismatch'
  /**
   * An earlier seal's `hh=` does not match the protected headers of a message
   * whose body carries no encrypted content: no capsule was ever replaced, so
   * a later hop changed From, To, Cc, Subject or another protected field.
   */
  | 'earlier-header-hash-mismatch'
  /** Seal instances are not exactly 1…N, each once. */
  | 'instance-order'
  /** A tracking token outside instance 1, or none at instance 1. */
  | 'tracking-token-position'
  /** A seal records `cv=fail`: a gateway sealed over a failed chain. */
  | 'sealed-over-failure'
  /** A seal's `cv=` contradicts its position (`none` only at i=1, `pass` after). */
  | 'cv-mismatch'
  /** The signature time lies in the future beyond the allowed clock skew. */
  | 'time-in-future'
  /** A user signature's time lies further in the past than the verifier accepts (`maxAgeSeconds`). */
  | 'time-too-old';

export type AuthOutcome =
  | { readonly result: 'pass' }
  | { readonly result: 'fail'; readonly reason: FailReason; readonly detail: string }
  | { readonly result: 'temperror'; readonly detail: string }
  | { readonly result: 'none' };

/** An AR-style `ptype.property=value` pair, e.g. `['header.d', 'a.example']`. */
export type ResultProperty = readonly [string, string];

// Only what is safe inside an RFC 8601 quoted reason: printable ASCII without `"` and `\`.
function quoteSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]|["\\]/g, '?').slice(0, 200);
}

/**
 * Formats `method=result [reason="…"] [prop=value …]` on one line, e.g.
 * `ssmax-chain=fail reason="i=2 body-hash-mismatch" header.d=b.example`.
 */
export function formatSummary(method: string, outcome: AuthOutcome, reasonPrefix: string, props: readonly ResultProperty[]): string {
  const parts = [`${method}=${outcome.result}`];
  if (outcome.result === 'fail') parts.push(`reason="${quoteSafe(`${reasonPrefix}${outcome.reason}`)}"`);
  if (outcome.result === 'temperror') parts.push(`reason="${quoteSafe(`${reasonPrefix}${outcome.detail}`)}"`);
  for (const [key, value] of props) {
    // Property values are tag values that passed the grammar; quote-safe them anyway.
    if (value !== '') parts.push(`${key}=${quoteSafe(value).replace(/[\s;()]/g, '?')}`);
  }
  return parts.join(' ');
}

/** An error whose failure reason a verifier reports as `fail` with that reason. */
export class ChainFormatError extends Error {
  readonly reason: FailReason;
  constructor(reason: FailReason, message: string) {
    super(message);
    this.name = 'ChainFormatError';
    this.reason = reason;
  }
}

export function fail(reason: FailReason, detail: string): AuthOutcome {
  return { result: 'fail', reason, detail };
}
