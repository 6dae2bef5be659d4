/**
 * What DLP looks at, from a message in memory: everything a reader could see.
 *  - the Subject, of the message and of every attached message;
 *  - every text part, ALL alternatives of a multipart/alternative (the HTML
 *    part is read even when a text part exists), transfer encodings and
 *    charsets decoded (ISO-2022-JP, Shift_JIS and EUC-JP included) through
 *    mailparser/libmime;
 *  - HTML rendered to text in one linear pass (html-text.ts, htmlparser2's
 *    tokenizer): tags removed, entities decoded, so text a browser shows side
 *    by side (`<span>4111</span><span>1111</span>`) stays side by side;
 *  - attachment file names;
 *  - every attachment, every file inside a zip archive and every part of an
 *    office document, read by what its bytes are (readLeaf, sniff.ts), not
 *    by its name or type: attached messages (message/rfc822, message/global,
 *    the untyped parts of a multipart/digest, .eml files) opened in turn to a
 *    bounded depth; office documents (OOXML), PDF text and zip archives
 *    (documents.ts); text in any charset, UTF-16 included; the printable
 *    strings of anything else, which is unreadable when it is compressed or
 *    encrypted.
 * Every step is bounded (depth, document size, total text, time). A bound
 * reached or a document that cannot be read is not an error: it is listed in
 * `unreadable`, and the DLP policy (`[dlp] on_unreadable`) decides.
 */
import iconv from 'iconv-lite';
import { simpleParser } from 'mailparser';
import type { Transform } from 'node:stream';
import { type MimeNode, Splitter, type SplitterChunk } from '@zone-eu/mailsplit';
import { documentKind, documentText } from './documents';
import { htmlText } from './html-text';
import { decodeText, printableStrings, sniff, textEncoding } from './sniff';

export { htmlText };

export interface ExtractedAttachment {
  readonly filename: string;
  readonly contentType: string;
  readonly size: number;
  readonly content: Buffer;
}

export type UnreadableReason = 'depth' | 'size' | 'text' | 'time' | 'document';

export interface Extracted {
  readonly texts: string[];
  readonly attachments: ExtractedAttachment[];
  /** Why some part could not be read in full (empty when everything was read). */
  readonly unreadable: UnreadableReason[];
}

export interface ExtractLimits {
  /** Attached messages opened inside each other, at most. */
  readonly maxDepth: number;
  /** An office document or PDF larger than this is not opened (and its unpacked content is bounded by it too). */
  readonly maxDocumentBytes: number;
  /** Text collected from one message, at most (characters). */
  readonly maxTextChars: number;
  /** Time for the whole extraction of one message. */
  readonly timeoutMs: number;
}

export const MAX_NESTED_MESSAGES = 3;

export const EXTRACT_DEFAULTS: ExtractLimits = {
  maxDepth: MAX_NESTED_MESSAGES,
  maxDocumentBytes: 25 * 1024 * 1024,
  maxTextChars: 20 * 1024 * 1024,
  timeoutMs: 10000,
};

function charsetOf(headers: Map<string, unknown> | undefined): string | undefined {
  const ct = headers?.get('content-type') as { params?: Record<string, string> } | undefined;
  const cs = ct?.params?.charset;
  return cs && iconv.encodingExists(cs) ? cs : undefined;
}

/**
 * What one message's documents and archives may unpack in all, as a multiple of max_document_bytes: each level's
 * members stay in memory while the level below is read, and an attached message starts the document levels
 * again, so levels each within the limit could hold hundreds of megabytes for a message of a hundred kilobytes.
 */
export const UNPACKED_PER_MESSAGE = 4;

class Collector {
  readonly texts: string[] = [];
  readonly attachments: ExtractedAttachment[] = [];
  readonly unreadable = new Set<UnreadableReason>();
  private chars = 0;
  private unpackedBytes = 0;
  readonly deadline: number;

  constructor(readonly limits: ExtractLimits) {
    this.deadline = Date.now() + limits.timeoutMs;
  }

  text(t: string | undefined): void {
    if (!t) return;
    // armoured OpenPGP ciphertext (PGP/MIME, RFC 3156; or inline): text to a decoder, sealed to a reader
    if (ARMOURED_CIPHERTEXT.test(t)) this.unreadable.add('document');
    if (this.chars + t.length > this.limits.maxTextChars) {
      this.unreadable.add('text');
      t = t.slice(0, Math.max(0, this.limits.maxTextChars - this.chars));
    }
    this.chars += t.length;
    if (t) this.texts.push(t);
  }

  /**
   * Counts `bytes` more unpacked and held from a document or archive (until `done` gives them back, once the level
   * is read); false (and `size` unreadable) when that would pass the message's budget.
   */
  unpacked(bytes: number): boolean {
    if (this.unpackedBytes + bytes > UNPACKED_PER_MESSAGE * this.limits.maxDocumentBytes) {
      this.unreadable.add('size');
      return false;
    }
    this.unpackedBytes += bytes;
    return true;
  }

  /** A level's unpacked members read and let go: their bytes no longer count against the budget. */
  done(bytes: number): void {
    this.unpackedBytes -= bytes;
  }

  late(): boolean {
    if (Date.now() <= this.deadline) return false;
    this.unreadable.add('time');
    return true;
  }
}

/** Signatures and other parts that carry no content of the message's author: their strings are read, they are never unreadable. */
const SIGNATURE_TYPES = new Set(['application/pkcs7-signature', 'application/x-pkcs7-signature', 'application/pgp-signature']);
/** Names of files that hold a message. */
const MESSAGE_FILE = /\.(eml|mht|mhtml)$/i;
/** Fonts an OOXML package embeds, obfuscated by the format (ECMA-376 Part 2): no text to read. */
const EMBEDDED_FONT = /\.(odttf|fntdata)$/i;

/** Whether text bytes begin with a message's header block (a field of a message, before the first empty line). */
function looksLikeMessage(b: Buffer): boolean {
  const head = b.toString('latin1', 0, Math.min(b.length, 64 * 1024));
  const end = head.search(/\r?\n\r?\n/);
  if (end < 0 || !/^[!-9;-~]+:/.test(head)) return false;
  return /^(mime-version|content-type|from|subject|received|return-path|message-id):/im.test(head.slice(0, end));
}

interface Depths {
  /** Messages opened inside each other. */
  readonly message: number;
  /** Archives and documents opened inside each other. */
  readonly document: number;
}

/**
 * One leaf (an attachment, or a file inside an archive or a document), read
 * by what its bytes are, whatever its name and type say: a message is walked
 * as a message, a document or an archive opened (its files read in turn),
 * text decoded, a media or program file read for its printable strings, and
 * anything else (compressed or encrypted data, a container past max_depth)
 * listed in `unreadable`. Nothing is left unread and unlisted.
 */
async function readLeaf(bytes: Buffer, name: string, contentType: string, charset: string | undefined, at: Depths, c: Collector) {
  if (c.late()) return;
  const declaredMessage = contentType === 'message/rfc822' || contentType === 'message/global';
  const textLike = textEncoding(bytes) !== undefined;
  if (declaredMessage || (textLike && (MESSAGE_FILE.test(name) || looksLikeMessage(bytes)))) {
    if (!declaredMessage) c.text(decodeText(bytes, charset)); // text that looks like a message is read as the text it is, too
    if (at.message < c.limits.maxDepth) await walk(bytes, at.message + 1, c);
    else c.unreadable.add('depth');
    return;
  }
  const kind = documentKind(bytes, name, contentType);
  if (kind) {
    if (bytes.length > c.limits.maxDocumentBytes) {
      c.unreadable.add('size');
      return;
    }
    if (at.document > c.limits.maxDepth) {
      c.unreadable.add('document');
      return;
    }
    const r = await documentText(kind, bytes, { maxBytes: c.limits.maxDocumentBytes, deadline: c.deadline });
    if (r.unreadable) c.unreadable.add(r.unreadable);
    c.text(r.text);
    // the members stay in memory while each is read, and the levels below them too: counted while held
    const members = r.members ?? [];
    const held = members.reduce((n, m) => n + m.content.length, 0);
    if (!c.unpacked(held)) return;
    try {
      for (const m of members) {
        if (c.late()) return;
        if (EMBEDDED_FONT.test(m.name)) continue;
        await readLeaf(m.content, m.name, '', undefined, { message: at.message, document: at.document + 1 }, c);
      }
    } finally {
      c.done(held);
    }
    return;
  }
  if (textLike || contentType.startsWith('text/')) {
    const text = decodeText(bytes, charset);
    c.text(
      contentType === 'text/html' || HTML_FILE.test(name) || (!contentType.startsWith('text/') && /^\s*<(!doctype html|html)\b/i.test(text))
        ? htmlText(text)
        : text,
    );
    // a part declared text whose bytes are compressed or encrypted is not read by decoding it (armoured ciphertext: Collector.text)
    if (!textLike && sniff(bytes) === 'sealed') c.unreadable.add('document');
    return;
  }
  c.text(printableStrings(bytes));
  if (sniff(bytes) === 'sealed' && !SIGNATURE_TYPES.has(contentType)) c.unreadable.add('document');
}

const HTML_FILE = /\.(html?|xhtml)$/i;
/** An ASCII-armoured OpenPGP message (RFC 4880 §6.2) at the start of a line: encrypted content, however textual. */
const ARMOURED_CIPHERTEXT = /^-----BEGIN PGP MESSAGE-----\r?$/m;

/**
 * The parts of a multipart/digest whose type is not written: RFC 2046 §5.1.5
 * makes them messages (message/rfc822), where a MIME parser that ignores the
 * rule reads them as plain text, their own encodings left undecoded.
 */
function digestMessages(message: Buffer): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const splitter = new Splitter({ ignoreEmbedded: true });
    const found = new Map<MimeNode, Buffer[]>();
    splitter.on('data', (chunk: SplitterChunk) => {
      if (chunk.type === 'node') {
        const node = chunk as MimeNode;
        const parent = node.parentNode as MimeNode | false | undefined;
        if (parent && parent.contentType === 'multipart/digest' && node.headers && node.headers.get('Content-Type').length === 0)
          found.set(node, []);
      } else if (chunk.type === 'body') {
        found.get(chunk.node as MimeNode)?.push(chunk.value as Buffer);
      }
    });
    const stream = splitter as unknown as Transform;
    stream.on('error', () => resolve([...found.values()].map((b) => Buffer.concat(b))));
    stream.on('end', () => resolve([...found.values()].map((b) => Buffer.concat(b))));
    stream.end(message);
  });
}

async function walk(message: Buffer, depth: number, c: Collector): Promise<void> {
  if (c.late()) return;
  const parsed = await simpleParser(message, { skipImageLinks: true, skipTextLinks: true, skipHtmlToText: true, skipTextToHtml: true });
  c.text(parsed.subject);
  c.text(parsed.text);
  if (typeof parsed.html === 'string') c.text(htmlText(parsed.html));
  for (const a of parsed.attachments) {
    if (c.late()) return;
    const contentType = (a.contentType || 'application/octet-stream').toLowerCase();
    const filename = a.filename ?? '';
    c.attachments.push({ filename, contentType, size: a.size ?? a.content.length, content: a.content });
    c.text(filename);
    await readLeaf(a.content, filename, contentType, charsetOf(a.headers), { message: depth, document: 0 }, c);
  }
  if (/multipart\/digest/i.test(message.toString('latin1'))) {
    for (const inner of await digestMessages(message)) {
      if (c.late()) return;
      await readLeaf(inner, '', 'message/rfc822', undefined, { message: depth, document: 0 }, c);
    }
  }
}

export async function extractContent(message: Buffer, limits: ExtractLimits = EXTRACT_DEFAULTS): Promise<Extracted> {
  const c = new Collector(limits);
  await walk(message, 0, c);
  return { texts: c.texts, attachments: c.attachments, unreadable: [...c.unreadable] };
}
