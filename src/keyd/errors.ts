/**
 * Errors of the key service, each with a stable code and the HTTP status it
 * answers with. Messages name what was wrong, never key material.
 */
export type KeydErrorCode =
  | 'bad-request' // 400: malformed JSON, missing or malformed fields
  | 'unauthenticated' // 401: no valid client certificate
  | 'forbidden' // 403: the role may not call this endpoint
  | 'not-found' // 404: no such user, list or record (never a missing endpoint)
  | 'no-such-endpoint' // 404: keyd has no endpoint at this path (an older keyd than the caller: a fault of ours, temporary)
  | 'target-refused' // 403: re-encryption target not authorised (docs/protocol.md)
  | 'unknown-key' // 404: no key with this key id
  | 'key-destroyed' // 410: the key version was destroyed; fetch the named one
  | 'too-large' // 413
  | 'headers-too-large' // 431: the request's header block is over max_header_bytes
  | 'too-many-headers' // 431: more header fields than max_headers
  | 'superseded' // 409: a concurrent change to the same state committed first; nothing was done
  | 'not-configured' // 409: this keyd is not set up for the operation (the message names the setting); nothing was done
  | 'busy' // 503: concurrency bound reached, retry
  | 'audit-failed' // 503: the audit record could not be written, so nothing was done
  | 'file-unavailable' // 503: a file keyd needs (a CRL of [pki] crls…) cannot be read or used; details.setting names its setting
  | 'config' // bad configuration (startup)
  | 'internal'; // 500

const STATUS: Record<KeydErrorCode, number> = {
  'bad-request': 400,
  unauthenticated: 401,
  forbidden: 403,
  'not-found': 404,
  'no-such-endpoint': 404,
  'target-refused': 403,
  'unknown-key': 404,
  'key-destroyed': 410,
  'too-large': 413,
  'headers-too-large': 431,
  'too-many-headers': 431,
  superseded: 409,
  'not-configured': 409,
  busy: 503,
  'audit-failed': 503,
  'file-unavailable': 503,
  config: 500,
  internal: 500,
};

export class KeydError extends Error {
  constructor(
    readonly code: KeydErrorCode,
    message: string,
    readonly details?: Record<string, string>,
  ) {
    super(message);
    this.name = 'KeydError';
  }

  get status(): number {
    return STATUS[this.code];
  }
}

/**
 * A value of a request as an error message may quote it: a string (its first `max` characters, line breaks as
 * spaces), or what kind of value it is — never String(value), which runs a request's own `toString` (an object
 * `{"toString": 1}` throws, and the refusal became a 500).
 */
export function shownValue(value: unknown, max = 80): string {
  if (typeof value === 'string') return value.slice(0, max).replace(/[\r\n]/g, ' ');
  if (value === null) return 'null';
  if (value === undefined) return 'missing';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
