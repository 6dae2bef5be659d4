/**
 * The one error type of the abuse-report tools. `code` says which step
 * refused, so the CLI and the HTTP endpoint can map it to an exit code or a
 * status without reading the message.
 */
export type AbuseErrorCode =
  /** The reported message or the report cannot be read. */
  | 'format'
  /** The seal chain (or the seal in a report) does not verify. */
  | 'chain'
  /** The sending organisation's bundle could not be had. */
  | 'directory'
  /** The report or token is not for this organisation. */
  | 'foreign'
  /** keyd refused (forged token, unknown user, no role, …). */
  | 'refused'
  /** keyd or the gateway could not be reached (try again later). */
  | 'unavailable';

export class AbuseError extends Error {
  constructor(
    readonly code: AbuseErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AbuseError';
  }
}
