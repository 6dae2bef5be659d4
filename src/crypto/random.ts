/**
 * Randomness is injected everywhere in the crypto core: production code uses
 * `systemRng` (the OS CSPRNG); tests and vectors pass a deterministic one.
 */
import { randomBytes } from 'node:crypto';

/** Returns `length` fresh random bytes. */
export type Rng = (length: number) => Uint8Array;

export const systemRng: Rng = (length) => new Uint8Array(randomBytes(length));
