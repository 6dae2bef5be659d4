/**
 * Backup of the master key by k-of-n secret sharing (Shamir, through the
 * audited `shamir-secret-sharing` package), so that losing one administrator
 * does not lose the organisation's mail (docs/protocol.md, "Keys in time").
 *
 * A share is one line: `ssmax-share-v1:<threshold>:<check>:<hex>`, where
 * <check> is the key check value of the master key (8 bytes of an HKDF
 * output: it identifies the key without revealing it). Fewer than
 * <threshold> shares carry no information about the key.
 */
import { combine, split } from 'shamir-secret-sharing';
import { KeydError } from './errors';
import { MASTER_KEY_LENGTH, SecretWrapper } from './master-key';

const PREFIX = 'ssmax-share-v1';

export async function splitMasterKey(master: Uint8Array, shares: number, threshold: number): Promise<string[]> {
  if (!Number.isInteger(shares) || !Number.isInteger(threshold) || threshold < 2 || shares < threshold || shares > 255) {
    throw new KeydError('bad-request', `Cannot split master key: need 2 <= threshold <= shares <= 255 (got ${threshold} of ${shares})`);
  }
  const check = new SecretWrapper(master).checkValue;
  const parts = await split(master, shares, threshold);
  return parts.map((p) => `${PREFIX}:${threshold}:${check}:${Buffer.from(p).toString('hex')}`);
}

interface ParsedShare {
  threshold: number;
  check: string;
  bytes: Uint8Array;
}

function parseShare(line: string, n: number): ParsedShare {
  const m = /^ssmax-share-v1:(\d{1,3}):([0-9a-f]{16}):([0-9a-f]+)$/.exec(line.trim());
  if (!m) throw new KeydError('bad-request', `Cannot read share ${n}: not an ssmax-share-v1 line`);
  const bytes = Buffer.from(m[3]!, 'hex');
  if (bytes.length !== MASTER_KEY_LENGTH + 1)
    throw new KeydError('bad-request', `Cannot read share ${n}: expected ${MASTER_KEY_LENGTH + 1} bytes`);
  return { threshold: Number(m[1]), check: m[2]!, bytes: new Uint8Array(bytes) };
}

/** Restores the master key from at least `threshold` shares, checking it against the key check value. */
export async function restoreMasterKey(lines: readonly string[]): Promise<Uint8Array> {
  const shares = lines.filter((l) => l.trim() !== '').map((l, i) => parseShare(l, i + 1));
  const first = shares[0];
  if (!first) throw new KeydError('bad-request', 'Cannot restore master key: no shares given');
  for (const s of shares) {
    if (s.threshold !== first.threshold || s.check !== first.check)
      throw new KeydError('bad-request', 'Cannot restore master key: the shares come from different splits');
  }
  const distinct = new Set(shares.map((s) => Buffer.from(s.bytes).toString('hex')));
  if (distinct.size < first.threshold) {
    throw new KeydError('bad-request', `Cannot restore master key: ${distinct.size} distinct share(s) given, ${first.threshold} needed`);
  }
  // each share's last byte is its number (its x-coordinate): two alike are a repeated or damaged share
  const numbers = new Set(shares.map((s) => s.bytes[s.bytes.length - 1]));
  if (numbers.size < shares.length)
    throw new KeydError('bad-request', 'Cannot restore master key: two different shares carry the same share number (a damaged share?)');
  let master: Uint8Array;
  try {
    // Array.from: a fresh array of this realm (the library checks `instanceof Array`;
    // arrays derived from node:util's parseArgs belong to Node's own realm under Jest).
    master = await combine(Array.from(shares, (s) => s.bytes));
  } catch (err) {
    throw new KeydError(
      'bad-request',
      `Cannot restore master key: the shares do not combine (a damaged share?): ${(err as Error).message}`,
    );
  }
  if (new SecretWrapper(master).checkValue !== first.check)
    throw new KeydError('bad-request', 'Cannot restore master key: the result does not match the key check value (a damaged share?)');
  return master;
}
