/**
 * The PDF reader's thread (documents.ts): pdf.js runs here, never on the
 * gateway's event loop, so a PDF built to take long cannot stall SMTP; the
 * gateway ends this thread when a message's time is up, and its heap is
 * bounded (resourceLimits). Requests come one at a time: `{ id, data }`;
 * answers `{ id, text }` or `{ id, error }` (a damaged or encrypted PDF).
 */
import { parentPort } from 'node:worker_threads';

interface PdfTextItem {
  readonly str?: string;
  readonly hasEOL?: boolean;
}

async function read(data: Uint8Array): Promise<string> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const task = pdfjs.getDocument({
    data,
    disableFontFace: true,
    useSystemFonts: false,
    isEvalSupported: false,
    enableXfa: false,
    stopAtErrors: false,
    verbosity: 0,
  });
  try {
    const doc = await task.promise;
    const pages: string[] = [];
    for (let p = 1; p <= doc.numPages; p++) {
      const content = await (await doc.getPage(p)).getTextContent();
      pages.push((content.items as PdfTextItem[]).map((i) => `${i.str ?? ''}${i.hasEOL ? '\n' : ''}`).join(''));
    }
    return pages.join('\n');
  } finally {
    await task.destroy().catch(() => undefined);
  }
}

parentPort?.on('message', (m: { id: number; data: Uint8Array }) => {
  read(m.data).then(
    (text) => parentPort!.postMessage({ id: m.id, text }),
    (err: unknown) => parentPort!.postMessage({ id: m.id, error: err instanceof Error ? err.name : 'Error' }),
  );
});
