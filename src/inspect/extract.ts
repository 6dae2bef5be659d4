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
 *  - text attachments (their charset decoded), attachment file names;
 *  - attached messages (message/rfc822), opened in turn to a bounded depth;
 *  - office documents (OOXML docx/xlsx/pptx: unzipped with fflate, XML read
 *    with htmlparser2's tokenizer), PDF text (pdf.js), and what zip archives hold (text
 *    files, documents, archives inside), see documents.ts.
 * Every step is bounded (depth, document size, total text, time). A bound
 * reached or a document that cannot be read is not an error: it is listed in
 * `unreadable`, and the DLP policy (`[dlp] on_unreadable`) decides.
 */
import iconv from 'iconv-lite';
import { simpleParser } from 'mailparser';
import { documentKind, documentText } from './documents';
import { htmlText } from './html-text';

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

function charsetOf(headers: Map<string, unknown> | undefined): string {
  const ct = headers?.get('content-type') as { params?: Record<string, string> } | undefined;
  const cs = ct?.params?.charset;
  return cs && iconv.encodingExists(cs) ? cs : 'utf-8';
}

class Collector {
  readonly texts: string[] = [];
  readonly attachments: ExtractedAttachment[] = [];
  readonly unreadable = new Set<UnreadableReason>();
  private chars = 0;
  readonly deadline: number;

  constructor(readonly limits: ExtractLimits) {
    this.deadline = Date.now() + limits.timeoutMs;
  }

  text(t: string | undefined): void {
    if (!t) return;
    if (this.chars + t.length > this.limits.maxTextChars) {
      this.unreadable.add('text');
      t = t.slice(0, Math.max(0, this.limits.maxTextChars - this.chars));
    }
    this.chars += t.length;
    if (t) this.texts.push(t);
  }

  late(): boolean {
    if (Date.now() <= this.deadline) return false;
    this.unreadable.add('time');
    return true;
  }
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
    if (contentType === 'message/rfc822') {
      if (depth < c.limits.maxDepth) await walk(a.content, depth + 1, c);
      else c.unreadable.add('depth');
    } else if (contentType === 'text/html') {
      c.text(htmlText(iconv.decode(a.content, charsetOf(a.headers))));
    } else if (contentType.startsWith('text/')) {
      c.text(iconv.decode(a.content, charsetOf(a.headers)));
    } else {
      const kind = documentKind(a.content, filename, contentType);
      if (!kind) continue;
      if (a.content.length > c.limits.maxDocumentBytes) {
        c.unreadable.add('size');
        continue;
      }
      const r = await documentText(kind, a.content, {
        maxBytes: c.limits.maxDocumentBytes,
        deadline: c.deadline,
        maxDepth: c.limits.maxDepth,
      });
      if (r.unreadable) c.unreadable.add(r.unreadable);
      c.text(r.text);
    }
  }
}

export async function extractContent(message: Buffer, limits: ExtractLimits = EXTRACT_DEFAULTS): Promise<Extracted> {
  const c = new Collector(limits);
  await walk(message, 0, c);
  return { texts: c.texts, attachments: c.attachments, unreadable: [...c.unreadable] };
}
