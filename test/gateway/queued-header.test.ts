/**
 * The header block of a queued copy, for its delay notice (src/gateway/dsn.ts
 * HeaderCollector, streamedHeader: what hook_deferred reads from Haraka's
 * queue): found whatever the chunk sizes, a blank line split across chunks
 * included; at most 256 KB; and in time linear in what was read — each chunk
 * is searched once, with the three characters before it, not the whole text
 * read so far at every chunk (which was quadratic up to the 256 KB bound).
 * headerBlock (a message in memory, for a failure report) is the same reader
 * over the message's first 256 KB.
 */
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { HeaderCollector, MAX_NOTICE_HEADER, headerBlock, streamedHeader } from '../../src/gateway/dsn';

function chunked(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function collect(chunks: readonly (string | Buffer)[]): { header: string; read: number } {
  const c = new HeaderCollector();
  let read = 0;
  for (const chunk of chunks) {
    read++;
    if (c.push(chunk)) break;
  }
  return { header: c.result(), read };
}

/** What the header block is, read whole. */
function reference(text: string): string {
  const end = text.indexOf('\r\n\r\n');
  return end >= 0 ? text.slice(0, end + 2) : text;
}

const head = 'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: queued\r\n';
const message = `${head}\r\nBody\r\n\r\nmore body\r\n`;

test('the header block from chunks of every size from 1 to 9 bytes: the blank line found wherever the chunks split it', () => {
  for (let size = 1; size <= 9; size++) {
    const { header, read } = collect(chunked(message, size));
    expect(header).toBe(head);
    // reading stops at the chunk that completes the blank line
    expect(read).toBe(Math.ceil((head.length + 2) / size));
  }
});

test('Buffers are read as latin1, as the queue file holds bytes', () => {
  const bytes = Buffer.from(`Subject: caf\xe9\r\n\r\nbody`, 'latin1');
  expect(collect([bytes.subarray(0, 12), bytes.subarray(12)]).header).toBe('Subject: caf\xe9\r\n');
});

test('answers as reading the whole text at once, for any text and any chunking', () => {
  const text = fc.array(fc.constantFrom('\r', '\n', 'a', '\r\n', ':'), { maxLength: 60 }).map((a) => a.join(''));
  fc.assert(
    fc.property(text, fc.integer({ min: 1, max: 8 }), (t, size) => {
      expect(collect(chunked(t, size)).header).toBe(reference(t));
    }),
    { numRuns: 2000 },
  );
});

test('no blank line: reading stops just past 256 KB and the block is cut there', () => {
  const text = 'X-Long: aaaa\r\n'.repeat(40000); // 560 KB without a blank line
  const chunks = chunked(text, 1000);
  const { header, read } = collect(chunks);
  expect(header).toBe(text.slice(0, MAX_NOTICE_HEADER));
  expect(read).toBe(Math.floor(MAX_NOTICE_HEADER / 1000) + 1);
  // a blank line only past the bound is not searched for: the block is still cut at 256 KB
  expect(collect([text.slice(0, 300000) + '\r\n\r\nbody']).header).toBe(text.slice(0, MAX_NOTICE_HEADER));
});

test('streamedHeader: the block from a stream, which is destroyed once the block is read; a failing stream gives what was read', async () => {
  const stream = Readable.from(chunked(`${message}${'body line\r\n'.repeat(10000)}`, 7), { objectMode: true });
  expect(await streamedHeader(() => stream)).toBe(head);
  expect(stream.destroyed).toBe(true);

  const failing = new Readable({
    read() {
      this.push('Subject: x\r\n');
      this.destroy(new Error('queue file gone'));
    },
  });
  expect(await streamedHeader(() => failing)).toBe('Subject: x\r\n');
  expect(
    await streamedHeader(() => {
      throw new Error('cannot open');
    }),
  ).toBe('');
});

/** CPU time of this process (user + system) in ms. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

test('time linear in the bytes read: 4 x the bytes in 4-byte chunks takes about 4 x the time, not 16 x', () => {
  const sizes = [MAX_NOTICE_HEADER / 4, MAX_NOTICE_HEADER];
  const inputs = sizes.map((n) => chunked('ab\r\n'.repeat(n / 4), 4));
  const time = (chunks: string[]) => {
    const t0 = cpuMs();
    for (let i = 0; i < 5; i++) collect(chunks);
    return cpuMs() - t0;
  };
  time(inputs[0]!); // warm-up
  let small = Infinity;
  let large = Infinity;
  for (let i = 0; i < 3; i++) {
    small = Math.min(small, time(inputs[0]!));
    large = Math.min(large, time(inputs[1]!));
  }
  // below 10 ms timer and collector noise dominate; the quadratic search took seconds at 256 KB
  const ratio = large / Math.max(small, 10);
  if (ratio >= 10) throw new Error(`super-linear: ${small.toFixed(1)} ms -> ${large.toFixed(1)} ms (x${ratio.toFixed(1)})`);
});

test('headerBlock (a message in memory) is the same reader: it answers as the chunked reading, and reads at most 256 KB of a long message', () => {
  const text = fc.array(fc.constantFrom('\r', '\n', 'a', '\r\n', ':'), { maxLength: 60 }).map((a) => a.join(''));
  fc.assert(
    fc.property(text, fc.integer({ min: 1, max: 8 }), (t, size) => {
      expect(headerBlock(Buffer.from(t, 'latin1'))).toBe(collect(chunked(t, size)).header);
    }),
    { numRuns: 1000 },
  );
  expect(headerBlock(Buffer.from(message, 'latin1'))).toBe(head);
  // a blank line just before, across and after the 256 KB bound: the block as the chunked reading has it, never past the bound
  for (const at of [MAX_NOTICE_HEADER - 5, MAX_NOTICE_HEADER - 3, MAX_NOTICE_HEADER - 2, MAX_NOTICE_HEADER, MAX_NOTICE_HEADER + 10]) {
    const t = `${'a'.repeat(at)}\r\n\r\nbody`;
    const got = headerBlock(Buffer.from(t, 'latin1'));
    expect(got).toBe(collect(chunked(t, 4096)).header);
    expect(got).toBe(t.slice(0, Math.min(at + 2, MAX_NOTICE_HEADER)));
  }
  // messages of 1 MB and 64 MB without a blank line: the first 256 KB of each, in about the same time (the rest is never read)
  const [small, large] = [1, 64].map((mb) => Buffer.alloc(mb * 1024 * 1024, 'a'));
  const time = (m: Buffer) => {
    const t0 = cpuMs();
    for (let i = 0; i < 100; i++) expect(headerBlock(m)).toHaveLength(MAX_NOTICE_HEADER);
    return cpuMs() - t0;
  };
  time(small!); // warm-up
  const [a, b] = [Math.min(time(small!), time(small!)), Math.min(time(large!), time(large!))];
  // below 20 ms, timer and collector noise dominate; searching the whole message (before) took 24 x as long for 64 MB as for 1 MB
  if (b / Math.max(a, 20) >= 4) throw new Error(`headerBlock reads the whole message: 1 MB ${a.toFixed(1)} ms, 64 MB ${b.toFixed(1)} ms`);
});
