/**
 * PDF text for DLP through pdf.js, in the gateway's own build (dist/, as
 * Haraka runs it: pdf.js is an ES module that Jest cannot load), in a child
 * process fed the message on stdin. pdf.js runs in a thread of its own: a
 * PDF that takes longer than the message's time is cut off ('time') while
 * the event loop keeps ticking, a damaged one is 'document', and the next
 * PDF is read by a fresh thread.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pdf } from '../support/documents';

jest.setTimeout(120000);

const dist = join(__dirname, '..', '..', 'dist', 'inspect', 'extract.js');

interface Out {
  readonly results: { texts: string[]; unreadable: string[]; ms: number }[];
  readonly maxGapMs: number;
}

/** Runs `script` in a fresh node process (the build's modules, as Haraka loads them), the messages on its stdin as base64 JSON; its stdout as JSON. */
function inBuild<T>(script: string, messages: readonly Buffer[]): T {
  return JSON.parse(
    execFileSync(process.execPath, ['-e', script], {
      input: JSON.stringify(messages.map((m) => m.toString('base64'))),
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    }),
  ) as T;
}

/** Extracts each message in a fresh node process running the build; `timeoutMs[i]` for message i (default 10 s). */
function extractInBuild(messages: readonly Buffer[], timeoutMs: readonly number[] = []): Out {
  const script = `
    const { extractContent, EXTRACT_DEFAULTS } = require(${JSON.stringify(dist)});
    const limits = ${JSON.stringify(messages.map((_, i) => timeoutMs[i] ?? 10000))};
    const input = JSON.parse(require('fs').readFileSync(0, 'utf8')).map((b) => Buffer.from(b, 'base64'));
    let last = Date.now(), maxGapMs = 0;
    const tick = setInterval(() => { const now = Date.now(); maxGapMs = Math.max(maxGapMs, now - last); last = now; }, 10);
    (async () => {
      const results = [];
      for (const [i, m] of input.entries()) {
        const t0 = Date.now();
        const r = await extractContent(m, { ...EXTRACT_DEFAULTS, timeoutMs: limits[i] });
        results.push({ texts: r.texts, unreadable: r.unreadable, ms: Date.now() - t0 });
      }
      clearInterval(tick);
      process.stdout.write(JSON.stringify({ results, maxGapMs }));
    })();`;
  return inBuild<Out>(script, messages);
}

/**
 * Extracts the messages at once in a fresh node process running the build: message i starts `startMs[i]` after
 * the first, with `timeoutMs[i]`; each result is its content or the name and text of the error it ended with.
 */
function extractConcurrently(
  messages: readonly Buffer[],
  timeoutMs: readonly number[],
  startMs: readonly number[],
): { texts?: string[]; unreadable?: string[]; error?: string; message?: string; ms: number }[] {
  const script = `
    const { extractContent, EXTRACT_DEFAULTS } = require(${JSON.stringify(dist)});
    const limits = ${JSON.stringify(timeoutMs)};
    const starts = ${JSON.stringify(startMs)};
    const input = JSON.parse(require('fs').readFileSync(0, 'utf8')).map((b) => Buffer.from(b, 'base64'));
    const one = async (m, i) => {
      await new Promise((r) => setTimeout(r, starts[i]));
      const t0 = Date.now();
      try {
        const r = await extractContent(m, { ...EXTRACT_DEFAULTS, timeoutMs: limits[i] });
        return { texts: r.texts, unreadable: r.unreadable, ms: Date.now() - t0 };
      } catch (err) {
        return { error: err.name, message: err.message, ms: Date.now() - t0 };
      }
    };
    Promise.all(input.map(one)).then((r) => process.stdout.write(JSON.stringify(r)));`;
  return inBuild(script, messages);
}

const withPdf = (bytes: Buffer) =>
  Buffer.from(
    `From: a@a.example\r\nTo: b@b.example\r\nSubject: doc\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream; name="scan.bin"\r\nContent-Disposition: attachment; filename="scan.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n${bytes.toString('base64')}\r\n--b--\r\n`,
  );

beforeAll(() => {
  if (!existsSync(dist)) throw new Error("run `npm run build` first: this test reads PDFs with the gateway's build");
});

test('the text layer of a PDF (found by its bytes, whatever its name) is read; a damaged PDF is unreadable', () => {
  const { results } = extractInBuild([
    withPdf(pdf(['Order 1207', 'Card 4111 1111 1111 1111'])),
    withPdf(Buffer.from('%PDF-1.4\n1 0 obj garbage')),
  ]);
  expect(results[0]!.texts.at(-1)).toBe('Order 1207\nCard 4111 1111 1111 1111');
  expect(results[0]!.unreadable).toEqual([]);
  expect(results[1]!.unreadable).toEqual(['document']);
});

test('a PDF that takes longer than the time allowed is cut off without stalling the event loop; the next PDF is read', () => {
  const slow = pdf(Array.from({ length: 200000 }, (_, i) => `line ${i} of a long report`));
  const { results, maxGapMs } = extractInBuild(
    [withPdf(pdf(['warm up'])), withPdf(slow), withPdf(pdf(['after it 4111']))],
    [10000, 400, 10000],
  );
  expect(results[1]!.unreadable).toEqual(['time']);
  expect(results[1]!.ms).toBeLessThan(5000); // a 400 ms limit, with the thread's end and the decoding around it
  expect(results[2]!.texts.at(-1)).toBe('after it 4111');
  expect(maxGapMs).toBeLessThan(1000); // the 10 ms ticker kept running while pdf.js worked on the slow PDF (slack for a shared machine)
});

test('through the outbound inspection step: the waiting message is a temporary failure (tempfail, 451 4.7.5 at the gateway), never the quarantine of on_unreadable', () => {
  const inspect = join(__dirname, '..', '..', 'dist', 'inspect', 'inspect.js');
  const slow = pdf(Array.from({ length: 400000 }, (_, i) => `line ${i} of a long report`));
  const script = `
    const { inspectOutbound } = require(${JSON.stringify(inspect)});
    const { EXTRACT_DEFAULTS } = require(${JSON.stringify(dist)});
    const dlp = { rules: [], onUnreadable: 'quarantine', limits: { ...EXTRACT_DEFAULTS, timeoutMs: 2000 } };
    const [a, b] = JSON.parse(require('fs').readFileSync(0, 'utf8')).map((m) => Buffer.from(m, 'base64'));
    // behind the slow one in the reader's queue, its time up when the slow one's is
    const late = new Promise((r) => setTimeout(r, 200)).then(() => inspectOutbound(b, { ...dlp, limits: { ...dlp.limits, timeoutMs: 1800 } }));
    Promise.all([inspectOutbound(a, dlp), late]).then((r) => process.stdout.write(JSON.stringify(r)));`;
  const [hostile, waiting] = inBuild<{ verdict: { result: string }; decision: { action: string; reason?: string; rule?: string } }[]>(
    script,
    [withPdf(slow), withPdf(pdf(['hello']))],
  );
  expect(hostile!.decision).toEqual({ action: 'quarantine', rule: 'unreadable' });
  expect(waiting!.verdict.result).toBe('temperror');
  expect(waiting!.decision).toEqual({ action: 'tempfail', reason: expect.stringMatching(/PDF reader was busy with other mail/) });
});

test("a PDF that holds the reader does not make another message's PDF unreadable: the other is tried again later (PdfReaderBusy, 451 at the gateway), and read once the reader is free", () => {
  const slow = pdf(Array.from({ length: 400000 }, (_, i) => `line ${i} of a long report`));
  const small = withPdf(pdf(['Card 4111 1111 1111 1111']));
  const [hostile, waiting, later] = extractConcurrently([withPdf(slow), small, small], [2000, 1800, 10000], [0, 200, 4000]);
  // the slow PDF spent its own message's time being read: unreadable, its message's decision
  expect(hostile).toMatchObject({ unreadable: ['time'] });
  // the small one (queued behind it, its time up when the slow one's is) spent its message's time waiting for the
  // reader: no finding about it either way
  expect(waiting).toMatchObject({ error: 'PdfReaderBusy', message: expect.stringMatching(/PDF reader was busy with other mail/) });
  // its retry, with the reader free, is read
  expect(later!.unreadable).toEqual([]);
  expect(later!.texts!.at(-1)).toBe('Card 4111 1111 1111 1111');
});
