/**
 * Text of office documents and PDFs for DLP (extract.ts), through well-kept
 * libraries, in memory, bounded in size and time:
 *  - OOXML (Word .docx, Excel .xlsx, PowerPoint .pptx and their macro forms):
 *    the zip is read with fflate, each XML part with htmlparser2's tokenizer
 *    (markup.ts: linear, whatever the nesting);
 *    runs of one paragraph are joined as a reader sees them (a number split
 *    over two runs stays one number), paragraphs and rows end a line, cells
 *    and tabs are separated by a tab (two cells never make one number);
 *  - PDF: the text layer of every page, through pdf.js (pdfjs-dist), with no
 *    fonts, no scripting and no evaluation of code from the document, in a
 *    thread of its own that is ended when the message's time is up;
 *    every XML part of the package is read (the main part wherever its
 *    relationships put it, headers, notes, comments, SmartArt, charts,
 *    custom XML), and every other part (embedded workbooks, documents,
 *    objects, media) is handed back to extract.ts, which reads it as any
 *    attachment, to max_depth;
 *  - zip archives (fflate): the names of the files inside, and every file
 *    inside, handed back to extract.ts to be read by its content (not its
 *    name); an archive encrypted with a password cannot be read.
 * A document larger than the limit, one whose unpacked parts would exceed it,
 * one that does not parse (damaged or encrypted) or that runs out of time is
 * reported as unreadable; the DLP policy decides. Nothing is written to disk.
 */
import { join } from 'node:path';
import { type Unzipped, unzipSync } from 'fflate';
import { type LoadedWorker, endWorker, isLoadedMessage, startWorker } from '../threads/loaded-worker';
import { readMarkup } from './markup';

export type DocumentKind = 'ooxml' | 'pdf' | 'zip';

/** A file inside a zip archive or an OOXML package, to be read in turn (extract.ts). */
export interface DocumentMember {
  readonly name: string;
  readonly content: Buffer;
}

export interface DocumentResult {
  readonly text: string;
  readonly unreadable?: 'size' | 'time' | 'document';
  /** What the archive or package holds besides its own text, unread here. */
  readonly members?: readonly DocumentMember[];
}

const OOXML_EXT = /\.(docx|docm|dotx|xlsx|xlsm|xltx|pptx|pptm|potx|ppsx)$/i;

/** Which reader a part needs, from its bytes first (a renamed file is still read), then its name and type. */
export function documentKind(bytes: Buffer, filename: string, contentType: string): DocumentKind | undefined {
  if (bytes.subarray(0, 1024).includes('%PDF-') || contentType === 'application/pdf' || /\.pdf$/i.test(filename)) return 'pdf';
  const zip = bytes.length >= 4 && bytes.readUInt32LE(0) === 0x04034b50;
  if (contentType.startsWith('application/vnd.openxmlformats-officedocument.') || OOXML_EXT.test(filename)) return 'ooxml';
  if (zip && bytes.includes('[Content_Types].xml')) return 'ooxml';
  if (zip || contentType === 'application/zip' || contentType === 'application/x-zip-compressed' || /\.zip$/i.test(filename)) return 'zip';
  return undefined;
}

/** Package parts that only describe the package (content types, relationships): no text. */
const PACKAGE_PART = /(^\[Content_Types\]\.xml|\.rels)$/i;
/** Parts in the Office vocabularies, whose text is in text elements (w:t, a:t, c:v…); other XML parts (custom XML, properties) are read whole. */
const OFFICE_PART = /^(word|xl|ppt)\//;
const LINE_END = new Set(['p', 'si', 'row', 'br', 'cr', 'tr', 'txbody']);
const CELL_END = new Set(['c', 'tab', 'tc']);
/** Elements whose character data is text: text, values, field codes, and text deleted with tracked changes (still shown in review). */
const TEXT_ELEMENT = new Set(['t', 'v', 'instrtext', 'deltext', 'delinstrtext']);

function localName(name: string): string {
  const i = name.indexOf(':');
  return (i < 0 ? name : name.slice(i + 1)).toLowerCase();
}

/** The text of one OOXML part: character data of text elements, with the separators a reader sees (one pass, linear). */
function xmlText(xml: string): string {
  const out: string[] = [];
  let inText = 0;
  let skipValue = 0; // <v> of a shared-string cell holds an index, not text
  const sharedCell: boolean[] = [];
  readMarkup(xml, true, {
    open(name, attrs) {
      const n = localName(name);
      if (n === 'c') sharedCell.push(attrs.get('t') === 's');
      if (TEXT_ELEMENT.has(n)) {
        if (n === 'v' && sharedCell.at(-1)) skipValue++;
        else inText++;
      }
    },
    text(data) {
      if (inText > 0 && skipValue === 0) out.push(data);
    },
    close(name) {
      const n = localName(name);
      if (TEXT_ELEMENT.has(n)) {
        if (n === 'v' && sharedCell.at(-1)) skipValue = Math.max(0, skipValue - 1);
        else inText = Math.max(0, inText - 1);
      }
      if (n === 'c') sharedCell.pop();
      if (LINE_END.has(n)) out.push('\n');
      else if (CELL_END.has(n)) out.push('\t');
    },
  });
  return out.join('');
}

/** All character data of an XML part, each text node a line of its own (one pass, linear). */
function xmlAllText(xml: string): string {
  const out: string[] = [];
  readMarkup(xml, true, {
    open() {},
    text(data) {
      out.push(data);
    },
    close() {
      out.push('\n');
    },
  });
  return out.join('');
}

/** Every file of a zip archive, at most `maxBytes` unpacked in all (the rest is left out and reported as `size`). */
function unzipBounded(bytes: Buffer, maxBytes: number, names: string[]): { files: Unzipped; over: boolean } {
  let total = 0;
  let over = false;
  const files = unzipSync(bytes, {
    filter: (f) => {
      names.push(f.name);
      if (f.name.endsWith('/')) return false;
      total += f.originalSize;
      if (total > maxBytes) over = true;
      return !over;
    },
  });
  return { files, over };
}

const byName = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

function ooxmlText(bytes: Buffer, maxBytes: number): DocumentResult {
  let unpacked: { files: Unzipped; over: boolean };
  try {
    unpacked = unzipBounded(bytes, maxBytes, []);
  } catch {
    return { text: '', unreadable: 'document' };
  }
  const { files, over } = unpacked;
  const texts: string[] = [];
  const members: DocumentMember[] = [];
  for (const name of Object.keys(files).sort(byName)) {
    if (PACKAGE_PART.test(name)) continue;
    const content = files[name]!;
    if (/\.xml$/i.test(name)) {
      const xml = new TextDecoder().decode(content);
      texts.push(OFFICE_PART.test(name) ? xmlText(xml) : xmlAllText(xml));
    } else members.push({ name, content: Buffer.from(content) });
  }
  const text = texts.join('\n');
  return over ? { text, members, unreadable: 'size' } : { text, members };
}

/**
 * pdf.js in a thread of its own (pdf-worker.ts), one PDF at a time: when a
 * message's time is up the thread is ended — a PDF built to take long cannot
 * hold the gateway's event loop — and a new one is started for the next PDF.
 */
class PdfReader {
  private thread: LoadedWorker | undefined;
  private next = 1;
  private queue: Promise<unknown> = Promise.resolve();

  read(bytes: Buffer, deadline: number): Promise<DocumentResult> {
    const run = this.queue.then(() => this.once(bytes, deadline));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private once(bytes: Buffer, deadline: number): Promise<DocumentResult> {
    if (Date.now() >= deadline) return Promise.resolve({ text: '', unreadable: 'time' });
    const thread = (this.thread ??= this.start());
    const worker = thread.worker;
    const id = this.next++;
    return new Promise((resolve) => {
      const done = (r: DocumentResult) => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onError);
        resolve(r);
      };
      const onMessage = (m: { id: number; text?: string; error?: string }) => {
        if (!isLoadedMessage(m) && m.id === id) done(typeof m.text === 'string' ? { text: m.text } : { text: '', unreadable: 'document' });
      };
      const onError = () => done({ text: '', unreadable: 'document' }); // the thread is dropped by its listener of start()
      const timer = setTimeout(
        () => {
          if (this.thread === thread) this.thread = undefined;
          void endWorker(thread); // never inside a module load: src/threads/loaded-worker.ts
          done({ text: '', unreadable: 'time' });
        },
        Math.max(0, deadline - Date.now()),
      );
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onError);
      worker.postMessage({ id, data: new Uint8Array(bytes) });
    });
  }

  private start(): LoadedWorker {
    const t = startWorker(join(__dirname, 'pdf-worker.js'), { resourceLimits: { maxOldGenerationSizeMb: PDF_HEAP_MB } });
    t.worker.unref(); // an idle reader never keeps the process alive
    // for the thread's whole life, not only while a document is read: a thread's error with no listener (pdf.js
    // rejecting after its answer, between documents) would end the process; a thread that failed or exited is
    // replaced at the next document
    const gone = () => {
      if (this.thread === t) this.thread = undefined;
    };
    t.worker.on('error', gone);
    t.worker.on('exit', gone);
    return t;
  }
}

/** The PDF reader thread's heap, at most (MB). */
export const PDF_HEAP_MB = 512;
const pdfReader = new PdfReader();

export interface DocumentLimits {
  readonly maxBytes: number;
  readonly deadline: number;
}

function zipText(bytes: Buffer, limits: DocumentLimits): DocumentResult {
  const names: string[] = [];
  let unpacked: { files: Unzipped; over: boolean };
  try {
    unpacked = unzipBounded(bytes, limits.maxBytes, names);
  } catch {
    return { text: names.join('\n'), unreadable: 'document' };
  }
  const members = Object.keys(unpacked.files).map((name) => ({ name, content: Buffer.from(unpacked.files[name]!) }));
  return unpacked.over ? { text: names.join('\n'), members, unreadable: 'size' } : { text: names.join('\n'), members };
}

/**
 * The text of one document, and for an archive or an OOXML package the files
 * it holds (`members`), which the caller reads in turn.
 */
export async function documentText(kind: DocumentKind, bytes: Buffer, limits: DocumentLimits): Promise<DocumentResult> {
  if (bytes.length > limits.maxBytes) return { text: '', unreadable: 'size' };
  try {
    if (kind === 'pdf') return await pdfReader.read(bytes, limits.deadline);
    if (kind === 'zip') return zipText(bytes, limits);
    return ooxmlText(bytes, limits.maxBytes);
  } catch {
    return { text: '', unreadable: 'document' };
  }
}
