/**
 * Errors of the user side (docs/user.md). One class with a closed set of
 * codes, so the CLI maps them to exit codes in one place. Messages are
 * sentence case, quote the offending value, and never hold key material or
 * message content.
 */

export type UserErrorCode =
  /** The profile folder is missing, incomplete, unreadable or has unsafe modes. */
  | 'profile'
  /** The organisation (or a peer) bundle does not verify. */
  | 'bundle'
  /** The message cannot be used as given (no single From matching the profile, …). */
  | 'message'
  /** The newest seal (or a checked earlier seal) does not verify. */
  | 'seal'
  /** Decryption failed: no capsule for the user's key, tampering, truncation. */
  | 'decrypt'
  /** SMTP submission failed. */
  | 'smtp';

export class UserError extends Error {
  readonly code: UserErrorCode;
  constructor(code: UserErrorCode, message: string) {
    super(message);
    this.name = 'UserError';
    this.code = code;
  }
}
