/**
 * Hard limits of the authentication chain format (docs/chain.md, "Limits").
 *
 * Every limit is enforced on input before any expensive work, and exceeding one
 * is a precise error (signing) or a `fail` result with reason `limit-exceeded`
 * (verification). They are fixed by the format, not configuration: a message
 * that one gateway accepts must not be refused by the next.
 */
export const CHAIN_LIMITS = Object.freeze({
  /** Seals on one message (instances 1…16). ARC allows 50; SSMAX paths are short. */
  maxSeals: 16,
  /** Length of one SSMAX-Seal or SSMAX-User-Signature field, name included, unfolded. */
  maxAuthHeaderLength: 4096,
  /** MIME entities in one message, nested messages included. */
  maxParts: 512,
  /** Nesting depth of MIME entities (the root is depth 0). */
  maxDepth: 16,
  /** Header fields in one header block (root or part). */
  maxHeaderFields: 1000,
  /** Length of one header field in bytes, folding included. */
  maxHeaderFieldLength: 65536,
  /** Size of one header block in bytes (mailsplit's maxHeadSize). */
  maxHeaderBlockSize: 1024 * 1024,
  /** Verdicts in one seal's `vd=` tag. */
  maxVerdicts: 16,
  /** Names in one `h=` tag. */
  maxSignedHeaderNames: 32,
  /** Characters of the base64url tracking token in `tt=` (384 bytes). */
  maxTrackingTokenChars: 512,
  /**
   * Default CPU budget of reading one message (MIME split, decoding, body
   * hash), in milliseconds; past it the message is refused (`limit-exceeded`).
   * Every step is linear in the message size, so this is far above what a
   * message within the size limits needs; callers may set their own.
   */
  cpuBudgetMs: 5000,
  /** Seconds a signature time may lie ahead of the verifier's clock. */
  maxClockSkewSeconds: 300,
});
