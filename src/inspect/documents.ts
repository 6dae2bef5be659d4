/**
 * Text of office documents and PDFs for DLP (extract.ts), through well-kept
 * libraries, in memory, bounded in size and time:
 *  - OOXML (Word .docx, Excel .xlsx, PowerPoint .pptx and their macro forms):
 *    the zip is read with yauzl, each XML part with htmlparser2's tokenizer
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
 *  - zip archives (yauzl): the names of the files inside, and every file
 *    inside, handed back to extract.ts to be read by its content (not its
 *    name); an archive encrypted with a password cannot be read.
 * Zip archives (and OOXML packages) are read from their central directory, as
 * office programs read them, and inflated by zlib in Node's thread pool, a
 * chunk at a time: the event loop is never held by a member, the size a
 * member states is checked against what it inflates to while it inflates (a
 * member that lies is refused as soon as it passes its stated size, never
 * inflated to the end), and the deadline is checked at every chunk.
 * A document larger than the limit, one whose unpacked parts would exceed it,
 * one that does not parse (damaged or encrypted) or that runs out of time is
 * reported as unreadable; the DLP policy decides. Nothing is written to disk.
 */
import { join } from 'node:path';
import { type Entry, type ZipFile, fromBuffer } from 'yauzl';
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

/** The most entries a zip archive or office package may hold to be read (beyond: unreadable, `document`). */
export const MAX_ZIP_ENTRIES = 10_000;

/** The message's time ran out while a document was read. */
class OutOfTime extends Error {}

/** A zip's entries, one at a time, from its central directory (`lazyEntries`), each member's size checked while it inflates. */
function openZip(bytes: Buffer): Promise<ZipFile> {
  return new Promise((resolve, reject) =>
    fromBuffer(bytes, { lazyEntries: true, validateEntrySizes: true }, (err, zip) => (err ? reject(err) : resolve(zip))),
  );
}

function nextEntry(zip: ZipFile): Promise<Entry | undefined> {
  return new Promise((resolve, reject) => {
    const done = (value: Entry | undefined, err?: unknown): void => {
      zip.off('entry', onEntry).off('end', onEnd).off('error', onError);
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(value);
    };
    const onEntry = (e: Entry): void => done(e);
    const onEnd = (): void => done(undefined);
    const onError = (err: unknown): void => done(undefined, err);
    zip.on('entry', onEntry).on('end', onEnd).on('error', onError);
    zip.readEntry();
  });
}

/** One member's bytes: zlib's chunks as they come, stopped at the deadline; yauzl fails the stream past the member's stated size. */
function readMember(zip: ZipFile, entry: Entry, deadline: number): Promise<Buffer> {
  // stored (0) or deflated (8): what zlib reads; a password or another method leaves the member unreadable
  if (entry.isEncrypted() || (entry.compressionMethod !== 0 && entry.compressionMethod !== 8))
    return Promise.reject(new Error('encrypted, or an unknown compression'));
  return new Promise((resolve, reject) =>
    zip.openReadStream(entry, (err, stream) => {
      if (err) return reject(err);
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => {
        if (Date.now() >= deadline) {
          stream.destroy();
          reject(new OutOfTime());
        } else chunks.push(chunk);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(chunks)));
    }),
  );
}

/**
 * Every file of a zip archive, in the archive's order, at most `maxBytes` unpacked in all by the
 * sizes the members state (the rest is left out and reported as `size`); a member whose data
 * inflates to more (or less) than it states makes the archive unreadable (`document`).
 */
async function unzipBounded(bytes: Buffer, limits: DocumentLimits, names: string[]): Promise<{ files: DocumentMember[]; over: boolean }> {
  const zip = await openZip(bytes);
  const files: DocumentMember[] = [];
  let total = 0;
  let count = 0;
  let over = false;
  try {
    for (let entry = await nextEntry(zip); entry !== undefined; entry = await nextEntry(zip)) {
      // office packages hold tens to hundreds of parts: an archive of more is read no further (each is sorted, then scanned)
      if (++count > MAX_ZIP_ENTRIES) throw new Error(`more than ${MAX_ZIP_ENTRIES} entries`);
      names.push(entry.fileName);
      // at every entry, those skipped included (an archive of many empty folders is read in turns too)
      if (Date.now() >= limits.deadline) throw new OutOfTime();
      if (entry.fileName.endsWith('/') || over) continue;
      total += entry.uncompressedSize;
      if (total > limits.maxBytes) {
        over = true;
        continue;
      }
      files.push({ name: entry.fileName, content: await readMember(zip, entry, limits.deadline) });
    }
  } finally {
    zip.close();
  }
  return { files, over };
}

/** Why a zip could not be read: its time ran out, or it is damaged, encrypted or lies about a member's size. */
function unreadableZip(err: unknown): 'time' | 'document' {
  return err instanceof OutOfTime ? 'time' : 'document';
}

/** One collator for every comparison: `localeCompare` with options builds one per call, and an archive may hold many members. */
const NAMES = new Intl.Collator('en', { numeric: true });
const byName = (a: DocumentMember, b: DocumentMember) => NAMES.compare(a.name, b.name);

async function ooxmlText(bytes: Buffer, limits: DocumentLimits): Promise<DocumentResult> {
  let unpacked: { files: DocumentMember[]; over: boolean };
  try {
    unpacked = await unzipBounded(bytes, limits, []);
  } catch (err) {
    return { text: '', unreadable: unreadableZip(err) };
  }
  const { files, over } = unpacked;
  const texts: string[] = [];
  const members: DocumentMember[] = [];
  for (const part of [...files].sort(byName)) {
    if (PACKAGE_PART.test(part.name)) continue;
    if (/\.xml$/i.test(part.name)) {
      const xml = new TextDecoder().decode(part.content);
      texts.push(OFFICE_PART.test(part.name) ? xmlText(xml) : xmlAllText(xml));
    } else members.push(part);
  }
  const text = texts.join('\n');
  return over ? { text, members, unreadable: 'size' } : { text, members };
}

/**
 * The PDF reader was busy with other messages' PDFs for most of this message's time: no finding about
 * this message (its PDF was not given its time), so it is inspected again later (a temporary failure).
 */
export class PdfReaderBusy extends Error {
  constructor(waitedMs: number) {
    super(`the PDF reader was busy with other mail for ${waitedMs} ms of this message's time; try again later`);
    this.name = 'PdfReaderBusy';
  }
}

/**
 * pdf.js in a thread of its own (pdf-worker.ts), one PDF at a time: when a
 * message's time is up the thread is ended — a PDF built to take long cannot
 * hold the gateway's event loop — and a new one is started for the next PDF.
 * The time a PDF waits for its turn is other messages' time: a PDF whose
 * message's time ran out while it waited, or that waited longer than it was
 * read, is not 'time' (unreadable, which quarantines) but PdfReaderBusy (the
 * message is tried again later, when the reader may be free); 'time' is only
 * for a PDF that spent most of its message's time being read itself.
 */
class PdfReader {
  private thread: LoadedWorker | undefined;
  private next = 1;
  private queue: Promise<unknown> = Promise.resolve();

  read(bytes: Buffer, deadline: number): Promise<DocumentResult> {
    const queued = Date.now();
    const run = this.queue.then(() => this.once(bytes, deadline, queued));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private once(bytes: Buffer, deadline: number, queued: number): Promise<DocumentResult> {
    const turn = Date.now();
    // queued at or after its message's deadline: the message's own time (its earlier parts) ran out, not another's
    if (turn >= deadline)
      return queued < deadline ? Promise.reject(new PdfReaderBusy(turn - queued)) : Promise.resolve({ text: '', unreadable: 'time' });
    const thread = (this.thread ??= this.start());
    const worker = thread.worker;
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const detach = () => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onError);
      };
      const done = (r: DocumentResult) => {
        detach();
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
          const waited = turn - queued;
          if (waited > deadline - turn) {
            detach();
            reject(new PdfReaderBusy(waited));
          } else done({ text: '', unreadable: 'time' });
        },
        Math.max(0, deadline - turn),
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

async function zipText(bytes: Buffer, limits: DocumentLimits): Promise<DocumentResult> {
  const names: string[] = [];
  let unpacked: { files: DocumentMember[]; over: boolean };
  try {
    unpacked = await unzipBounded(bytes, limits, names);
  } catch (err) {
    return { text: names.join('\n'), unreadable: unreadableZip(err) };
  }
  const { files: members, over } = unpacked;
  return over ? { text: names.join('\n'), members, unreadable: 'size' } : { text: names.join('\n'), members };
}

/**
 * The text of one document, and for an archive or an OOXML package the files
 * it holds (`members`), which the caller reads in turn.
 */
export async function documentText(kind: DocumentKind, bytes: Buffer, limits: DocumentLimits): Promise<DocumentResult> {
  if (bytes.length > limits.maxBytes) return { text: '', unreadable: 'size' };
  try {
    if (kind === 'pdf') return await pdfReader.read(bytes, limits.deadline);
    if (kind === 'zip') return await zipText(bytes, limits);
    return await ooxmlText(bytes, limits);
  } catch (err) {
    if (err instanceof PdfReaderBusy) throw err; // not this document's doing: the message is tried again later
    return { text: '', unreadable: 'document' };
  }
}
