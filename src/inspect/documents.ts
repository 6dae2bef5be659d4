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
 *  - zip archives (fflate): the names of the files inside, text files (HTML
 *    rendered), and documents and archives inside, in turn, to max_depth;
 *    an archive encrypted with a password cannot be read.
 * A document larger than the limit, one whose unpacked parts would exceed it,
 * one that does not parse (damaged or encrypted) or that runs out of time is
 * reported as unreadable; the DLP policy decides. Nothing is written to disk.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type Unzipped, unzipSync } from 'fflate';
import { htmlText } from './html-text';
import { readMarkup } from './markup';

export type DocumentKind = 'ooxml' | 'pdf' | 'zip';

export interface DocumentResult {
  readonly text: string;
  readonly unreadable?: 'size' | 'time' | 'document';
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

/** XML parts that hold text a reader sees. */
const TEXT_PART =
  /^(word\/(document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml|xl\/(sharedStrings|worksheets\/sheet\d+|comments\d*)\.xml|ppt\/(slides\/slide\d+|notesSlides\/notesSlide\d+|comments\/comment\d+)\.xml)$/;
const LINE_END = new Set(['p', 'si', 'row', 'br', 'cr', 'tr', 'txbody']);
const CELL_END = new Set(['c', 'tab', 'tc']);

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
      if (n === 't' || n === 'v' || n === 'instrtext') {
        if (n === 'v' && sharedCell.at(-1)) skipValue++;
        else inText++;
      }
    },
    text(data) {
      if (inText > 0 && skipValue === 0) out.push(data);
    },
    close(name) {
      const n = localName(name);
      if (n === 't' || n === 'v' || n === 'instrtext') {
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

function ooxmlText(bytes: Buffer, maxBytes: number): DocumentResult {
  let total = 0;
  let over = false;
  let files: Unzipped;
  try {
    files = unzipSync(bytes, {
      filter: (f) => {
        if (!TEXT_PART.test(f.name)) return false;
        total += f.originalSize;
        if (total > maxBytes) over = true;
        return !over;
      },
    });
  } catch {
    return { text: '', unreadable: 'document' };
  }
  const names = Object.keys(files).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const text = names.map((n) => xmlText(new TextDecoder().decode(files[n]))).join('\n');
  return over ? { text, unreadable: 'size' } : { text };
}

/**
 * pdf.js in a thread of its own (pdf-worker.ts), one PDF at a time: when a
 * message's time is up the thread is ended — a PDF built to take long cannot
 * hold the gateway's event loop — and a new one is started for the next PDF.
 */
class PdfReader {
  private worker: Worker | undefined;
  private next = 1;
  private queue: Promise<unknown> = Promise.resolve();

  read(bytes: Buffer, deadline: number): Promise<DocumentResult> {
    const run = this.queue.then(() => this.once(bytes, deadline));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private once(bytes: Buffer, deadline: number): Promise<DocumentResult> {
    if (Date.now() >= deadline) return Promise.resolve({ text: '', unreadable: 'time' });
    const worker = (this.worker ??= this.start());
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
        if (m.id === id) done(typeof m.text === 'string' ? { text: m.text } : { text: '', unreadable: 'document' });
      };
      const onError = () => {
        if (this.worker === worker) this.worker = undefined;
        done({ text: '', unreadable: 'document' });
      };
      const timer = setTimeout(
        () => {
          if (this.worker === worker) this.worker = undefined;
          void worker.terminate();
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

  private start(): Worker {
    const w = new Worker(join(__dirname, 'pdf-worker.js'), { resourceLimits: { maxOldGenerationSizeMb: PDF_HEAP_MB } });
    w.unref(); // an idle reader never keeps the process alive
    return w;
  }
}

/** The PDF reader thread's heap, at most (MB). */
export const PDF_HEAP_MB = 512;
const pdfReader = new PdfReader();

const TEXT_FILE = /\.(txt|text|csv|tsv|md|json|xml|log|eml|ics|vcf)$/i;
const HTML_FILE = /\.(html?|xhtml)$/i;
const INNER_DOCUMENT = /\.(pdf|zip|docx|docm|dotx|xlsx|xlsm|xltx|pptx|pptm|potx|ppsx)$/i;

export interface DocumentLimits {
  readonly maxBytes: number;
  readonly deadline: number;
  /** Archives and documents inside archives, at most this deep. */
  readonly maxDepth: number;
}

async function zipText(bytes: Buffer, limits: DocumentLimits, depth: number): Promise<DocumentResult> {
  let total = 0;
  let over = false;
  const names: string[] = [];
  let files: Unzipped;
  try {
    files = unzipSync(bytes, {
      filter: (f) => {
        names.push(f.name);
        if (!(TEXT_FILE.test(f.name) || HTML_FILE.test(f.name) || INNER_DOCUMENT.test(f.name))) return false;
        total += f.originalSize;
        if (total > limits.maxBytes) over = true;
        return !over;
      },
    });
  } catch {
    return { text: names.join('\n'), unreadable: 'document' };
  }
  const texts = [names.join('\n')];
  let unreadable: DocumentResult['unreadable'] = over ? 'size' : undefined;
  for (const name of Object.keys(files)) {
    const content = Buffer.from(files[name]!);
    if (HTML_FILE.test(name)) texts.push(htmlText(new TextDecoder().decode(content)));
    else if (TEXT_FILE.test(name)) texts.push(new TextDecoder().decode(content));
    else {
      const kind = documentKind(content, name, '');
      if (!kind) continue;
      if (depth >= limits.maxDepth) {
        unreadable ??= 'document';
        continue;
      }
      const r = await readDocument(kind, content, limits, depth + 1);
      texts.push(r.text);
      unreadable ??= r.unreadable;
    }
    if (Date.now() > limits.deadline) return { text: texts.join('\n'), unreadable: 'time' };
  }
  return unreadable ? { text: texts.join('\n'), unreadable } : { text: texts.join('\n') };
}

async function readDocument(kind: DocumentKind, bytes: Buffer, limits: DocumentLimits, depth: number): Promise<DocumentResult> {
  if (bytes.length > limits.maxBytes) return { text: '', unreadable: 'size' };
  try {
    if (kind === 'pdf') return await pdfReader.read(bytes, limits.deadline);
    if (kind === 'zip') return await zipText(bytes, limits, depth);
    return ooxmlText(bytes, limits.maxBytes);
  } catch {
    return { text: '', unreadable: 'document' };
  }
}

export function documentText(kind: DocumentKind, bytes: Buffer, limits: DocumentLimits): Promise<DocumentResult> {
  return readDocument(kind, bytes, limits, 0);
}
