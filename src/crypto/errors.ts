/**
 * One error type for the crypto core and the message format. `code` is
 * stable (callers map it to SMTP replies); `message` is for people and never
 * contains secret material.
 */
export type CryptoErrorCode =
  | 'bad-input' // wrong type, length or range supplied by the caller
  | 'bad-point' // not a valid, non-identity secp256k1 point
  | 'bad-scalar' // out of [1, n-1]
  | 'bad-capsule' // a capsule that cannot be parsed or does not fit
  | 'bad-proof' // the key service's DLEQ proof does not verify
  | 'auth-failed' // an AEAD tag did not verify (tampering, truncation, wrong key)
  | 'bad-format' // the encrypted-message format is malformed
  | 'limit' // a hard limit was exceeded
  | 'no-key'; // no capsule for the key supplied

export class CryptoError extends Error {
  constructor(
    readonly code: CryptoErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CryptoError';
  }
}

/** Quotes a value for an error message, shortened so messages stay one line. */
export function quote(value: unknown): string {
  let text: string;
  if (value instanceof Uint8Array) text = `${value.length} bytes`;
  else if (typeof value === 'string') text = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  else if (typeof value === 'bigint')
    text = value.toString(16).length > 40 ? `${value.toString(16).slice(0, 40)}…` : `0x${value.toString(16)}`;
  else if (value === null) text = 'null';
  else if (Array.isArray(value)) text = `array(${value.length})`;
  else text = typeof value;
  return `"${text.replace(/[\r\n]/g, ' ')}"`;
}

export function assertBytes(value: unknown, what: string, length?: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new CryptoError('bad-input', `Cannot use ${what} ${quote(value)}: expected a Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw new CryptoError('bad-input', `Cannot use ${what}: expected ${length} bytes, got ${value.length}`);
  }
}
