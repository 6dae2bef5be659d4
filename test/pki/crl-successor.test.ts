/**
 * crlSuccessor (src/pki/crl.ts): the one rule by which `ssmax ca crl`,
 * `ssmax setup --force` and `ssmax registry revoke` number and fill the CRL
 * that replaces a CA's CRL files.
 */
import { crlSuccessor, type RevocationEntry } from '../../src/pki/crl';

const entry = (serial: string, reason: RevocationEntry['reason'] = 'keyCompromise'): RevocationEntry => ({
  serial,
  revokedAt: new Date('2026-12-01T00:00:00Z'),
  reason,
});
const crl = (crlNumber: bigint | undefined, ...entries: RevocationEntry[]) => ({
  crlNumber,
  entries: new Map(entries.map((e) => [e.serial, e])),
});

test('numbered one above the highest of the files and the recorded floor; every revocation once, the recorded ones first', () => {
  const next = crlSuccessor(
    [crl(7n, entry('0a'), entry('0b')), crl(12n, entry('0b'), entry('0c'))],
    [entry('01'), entry('0b', 'superseded')],
    3n,
  );
  expect(next.crlNumber).toBe(13n);
  expect(next.entries.map((e) => e.serial)).toEqual(['01', '0b', '0a', '0c']);
  expect(next.entries.find((e) => e.serial === '0b')!.reason).toBe('superseded');
});

test('the recorded floor counts when it is the highest; no CRL at all starts at the floor plus one', () => {
  expect(crlSuccessor([crl(2n)], [], 9n).crlNumber).toBe(10n);
  expect(crlSuccessor([], [], 0n)).toEqual({ crlNumber: 1n, entries: [] });
  expect(crlSuccessor([crl(undefined, entry('0d'))], [], 0n).crlNumber).toBe(1n);
});

test('a CRL number beyond 2^53 (CRL numbers are up to 20 octets) is continued exactly, never rounded', () => {
  const big = 2n ** 64n + 1n;
  expect(crlSuccessor([crl(big)], [], 5n).crlNumber).toBe(big + 1n);
});
