/**
 * What a part's bytes are, whatever its name and declared type say (DLP,
 * extract.ts): text (a byte-order mark, UTF-16, or bytes that are mostly
 * printable in UTF-8 or a legacy charset), a message, a compressed or
 * encrypted format that cannot be read, a media or program format whose text
 * is its printable strings, or data that looks compressed or encrypted.
 * Every check is one pass over the bytes (linear).
 */
import iconv from 'iconv-lite';

export type Sniffed = 'text' | 'sealed' | 'media' | 'binary';

function startsWith(b: Buffer, sig: readonly number[], at = 0): boolean {
  if (b.length < at + sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (b[at + i] !== sig[i]) return false;
  return true;
}
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** Compressed or encrypted formats whose content cannot be read here: gzip, bzip2, xz, zstd, 7z, RAR, CAB, LZH, OpenPGP binary messages. */
const SEALED: readonly (readonly number[])[] = [
  [0x1f, 0x8b],
  ascii('BZh'),
  [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
  [0x28, 0xb5, 0x2f, 0xfd],
  [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c],
  ascii('Rar!'),
  ascii('MSCF'),
];

/** Media, font, program and legacy Office (OLE2) formats: their text, if any, is what their printable strings hold. */
const MEDIA: readonly (readonly number[])[] = [
  [0x89, 0x50, 0x4e, 0x47],
  [0xff, 0xd8, 0xff],
  ascii('GIF8'),
  ascii('RIFF'),
  ascii('BM'),
  [0x49, 0x49, 0x2a, 0x00],
  [0x4d, 0x4d, 0x00, 0x2a],
  [0x00, 0x00, 0x01, 0x00],
  ascii('ID3'),
  ascii('OggS'),
  ascii('fLaC'),
  [0x1a, 0x45, 0xdf, 0xa3],
  ascii('wOFF'),
  ascii('wOF2'),
  [0x00, 0x01, 0x00, 0x00],
  ascii('OTTO'),
  ascii('MZ'),
  [0x7f, 0x45, 0x4c, 0x46],
  [0xcf, 0xfa, 0xed, 0xfe],
  [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1],
  [0x01, 0x00, 0x00, 0x00], // EMF
  [0xd7, 0xcd, 0xc6, 0x9a], // placeable WMF
];

/** The encoding a byte-order mark names, if any. */
function bomEncoding(b: Buffer): string | undefined {
  if (startsWith(b, [0xef, 0xbb, 0xbf])) return 'utf-8';
  if (startsWith(b, [0xff, 0xfe])) return 'utf-16le';
  if (startsWith(b, [0xfe, 0xff])) return 'utf-16be';
  return undefined;
}

/** UTF-16 without a mark: ASCII-range text has a zero byte in every other position. */
function utf16Guess(b: Buffer): string | undefined {
  const n = Math.min(b.length, 4096) & ~1;
  if (n < 8) return undefined;
  let evenZero = 0;
  let oddZero = 0;
  for (let i = 0; i < n; i += 2) {
    if (b[i] === 0) evenZero++;
    if (b[i + 1] === 0) oddZero++;
  }
  const pairs = n / 2;
  if (oddZero > pairs * 0.4 && evenZero < pairs * 0.05) return 'utf-16le';
  if (evenZero > pairs * 0.4 && oddZero < pairs * 0.05) return 'utf-16be';
  return undefined;
}

/** Bytes a text never holds: C0 controls other than tab, line ends, form feed and ESC (ISO-2022-JP), and DEL. */
function isControl(x: number): boolean {
  return (x < 0x20 && x !== 0x09 && x !== 0x0a && x !== 0x0d && x !== 0x0c && x !== 0x1b) || x === 0x7f;
}

/** Whether the bytes are text: a byte-order mark, UTF-16, or (over the whole part) under 1 % control bytes and no NUL. */
export function textEncoding(b: Buffer): string | undefined {
  const bom = bomEncoding(b);
  if (bom) return bom;
  const utf16 = utf16Guess(b);
  if (utf16) return utf16;
  let controls = 0;
  for (let i = 0; i < b.length; i++) {
    const x = b[i]!;
    if (x === 0) return undefined;
    if (isControl(x)) controls++;
  }
  return controls * 100 <= b.length ? 'utf-8' : undefined;
}

/** Text bytes decoded: a byte-order mark first, then the declared charset, then UTF-16 as sniffed, then UTF-8. */
export function decodeText(b: Buffer, declared?: string): string {
  const bom = bomEncoding(b);
  if (bom) return iconv.decode(b, bom);
  if (declared && declared.toLowerCase() !== 'utf-8' && iconv.encodingExists(declared)) return iconv.decode(b, declared);
  return iconv.decode(b, utf16Guess(b) ?? declared ?? 'utf-8');
}

/** Bits of information per byte (Shannon): compressed and encrypted data come near 8, text and program code well below. */
function entropy(b: Buffer): number {
  const counts = new Uint32Array(256);
  for (let i = 0; i < b.length; i++) counts[b[i]!]!++;
  let h = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / b.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/** Data of at least this many bytes whose entropy is over SEALED_ENTROPY looks compressed or encrypted. */
const SEALED_MIN_BYTES = 512;
const SEALED_ENTROPY = 7.5;

export function sniff(b: Buffer): Sniffed {
  if (SEALED.some((s) => startsWith(b, s))) return 'sealed';
  if (textEncoding(b)) return 'text';
  if (MEDIA.some((s) => startsWith(b, s)) || startsWith(b, ascii('ftyp'), 4)) return 'media';
  return b.length >= SEALED_MIN_BYTES && entropy(b) > SEALED_ENTROPY ? 'sealed' : 'binary';
}

/**
 * The printable strings of binary data, as `strings` shows them: runs of at
 * least four printable ASCII characters (card numbers included), and the same
 * in UTF-16LE (the text of legacy Office files), one a line.
 */
export function printableStrings(b: Buffer): string {
  const out: string[] = [];
  const printable = (x: number) => (x >= 0x20 && x < 0x7f) || x === 0x09;
  let start = -1;
  for (let i = 0; i <= b.length; i++) {
    if (i < b.length && printable(b[i]!)) {
      if (start < 0) start = i;
    } else {
      if (start >= 0 && i - start >= 4) out.push(b.toString('latin1', start, i));
      start = -1;
    }
  }
  for (const offset of [0, 1]) {
    let run: number[] = [];
    for (let i = offset; i + 1 <= b.length; i += 2) {
      if (i + 1 < b.length && b[i + 1] === 0 && printable(b[i]!)) run.push(b[i]!);
      else {
        if (run.length >= 4) out.push(Buffer.from(run).toString('latin1'));
        run = [];
      }
    }
  }
  return out.join('\n');
}
