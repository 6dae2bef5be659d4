import { createHash } from 'node:crypto';
import type { Rng } from '../../src/crypto';

/**
 * A deterministic byte source for vectors and reproducible tests:
 * SHA-256(seed || counter) blocks. Never for production use.
 */
export function seededRng(seed: string): Rng {
  let counter = 0;
  return (length) => {
    const out = new Uint8Array(length);
    let off = 0;
    while (off < length) {
      const c = Buffer.alloc(4);
      c.writeUInt32BE(counter++);
      const block = createHash('sha256').update(seed).update(c).digest();
      const n = Math.min(block.length, length - off);
      out.set(block.subarray(0, n), off);
      off += n;
    }
    return out;
  };
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

/** Flips one bit of a copy. */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  const i = Math.floor(bit / 8) % out.length;
  out[i] = (out[i] ?? 0) ^ (1 << (bit % 8));
  return out;
}
