/**
 * Randomness is injected everywhere in the crypto core: production code uses
 * `systemRng` (the OS CSPRNG); tests and vectors pass a deterministic one.
 * The one exception is the blinding of a scalar inversion (`invertScalar`),
 * which always draws from `systemRng`: its result does not depend on the draw.
 */
import { randomFillSync } from 'node:crypto';

/** Returns `length` fresh random bytes. */
export type Rng = (length: number) => Uint8Array;

const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let used = POOL_BYTES;

/**
 * The OS CSPRNG, drawn 4 KiB at a time: a blinding factor or nonce costs a
 * copy instead of a call into OpenSSL (≈30 µs each here). Every byte is handed
 * out once and wiped from the pool as it leaves; requests larger than the
 * pool are filled directly.
 */
export const systemRng: Rng = (length) => {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`Cannot draw ${String(length)} random bytes`);
  const out = new Uint8Array(length);
  if (length > POOL_BYTES / 4) return randomFillSync(out);
  if (used + length > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  out.set(pool.subarray(used, used + length));
  pool.fill(0, used, used + length);
  used += length;
  return out;
};
