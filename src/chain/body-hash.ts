/**
 * The structural body hash `bh=` (docs/protocol.md "Authentication chain"; SSMAX
 * §2.1; docs/chain.md "Structural body hash"), and the reading of a message
 * into its root header fields and MIME tree.
 *
 * The hash covers what a reader sees, not how it travelled: the tree's shape,
 * each entity's content type (with its meaningful parameters), disposition,
 * filename and Content-ID, the decoded display headers of embedded messages,
 * and each leaf's decoded content — text leaves as Unicode (charset decoded,
 * format=flowed undone, CRLF line ends, no trailing line ends, NFC), every
 * other leaf as bytes. So re-encoding between 7bit/8bit/quoted-printable/base64,
 * re-wrapping of encoded lines and charset conversion (ISO-2022-JP, Shift_JIS,
 * EUC-JP, UTF-8) leave it unchanged, while any change a reader would see
 * changes it. Boundaries, preamble and epilogue are not covered (no reader
 * shows them). An encrypted message's content ciphertext is just a binary leaf.
 *
 * MIME splitting is @zone-eu/mailsplit's (the splitter mailparser uses);
 * transfer decoding is its decoders (libqp, libbase64); charset decoding is
 * libmime's (iconv-lite, and encoding-japanese for ISO-2022-JP).
 *
 * Guarantees: limits of CHAIN_LIMITS are enforced while splitting; any problem
 * is a ChainFormatError with reason `limit-exceeded`, `duplicate-header` or
 * `body-unparseable`. Pure: no I/O, no clock.
 */
import { createHash, type Hash } from 'node:crypto';
import { Splitter, type MimeNode, type SplitterChunk } from '@zone-eu/mailsplit';
import libmime from 'libmime';
import type { Transform } from 'node:stream';
import type { HeaderField } from './canonicalize';
import { CHAIN_LIMITS } from './limits';
import { ComputeTally, computeMs, insideTally, trackCompute } from './compute-time';
import { EMBEDDED_DISPLAY_HEADERS, PART_SINGLETON_HEADERS } from './protected-headers';
import { ChainFormatError } from './result';

/** Domain separation of the body hash, naming the format version. */
const BODY_HASH_LABEL = 'SSMAX-BH-1\0';

// Content-Type parameters that describe representation, not content: the charset
// is decoded away, the boundary is not covered, and format/delsp are undone (the
// flowed flag is hashed on its own). `name` is covered: mail clients show it as the
// file name, or choose a handler by it, when it differs from the disposition's filename.
const REPRESENTATION_PARAMS = new Set(['charset', 'boundary', 'format', 'delsp']);

interface EntityDescription {
  /** Dotted position in the tree: "1", "1.2", "1.2.1" (the root is "1"). */
  readonly path: string;
  readonly contentType: string;
  /** Content-Type parameters that carry meaning, sorted by name. */
  readonly params: readonly (readonly [string, string])[];
  readonly disposition: string;
  readonly filename: string;
  readonly contentId: string;
  /** Content-Location (RFC 2557: how multipart/related resolves URLs), whitespace removed. */
  readonly contentLocation: string;
}

/** The tree the body hash covers, returned for diagnostics and test vectors. */
export type BodyNode =
  | (EntityDescription & { readonly kind: 'multipart'; readonly children: readonly BodyNode[] })
  | (EntityDescription & { readonly kind: 'text'; readonly flowed: boolean; readonly digest: string })
  | (EntityDescription & { readonly kind: 'binary'; readonly digest: string })
  | (EntityDescription & {
      readonly kind: 'message';
      readonly headers: readonly (readonly [string, string])[];
      readonly message: BodyNode;
    });

export interface ReadMessage {
  /** Root header fields in message order. */
  readonly headers: readonly HeaderField[];
  /** `bh=`: base64url SHA-256 over the structural description. */
  readonly bodyHash: string;
  readonly structure: BodyNode;
  /** What the hash depended on, so that a changed header block over the same body need not be hashed again (`readMessageAgain`). */
  readonly reading: BodyReading;
}

/**
 * The inputs of a structural body hash besides the bytes hashed: the body
 * after the root header block, and the root fields that shape its parse
 * (`Content-*`, `MIME-Version`). Equal inputs give an equal hash.
 */
export interface BodyReading {
  readonly body: Buffer;
  readonly mimeFields: string;
  readonly bodyHash: string;
  readonly structure: BodyNode;
}

/** Offset just past the blank line that ends the root header block (a line that is empty, or only CR), or -1. */
function headerBlockEnd(raw: Buffer): number {
  let start = 0;
  while (start < raw.length) {
    const lf = raw.indexOf(0x0a, start);
    if (lf < 0) return -1;
    const len = lf - start;
    if (len === 0 || (len === 1 && raw[start] === 0x0d)) return lf + 1;
    start = lf + 1;
  }
  return -1;
}

/** The root fields that shape the structural parse, as one comparable string. */
function mimeFieldsOf(headers: readonly HeaderField[]): string {
  return JSON.stringify(headers.filter((f) => f.name.startsWith('content-') || f.name === 'mime-version').map((f) => f.raw));
}

interface SplitNode {
  readonly node: MimeNode;
  readonly depth: number;
  readonly children: SplitNode[];
  readonly body: Buffer[];
}

interface Budget {
  parts: number;
  readonly work: WorkBudget;
}

/** Bytes handed to the MIME splitter between two checkpoints of the work budget. */
const SPLIT_SLICE_BYTES = 256 * 1024;
/** After this much compute since the last turn, the event loop gets a turn at the next checkpoint. */
const YIELD_AFTER_MS = 20;

/**
 * The per-message CPU budget of reading a message (docs/chain.md, "CPU
 * budget"): the reading runs under `run`, which counts the compute time of
 * every callback of the reading (compute-time.ts) — not wall time, so other
 * connections' work in between, and a loaded process or machine, do not use
 * up this message's budget. The work is cut into slices (a chunk of bytes
 * through the MIME splitter, one MIME entity described, each linear in its
 * bytes); at each checkpoint between slices the message is refused with
 * `limit-exceeded` once its compute passes the budget, and after more than
 * 20 ms of compute since the last turn the event loop gets one (other
 * connections go on).
 */
export class WorkBudget {
  private readonly tally = new ComputeTally();
  private usedAtYield = 0;

  constructor(readonly limitMs: number = CHAIN_LIMITS.cpuBudgetMs) {
    if (!(limitMs > 0)) throw new RangeError(`Cannot use a CPU budget of ${limitMs} ms`);
  }

  /** Milliseconds of compute used so far. */
  get usedMs(): number {
    return computeMs(this.tally);
  }

  /** Runs the reading of one message with its compute counted against this budget. */
  run<T>(work: () => Promise<T>): Promise<T> {
    return trackCompute(this.tally, work);
  }

  /** Ends a slice: refuses past the limit, yields to the event loop after a long stretch. */
  async checkpoint(): Promise<void> {
    if (!insideTally(this.tally)) throw new Error('WorkBudget.checkpoint outside WorkBudget.run: the compute would not be counted');
    const used = this.usedMs;
    if (used > this.limitMs) throw limitError(`reading the message took more than its CPU budget of ${this.limitMs} ms`);
    if (used - this.usedAtYield > YIELD_AFTER_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.usedAtYield = this.usedMs;
    }
  }
}

/** Options of reading a message. */
export interface ReadOptions {
  /** CPU budget in milliseconds (default CHAIN_LIMITS.cpuBudgetMs). */
  readonly cpuBudgetMs?: number;
}

function limitError(detail: string): ChainFormatError {
  return new ChainFormatError('limit-exceeded', `Cannot hash body: ${detail}`);
}

function headerFieldsOf(node: MimeNode, where: string): HeaderField[] {
  if (!node.headers) return [];
  const list = node.headers.getList();
  if (list.length > CHAIN_LIMITS.maxHeaderFields)
    throw limitError(`the header block of part ${where} has more than ${CHAIN_LIMITS.maxHeaderFields} fields`);
  return list.map(({ key, line }) => {
    if (line.length > CHAIN_LIMITS.maxHeaderFieldLength) {
      throw limitError(`header "${key.slice(0, 40)}" of part ${where} is longer than ${CHAIN_LIMITS.maxHeaderFieldLength} bytes`);
    }
    return { name: key, raw: line };
  });
}

/** Splits one message (the top level or an embedded one) into a tree of entities. */
function split(raw: Buffer, baseDepth: number, budget: Budget): Promise<SplitNode> {
  return new Promise((resolve, reject) => {
    const splitter = new Splitter({
      // Embedded messages are split by a recursive call on their decoded bytes, so that
      // inline and attached ones, in any transfer encoding, are hashed the same way.
      ignoreEmbedded: true,
      maxHeadSize: CHAIN_LIMITS.maxHeaderBlockSize,
      maxChildNodes: CHAIN_LIMITS.maxParts,
    });
    const nodes = new Map<MimeNode, SplitNode>();
    let root: SplitNode | undefined;
    let current: SplitNode | undefined;
    let failed = false;
    const abort = (err: Error) => {
      if (failed) return;
      failed = true;
      splitter.destroy();
      reject(err);
    };
    splitter.on('data', (chunk: SplitterChunk) => {
      if (failed) return;
      if (chunk.type === 'node') {
        const parent = chunk.parentNode ? nodes.get(chunk.parentNode as MimeNode) : undefined;
        const depth = parent ? parent.depth + 1 : baseDepth;
        if (++budget.parts > CHAIN_LIMITS.maxParts)
          return abort(limitError(`the message has more than ${CHAIN_LIMITS.maxParts} MIME parts`));
        if (depth > CHAIN_LIMITS.maxDepth) return abort(limitError(`MIME parts nest deeper than ${CHAIN_LIMITS.maxDepth} levels`));
        const entry: SplitNode = { node: chunk as MimeNode, depth, children: [], body: [] };
        nodes.set(chunk as MimeNode, entry);
        if (parent) parent.children.push(entry);
        else if (!root) root = entry;
        current = entry;
      } else if (chunk.type === 'body') {
        const owner = nodes.get(chunk.node as MimeNode) ?? current;
        if (owner) owner.body.push(chunk.value);
      }
      // 'data' chunks are boundaries, preamble and epilogue: not covered.
    });
    const stream = splitter as unknown as Transform;
    stream.on('error', (err: Error & { code?: string }) => {
      abort(
        err.code === 'EMAXLEN'
          ? limitError(/child nodes/i.test(err.message) ? `the message has more than ${CHAIN_LIMITS.maxParts} MIME parts` : err.message)
          : new ChainFormatError('body-unparseable', `Cannot hash body: ${err.message}`),
      );
    });
    stream.on('end', () => {
      if (failed) return;
      if (!root) return abort(new ChainFormatError('body-unparseable', 'Cannot hash body: the message has no header block'));
      resolve(root);
    });
    void (async () => {
      // Fed in slices with a budget checkpoint between them, not in one synchronous call.
      // Each slice counts until the splitter has processed it (its write callback), so no
      // splitting happens while the event loop has its turn.
      for (let at = 0; at < raw.length && !failed; at += SPLIT_SLICE_BYTES) {
        await new Promise<void>((resolve, reject) =>
          splitter.write(raw.subarray(at, at + SPLIT_SLICE_BYTES), (err) => (err ? reject(err) : resolve())),
        );
        await budget.work.checkpoint();
      }
      if (!failed) splitter.end();
    })().catch((err: Error) => abort(err));
  });
}

function runTransform(transform: Transform, chunks: readonly Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    transform.on('data', (chunk: Buffer) => out.push(chunk));
    transform.on('end', () => resolve(Buffer.concat(out)));
    transform.on('error', reject);
    for (const chunk of chunks) transform.write(chunk);
    transform.end();
  });
}

function describeEntity(entry: SplitNode, path: string): EntityDescription {
  const { node } = entry;
  const fields = headerFieldsOf(node, path);
  for (const name of PART_SINGLETON_HEADERS) {
    if (fields.filter((f) => f.name === name).length > 1) {
      throw new ChainFormatError('duplicate-header', `Cannot hash body: part ${path} has more than one "${name}" field`);
    }
  }
  const params: [string, string][] = [];
  const contentTypeField = node.headers ? node.headers.getFirst('content-type') : '';
  if (contentTypeField) {
    const parsed = libmime.parseHeaderValue(contentTypeField, { stripComments: true });
    for (const [key, value] of Object.entries(parsed.params)) {
      if (REPRESENTATION_PARAMS.has(key)) continue;
      const decoded = parsed.decodedParams.includes(key) ? value : libmime.decodeWords(value);
      params.push([key, decoded.normalize('NFC')]);
    }
    params.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
  return {
    path,
    contentType: node.contentType || 'text/plain',
    params,
    disposition: node.disposition || '',
    filename: (node.filename || '').normalize('NFC'),
    contentId: node.headers ? node.headers.getFirst('content-id').replace(/\s+/g, '') : '',
    contentLocation: node.headers ? node.headers.getFirst('content-location').replace(/\s+/g, '') : '',
  };
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/**
 * Characters that JIS X 0208 converters map to different Unicode code points
 * (the JIS table versus Microsoft's CP932 table): encoding-japanese turns a
 * UTF-8 WAVE DASH into ISO-2022-JP 0x2141, which decodes as FULLWIDTH TILDE.
 * A relay converting the charset on the way must not break the hash (the seed's
 * ISO-2022-JP case), so each pair hashes as its JIS-table member. A reader sees
 * the same sign either way.
 */
const JIS_MAPPING_CANONICAL: Readonly<Record<string, string>> = {
  '\uff5e': '\u301c', // FULLWIDTH TILDE -> WAVE DASH
  '\u2225': '\u2016', // PARALLEL TO -> DOUBLE VERTICAL LINE
  '\uff0d': '\u2212', // FULLWIDTH HYPHEN-MINUS -> MINUS SIGN
  '\uffe0': '\u00a2', // FULLWIDTH CENT SIGN -> CENT SIGN
  '\uffe1': '\u00a3', // FULLWIDTH POUND SIGN -> POUND SIGN
  '\uffe2': '\u00ac', // FULLWIDTH NOT SIGN -> NOT SIGN
  '\u2015': '\u2014', // HORIZONTAL BAR -> EM DASH
  '\uffe4': '\u00a6', // FULLWIDTH BROKEN BAR -> BROKEN BAR
};
const JIS_MAPPING_VARIANTS = /[\uff5e\u2225\uff0d\uffe0\uffe1\uffe2\u2015\uffe4]/g;

/** Decodes a text leaf to its canonical Unicode form, or undefined if its charset cannot be read. */
async function canonicalText(bytes: Buffer, node: MimeNode): Promise<string | undefined> {
  const charset = libmime.normalizeCharset(node.charset || 'utf-8');
  let text: string;
  if (/^(?:utf-8|(?:us-)?ascii)$/i.test(charset)) {
    // Invalid UTF-8 is hashed as bytes: replacement characters would let different bytes collide.
    try {
      text = utf8Fatal.decode(bytes);
    } catch {
      return undefined;
    }
  } else {
    const decoder = libmime.createDecodeStream(charset);
    if (!decoder.supported) return undefined;
    text = (await runTransform(decoder, [bytes])).toString('utf-8');
  }
  if (node.flowed) text = libmime.decodeFlowed(text, node.delSp);
  const lines = text
    .replace(/^\ufeff/, '')
    .replace(JIS_MAPPING_VARIANTS, (c) => JIS_MAPPING_CANONICAL[c] ?? c)
    .replace(/\r\n|\r|\n/g, '\r\n');
  return withoutTrailingLineEnds(lines).normalize('NFC');
}

/**
 * The text without its trailing CRLFs. A loop from the end, not `/(?:\r\n)+$/`:
 * a backtracking engine tries that pattern at every CRLF of a run, so a long
 * run of blank lines followed by any other character took quadratic time.
 */
export function withoutTrailingLineEnds(text: string): string {
  let end = text.length;
  while (end >= 2 && text.charCodeAt(end - 1) === 0x0a && text.charCodeAt(end - 2) === 0x0d) end -= 2;
  return end === text.length ? text : text.slice(0, end);
}

function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The raw content of a leaf, before transfer decoding, with the line ends that
 * belong to the message's framing rather than to the content taken off:
 *
 * - A message's last line end ends the message, not its content: SMTP adds one
 *   to a message that lacks it (RFC 5321 §4.1.1.4), so `abc` and `abc` CRLF as
 *   the whole body of a single-part message are the same content.
 * - mailsplit reports the body of an empty part that is followed by a sibling
 *   delimiter as one line end (the delimiter's own CRLF), but as nothing before
 *   a closing delimiter; a part body of exactly one line end is read as empty
 *   everywhere, so an empty attachment hashes the same in every transfer
 *   encoding and position.
 *
 * (docs/chain.md, "Structural body hash" and "Known limits".)
 */
function leafContent(entry: SplitNode): readonly Buffer[] {
  const raw = Buffer.concat(entry.body);
  if (!entry.node.parentNode) {
    const end =
      raw.length >= 2 && raw[raw.length - 2] === 0x0d && raw[raw.length - 1] === 0x0a
        ? 2
        : raw.length >= 1 && raw[raw.length - 1] === 0x0a
          ? 1
          : 0;
    return [raw.subarray(0, raw.length - end)];
  }
  const text = raw.length <= 2 ? raw.toString('latin1') : '';
  return text === '\r\n' || text === '\n' ? [] : [raw];
}

async function describe(entry: SplitNode, path: string, budget: Budget): Promise<BodyNode> {
  await budget.work.checkpoint();
  const base = describeEntity(entry, path);
  const { node } = entry;
  if (node.multipart) {
    // RFC 2046 §5.1.1: a multipart has at least one body part. One without a boundary, or whose
    // boundary never occurs, would hide its whole content in the preamble, which is not covered.
    if (entry.children.length === 0)
      throw new ChainFormatError('body-unparseable', `Cannot hash body: multipart part ${path} has no body parts`);
    const children: BodyNode[] = [];
    let index = 0;
    for (const child of entry.children) children.push(await describe(child, `${path}.${++index}`, budget));
    return { ...base, kind: 'multipart', children };
  }
  const bytes = await runTransform(node.getDecoder() as Transform, leafContent(entry));
  if (base.contentType === 'message/rfc822' || base.contentType === 'message/global') {
    const inner = await split(bytes, entry.depth + 1, budget);
    const fields = headerFieldsOf(inner.node, `${path}.1`);
    const headers: [string, string][] = [];
    for (const name of EMBEDDED_DISPLAY_HEADERS) {
      const matching = fields.filter((f) => f.name === name);
      if (matching.length > 1)
        throw new ChainFormatError('duplicate-header', `Cannot hash body: the message in part ${path} has more than one "${name}" field`);
      for (const field of matching) {
        const value = Buffer.from(field.raw.slice(field.raw.indexOf(':') + 1), 'latin1').toString('utf-8');
        const decoded = libmime
          .decodeWords(value.replace(/\r?\n(?=[ \t])/g, ''))
          .replace(/\s+/g, ' ')
          .trim()
          .normalize('NFC');
        headers.push([name, decoded]);
      }
    }
    return { ...base, kind: 'message', headers, message: await describe(inner, `${path}.1`, budget) };
  }
  if (base.contentType.startsWith('text/')) {
    const text = await canonicalText(bytes, node);
    await budget.work.checkpoint();
    if (text !== undefined) return { ...base, kind: 'text', flowed: node.flowed, digest: sha256Hex(Buffer.from(text, 'utf-8')) };
  }
  await budget.work.checkpoint();
  return { ...base, kind: 'binary', digest: sha256Hex(bytes) };
}

function putString(hash: Hash, value: string): void {
  const bytes = Buffer.from(value, 'utf-8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  hash.update(length).update(bytes);
}

function putCount(hash: Hash, count: number): void {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(count);
  hash.update(length);
}

/** Feeds the length-prefixed serialisation of docs/chain.md ("Structural body hash"). */
function serialise(hash: Hash, node: BodyNode): void {
  hash.update({ multipart: 'M', text: 'T', binary: 'B', message: 'R' }[node.kind]);
  putString(hash, node.contentType);
  putCount(hash, node.params.length);
  for (const [key, value] of node.params) {
    putString(hash, key);
    putString(hash, value);
  }
  putString(hash, node.disposition);
  putString(hash, node.filename);
  putString(hash, node.contentId);
  putString(hash, node.contentLocation);
  switch (node.kind) {
    case 'multipart':
      putCount(hash, node.children.length);
      for (const child of node.children) serialise(hash, child);
      break;
    case 'text':
      hash.update(node.flowed ? 'F' : 'P');
      hash.update(Buffer.from(node.digest, 'hex'));
      break;
    case 'binary':
      hash.update(Buffer.from(node.digest, 'hex'));
      break;
    case 'message':
      putCount(hash, node.headers.length);
      for (const [name, value] of node.headers) {
        putString(hash, name);
        putString(hash, value);
      }
      serialise(hash, node.message);
      break;
  }
}

/** The structural body hash of a described tree. */
export function hashStructure(structure: BodyNode): string {
  const hash = createHash('sha256').update(BODY_HASH_LABEL);
  serialise(hash, structure);
  return hash.digest('base64url');
}

function asBuffer(message: Uint8Array): Buffer {
  if (!(message instanceof Uint8Array)) throw new TypeError('Cannot read message: expected a Uint8Array');
  return Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
}

/**
 * Reads a message: its root header fields and its structural body hash.
 * Rejects with a ChainFormatError when the message breaks a limit or cannot be read.
 */
export async function readMessage(message: Uint8Array, options: ReadOptions = {}): Promise<ReadMessage> {
  const raw = asBuffer(message);
  const budget: Budget = { parts: 0, work: new WorkBudget(options.cpuBudgetMs) };
  const { headers, structure } = await budget.work.run(async () => {
    const root = await split(raw, 0, budget);
    const fields = headerFieldsOf(root.node, '1');
    const described = await describe(root, '1', budget);
    await budget.work.checkpoint();
    return { headers: fields, structure: described };
  });
  const bodyHash = hashStructure(structure);
  const end = headerBlockEnd(raw);
  return {
    headers,
    bodyHash,
    structure,
    reading: { body: end < 0 ? raw : raw.subarray(end), mimeFields: end < 0 ? '\0' : mimeFieldsOf(headers), bodyHash, structure },
  };
}

/**
 * Reads a message whose body an earlier `readMessage` already hashed, when
 * only its root header block may have changed (a gateway replacing capsule
 * fields before sealing): if the body bytes and the MIME-shaping root fields
 * are identical, the earlier hash is the hash, and only the header block is
 * parsed; otherwise the whole message is read again.
 */
export async function readMessageAgain(
  message: Uint8Array,
  previous: BodyReading | undefined,
  options: ReadOptions = {},
): Promise<ReadMessage> {
  const raw = asBuffer(message);
  const end = previous ? headerBlockEnd(raw) : -1;
  if (!previous || end < 0 || previous.mimeFields === '\0' || !raw.subarray(end).equals(previous.body))
    return readMessage(message, options);
  const work = new WorkBudget(options.cpuBudgetMs);
  const head = await work.run(() => split(raw.subarray(0, end), 0, { parts: 0, work }));
  const headers = headerFieldsOf(head.node, '1');
  if (mimeFieldsOf(headers) !== previous.mimeFields) return readMessage(message, options);
  return { headers, bodyHash: previous.bodyHash, structure: previous.structure, reading: { ...previous, body: raw.subarray(end) } };
}

/** The structural body hash `bh=` of a message (base64url). */
export async function bodyHash(message: Uint8Array): Promise<string> {
  return (await readMessage(message)).bodyHash;
}
