/**
 * A strict DER reader (X.690 §10) for the certificates and CRLs we parse on the
 * hot path of validation. asn1js is lenient (BER) and slow (≈1 ms per
 * certificate here); this reader walks the bytes once, accepts only definite,
 * minimally encoded lengths and low tag numbers, and throws `DerError` on
 * anything else — the callers turn that into a `malformed` result.
 */
export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export interface Tlv {
  /** The identifier octet (class, constructed bit, tag number < 31). */
  readonly tag: number;
  /** The whole element, header included. */
  readonly bytes: Uint8Array;
  /** The contents. */
  readonly value: Uint8Array;
}

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  enumerated: 0x0a,
  utf8String: 0x0c,
  printableString: 0x13,
  t61String: 0x14,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  bmpString: 0x1e,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Reads one element at `offset`; returns it and the offset after it. */
export function readTlv(buf: Uint8Array, offset: number, what: string): { tlv: Tlv; next: number } {
  if (offset + 2 > buf.length) throw new DerError(`Cannot parse ${what}: truncated`);
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`Cannot parse ${what}: high tag numbers are not used here`);
  let len = buf[offset + 1] as number;
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError(`Cannot parse ${what}: ${n === 0 ? 'indefinite' : 'oversized'} length`);
    if (pos + n > buf.length) throw new DerError(`Cannot parse ${what}: truncated length`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[pos + i] as number);
    if (buf[pos] === 0 || len < 0x80) throw new DerError(`Cannot parse ${what}: length not minimally encoded`);
    pos += n;
  }
  const end = pos + len;
  if (end > buf.length) throw new DerError(`Cannot parse ${what}: truncated contents`);
  return { tlv: { tag, bytes: buf.subarray(offset, end), value: buf.subarray(pos, end) }, next: end };
}

/** Parses exactly one element filling `buf`. */
export function parseDer(buf: Uint8Array, what: string, tag?: number): Tlv {
  const { tlv, next } = readTlv(buf, 0, what);
  if (next !== buf.length) throw new DerError(`Cannot parse ${what}: trailing bytes`);
  if (tag !== undefined) expectTag(tlv, tag, what);
  return tlv;
}

export function expectTag(tlv: Tlv, tag: number, what: string): Tlv {
  if (tlv.tag !== tag) throw new DerError(`Cannot parse ${what}: expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** The elements inside a constructed element. */
export function children(tlv: Tlv, what: string): Tlv[] {
  if (!(tlv.tag & 0x20)) throw new DerError(`Cannot parse ${what}: not a constructed element`);
  const out: Tlv[] = [];
  let pos = 0;
  while (pos < tlv.value.length) {
    const { tlv: child, next } = readTlv(tlv.value, pos, what);
    out.push(child);
    pos = next;
  }
  return out;
}

/**
 * The longest OBJECT IDENTIFIER (content octets) and the longest arc (octets) read. Real ones are far
 * shorter (a 2.25 UUID arc, the longest in use, is 19 octets); the bounds keep the arithmetic on
 * untrusted input (a bundle fetched for any sender's domain, a certificate in a seal) linear: an arc
 * of n octets costs n shifts of a growing number and a decimal conversion, quadratic in n.
 */
export const MAX_OID_OCTETS = 128;
export const MAX_OID_ARC_OCTETS = 20;

export function decodeOid(tlv: Tlv, what: string): string {
  expectTag(tlv, TAG.oid, what);
  const v = tlv.value;
  if (v.length === 0 || (v[v.length - 1] as number) & 0x80) throw new DerError(`Cannot parse ${what}: bad OBJECT IDENTIFIER`);
  if (v.length > MAX_OID_OCTETS)
    throw new DerError(`Cannot parse ${what}: OBJECT IDENTIFIER of ${v.length} octets (at most ${MAX_OID_OCTETS})`);
  const arcs: bigint[] = [];
  let acc = 0n;
  let start = true;
  let arcOctets = 0;
  for (const b of v) {
    if (start && b === 0x80) throw new DerError(`Cannot parse ${what}: OBJECT IDENTIFIER not minimally encoded`);
    if (++arcOctets > MAX_OID_ARC_OCTETS)
      throw new DerError(`Cannot parse ${what}: OBJECT IDENTIFIER with an arc over ${MAX_OID_ARC_OCTETS} octets`);
    acc = (acc << 7n) | BigInt(b & 0x7f);
    start = false;
    if (!(b & 0x80)) {
      arcOctets = 0;
      arcs.push(acc);
      acc = 0n;
      start = true;
    }
  }
  const first = arcs[0] as bigint;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

/** Content bytes of a non-negative INTEGER as lower-case hex (as certificate serials are written). */
export function integerHex(tlv: Tlv, what: string): string {
  expectTag(tlv, TAG.integer, what);
  checkInteger(tlv, what);
  return Buffer.from(tlv.value.buffer, tlv.value.byteOffset, tlv.value.length).toString('hex');
}

function checkInteger(tlv: Tlv, what: string): void {
  const v = tlv.value;
  if (v.length === 0) throw new DerError(`Cannot parse ${what}: empty INTEGER`);
  if (v.length > 1 && ((v[0] === 0 && !((v[1] as number) & 0x80)) || (v[0] === 0xff && (v[1] as number) & 0x80))) {
    throw new DerError(`Cannot parse ${what}: INTEGER not minimally encoded`);
  }
}

/** A small non-negative INTEGER (or ENUMERATED) as a number. */
export function smallInteger(tlv: Tlv, what: string, tag: number = TAG.integer): number {
  expectTag(tlv, tag, what);
  checkInteger(tlv, what);
  if ((tlv.value[0] as number) & 0x80) throw new DerError(`Cannot parse ${what}: negative`);
  if (tlv.value.length > 6) throw new DerError(`Cannot parse ${what}: too large`);
  let n = 0;
  for (const b of tlv.value) n = n * 256 + b;
  return n;
}

export function bigInteger(tlv: Tlv, what: string): bigint {
  expectTag(tlv, TAG.integer, what);
  checkInteger(tlv, what);
  if ((tlv.value[0] as number) & 0x80) throw new DerError(`Cannot parse ${what}: negative`);
  return BigInt(`0x${Buffer.from(tlv.value).toString('hex')}`);
}

export function decodeBoolean(tlv: Tlv, what: string): boolean {
  expectTag(tlv, TAG.boolean, what);
  if (tlv.value.length !== 1 || (tlv.value[0] !== 0 && tlv.value[0] !== 0xff)) throw new DerError(`Cannot parse ${what}: bad BOOLEAN`);
  return tlv.value[0] === 0xff;
}

/** Contents of a BIT STRING, with its unused-bit count. */
export function decodeBitString(tlv: Tlv, what: string): { bytes: Uint8Array; unusedBits: number } {
  expectTag(tlv, TAG.bitString, what);
  const unused = tlv.value[0];
  if (unused === undefined || unused > 7 || (unused > 0 && tlv.value.length === 1))
    throw new DerError(`Cannot parse ${what}: bad BIT STRING`);
  return { bytes: tlv.value.subarray(1), unusedBits: unused };
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 §4.1.2.5 requires them. */
export function decodeTime(tlv: Tlv, what: string): Date {
  const s = Buffer.from(tlv.value).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (tlv.tag === TAG.utcTime && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (tlv.tag === TAG.generalizedTime && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    year = Number(m[1]);
  } else {
    throw new DerError(`Cannot parse ${what}: bad time "${s}"`);
  }
  const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || se > 59)
    throw new DerError(`Cannot parse ${what}: bad time "${s}"`);
  return date;
}

/** A directory string or IA5String as text. */
export function decodeString(tlv: Tlv, what: string): string {
  const b = Buffer.from(tlv.value.buffer, tlv.value.byteOffset, tlv.value.length);
  switch (tlv.tag) {
    case TAG.utf8String:
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    case TAG.printableString:
    case TAG.ia5String:
      if (b.some((c) => c > 0x7f)) throw new DerError(`Cannot parse ${what}: non-ASCII in an ASCII string`);
      return b.toString('latin1');
    case TAG.t61String:
      return b.toString('latin1');
    case TAG.bmpString: {
      if (b.length % 2) throw new DerError(`Cannot parse ${what}: odd BMPString`);
      const swapped = Buffer.from(b);
      swapped.swap16();
      return swapped.toString('utf16le');
    }
    default:
      throw new DerError(`Cannot parse ${what}: unsupported string type 0x${tlv.tag.toString(16)}`);
  }
}
