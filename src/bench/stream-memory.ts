/**
 * Streaming memory (issue 2): a message with a 200 MB attachment is encrypted
 * (profile "part") and decrypted in one streaming pipeline; we sample the RSS
 * and report the peak growth over the baseline, and check that the output
 * equals the input (SHA-256 of both).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { defaultGroup, generateEncryptionKeyPair, keyIdOf, systemRng } from '../crypto';
import { decryptMessage, encryptParts } from '../envelope';
import type { BenchRow } from './harness';

const ATTACHMENT_BYTES = Number(process.env.SSMAX_BENCH_ATTACHMENT_MB ?? 200) * 1024 * 1024;

/** The message, generated piece by piece: headers, a text part, then the attachment in base64 lines. */
function* messagePieces(): Generator<Buffer> {
  yield Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="big"\r\n\r\n' +
      '--big\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--big\r\nContent-Type: application/octet-stream\r\n' +
      'Content-Disposition: attachment; filename="big.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
  );
  const block = Buffer.alloc(57 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
  for (let sent = 0; sent < ATTACHMENT_BYTES; sent += block.length) {
    const text = block
      .subarray(0, Math.min(block.length, ATTACHMENT_BYTES - sent))
      .toString('base64')
      .replace(/.{76}/g, '$&\r\n');
    yield Buffer.from(text.endsWith('\n') ? text : `${text}\r\n`);
  }
  yield Buffer.from('--big--\r\n');
}

async function measureOnce(): Promise<{ growthMb: number; seconds: number; mimeBytes: number }> {
  const group = defaultGroup;
  const org = generateEncryptionKeyPair(group, systemRng);
  const keyId = keyIdOf(group, org.publicKey);

  const inHash = createHash('sha256');
  const source = Readable.from(
    (function* () {
      for (const p of messagePieces()) {
        inHash.update(p);
        yield p;
      }
    })(),
    { objectMode: false },
  );

  if (global.gc) global.gc();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const start = performance.now();
  const encrypted = encryptParts(source, [{ keyId, publicKey: org.publicKey }], { group, rng: systemRng });
  const outHash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of decryptMessage(encrypted, { keyId, privateKey: org.privateKey }, { group })) {
    outHash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  const seconds = (performance.now() - start) / 1000;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  const same = inHash.digest('hex') === outHash.digest('hex');
  if (!same) throw new Error('stream-memory: decrypted output differs from the input');
  return { growthMb: (peak - base) / 1024 / 1024, seconds, mimeBytes: bytes };
}

/**
 * The run in a fresh child process (so other suites' garbage does not blur the
 * baseline); `flags` cap V8's heap for the bounded-memory check.
 */
function measureInChild(flags: string[]): Promise<{ growthMb: number; seconds: number; mimeBytes: number }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', ...flags, __filename, '--child'], { maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) reject(new Error(`stream-memory child failed: ${err.message}`));
      else resolve(JSON.parse(stdout) as { growthMb: number; seconds: number; mimeBytes: number });
    });
  });
}

export async function run(): Promise<BenchRow[]> {
  const mb = ATTACHMENT_BYTES / 1024 / 1024;
  const free = await measureInChild([]);
  const capped = await measureInChild(['--max-old-space-size=24', '--max-semi-space-size=2']);
  return [
    {
      suite: 'stream',
      name: `${mb} MB attachment: encrypt + decrypt, peak RSS growth (default heap)`,
      rate: free.growthMb,
      unit: 'MB',
      note: `target < 64 MB; output identical (${(free.mimeBytes / 1e6).toFixed(0)} MB MIME)`,
    },
    {
      suite: 'stream',
      name: `${mb} MB attachment: same, V8 old space capped at 24 MB`,
      rate: capped.growthMb,
      unit: 'MB',
      note: 'completes: memory is bounded, not retained',
    },
    {
      suite: 'stream',
      name: `${mb} MB attachment: encrypt + decrypt throughput`,
      rate: mb / free.seconds,
      unit: 'MB/s',
      note: `${free.seconds.toFixed(1)} s (MIME parsing bound)`,
    },
  ];
}

if (require.main === module && process.argv.includes('--child')) {
  measureOnce().then(
    (r) => process.stdout.write(JSON.stringify(r)),
    (err: unknown) => {
      process.stderr.write(String(err));
      process.exitCode = 1;
    },
  );
}
