/**
 * Linear time on hostile input (issue 24): every step that reads untrusted
 * bytes is fed the known pathological shapes — long runs of CRLF, LF, CR,
 * whitespace, whitespace-CRLF, `=`, `\`, `<`, repeated tokens — at 1 MB and at
 * 4 MB, and its time must grow about fourfold, not sixteenfold. Ratios, not
 * absolute times: the machine may be slow or shared. Each size is timed
 * two times (three in the full run), interleaved, and read both as fastest
 * against fastest and each 4 MB run against its faster neighbour (see `growth`); a ratio
 * over the bound is timed up to five times more before it fails, so one
 * collector pause or a busy spell of the machine does not fail the suite.
 *
 * Before the fix, `canonicalText`'s `/(?:\r\n)+$/` took 1.2 s for 32 KB and
 * 18 s for 128 KB of blank lines followed by one other character.
 *
 * The steps and shapes are here; the growth tests run in three files, a third
 * of the steps each (PARTS), so that the parallel test workers share the
 * run: linear-time.test.ts (which also checks that the three parts name every
 * step once), linear-time-body.test.ts and linear-time-text.test.ts.
 */
import { readMessage, withoutTrailingLineEnds } from '../../src/chain/body-hash';
import { canonicalizeRelaxed } from '../../src/chain/canonicalize';
import { verifyChain } from '../../src/chain/verify-chain';
import { listCapsules } from '../../src/envelope';
import { DEFAULT_LIMITS } from '../../src/envelope/limits';
import { QuotedPrintableLines } from '../../src/envelope/decrypt';
import { fromPemAll, pemTexts } from '../../src/pki/pem';
import { withoutTrailingNuls } from '../../src/inspect/clamd';
import { isField, splitHeaderBlock, unfoldedValue, withoutField } from '../../src/mail/header-block';
import { parseMetrics } from '../../src/console/backends';
import { htmlText } from '../../src/inspect/extract';
import { underSealedHeader } from '../../src/mail/sealed-header';
import { now } from './fixtures';

export const MB = 1024 * 1024;

export function repeat(unit: string, size: number): string {
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

/** Each shape: a run of `size` bytes ending in a character that breaks the run (where backtracking used to restart). */
const SHAPES: Record<string, (size: number) => string> = {
  'CRLF run': (n) => `${repeat('\r\n', n)}x`,
  'LF run': (n) => `${repeat('\n', n)}x`,
  'CR run': (n) => `${repeat('\r', n)}x`,
  'space run': (n) => `${repeat(' ', n)}x`,
  'space-CRLF run': (n) => `${repeat(' \r\n', n)}x`,
  '= run': (n) => `${repeat('=', n)}x`,
  '=CRLF run': (n) => `${repeat('=\r\n', n)}x`,
  'backslash run': (n) => `${repeat('\\', n)}x`,
  '< run': (n) => `${repeat('<', n)}x`,
  'repeated tokens': (n) => `${repeat('a=b; "c" (d) ', n)}x`,
  'NUL run': (n) => `${repeat('\0', n)}x`,
  'letter run': (n) => `${repeat('a', n)}-`,
  'BEGIN lines without END': (n) => `${repeat('-----BEGIN CERTIFICATE-----\n', n)}x`,
};

export function message(headers: string, body: string): Buffer {
  return Buffer.from(`From: a@a.example\r\nMIME-Version: 1.0\r\n${headers}\r\n${body}`, 'latin1');
}

/** Steps over a message body: chain verification reads and hashes it whatever it carries. */
const BODY_STEPS: Record<string, (body: string) => unknown> = {
  'body hash, text/plain 8bit': (b) => readMessage(message('Content-Type: text/plain; charset=utf-8\r\n', b)),
  'body hash, quoted-printable': (b) =>
    readMessage(message('Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n', b)),
  'body hash, base64': (b) => readMessage(message('Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n', b)),
  'body hash, format=flowed': (b) => readMessage(message('Content-Type: text/plain; format=flowed; delsp=yes\r\n', b)),
  'body hash, multipart': (b) =>
    readMessage(message('Content-Type: multipart/mixed; boundary=zz\r\n', `--zz\r\nContent-Type: text/html\r\n\r\n${b}\r\n--zz--\r\n`)),
  'body hash, embedded message': (b) =>
    readMessage(message('Content-Type: message/rfc822\r\n', `Subject: x\r\nContent-Type: text/plain\r\n\r\n${b}`)),
  'chain verification': (b) => verifyChain(message('Content-Type: text/plain\r\n', b), { lookup: () => undefined, now }),
};

/** Steps over header-like and armoured text (their own size limits are lifted so the run reaches them). */
const TEXT_STEPS: Record<string, (text: string) => unknown> = {
  'relaxed header canonicalisation': (t) => canonicalizeRelaxed(`X-Test${t}:${t}`),
  'envelope header block': (t) =>
    listCapsules(Buffer.from(`Subject: ${t.replace(/\r\n|\r|\n/g, '\r\n ')}\r\n\r\nx`, 'latin1'), {
      ...DEFAULT_LIMITS,
      maxHeaderBlock: 64 * MB,
      maxHeaderLength: 64 * MB,
    }),
  'PEM armour': (t) => fromPemAll(`-----BEGIN CERTIFICATE-----${t}`, 'CERTIFICATE'),
  'trailing line ends': (t) => withoutTrailingLineEnds(t),
  'HTML to text (inspection)': (t) => htmlText(`<p>${t}<`),
  'PEM blocks of publisher and TLS files': (t) => pemTexts(`-----BEGIN CERTIFICATE-----${t}`),
  'clamd answer, trailing NULs': (t) => withoutTrailingNuls(t),
  'console metrics labels (src/console/backends.ts)': (t) => parseMetrics(`m{${t}} 1\nm{a="${t}"} 2\n`, new Set(['m'])),
  'root header block split, CRLF and bare LF (src/mail/header-block.ts)': (t) => {
    for (const bareLf of [false, true]) {
      const { fields } = splitHeaderBlock(Buffer.from(`To${t}: ${t}\r\nSubject: ${t}`, 'latin1'), { bareLf });
      fields.map(unfoldedValue);
      fields.some((f) => isField(f, 'to') || isField(f, `to${t.slice(0, 8)}`));
    }
    withoutField(Buffer.from(`Bcc: ${t}\r\nTo${t}: x\r\n\r\n`, 'latin1'), 'bcc');
  },
  'sealed display fields over a decrypted copy (src/mail/sealed-header.ts)': (t) => {
    const outer = Buffer.from(`From: a@a.example\r\nSubject: ${t}\r\n\r\nx`, 'latin1');
    for (const from of ['a@a.example', 'ceo@b.example'])
      underSealedHeader(outer, Buffer.from(`From: ${from}\r\nSubject: ${t}y\r\nTo${t}: x\r\n\r\n${t}`, 'latin1'));
  },
  'decrypt, quoted-printable ciphertext (64 KB chunks)': (t) => {
    const qp = new QuotedPrintableLines();
    const bytes = Buffer.from(t, 'latin1');
    for (let i = 0; i < bytes.length; i += 64 * 1024) qp.push(bytes.subarray(i, i + 64 * 1024));
    return qp.finish();
  },
};

/** CPU time of this process (user + system) in ms: unlike wall time, not inflated when a shared machine gives the process less of a core. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function cpuTime(run: () => unknown): Promise<number> {
  const t0 = cpuMs();
  try {
    await run();
  } catch {
    // a refusal is an answer too: what is timed is how long it took
  }
  return cpuMs() - t0;
}

const FULL = process.env.SSMAX_LINEAR_FULL === '1';
/** Repetitions of each size (the fastest kept): three in the full run, two in the suite's bounded run. */
const REPS = FULL ? 3 : 2;
/** Linear is about 4; on a loaded machine garbage collection adds noise; quadratic is 16 and more. */
export const LINEAR_BOUND = 10;
/** Further repetitions when the first REPS give a ratio over the bound (see `growth`). */
const RETRIES = 5;

/**
 * CPU time at 1 MB and 4 MB, the sizes interleaved REPS times; linear growth gives about 4,
 * quadratic about 16. The ratio is the smaller of two readings: the fastest 4 MB run over the
 * fastest 1 MB run, and the smallest ratio of a 4 MB run to the faster of the two 1 MB runs on
 * either side of it. The second holds when the machine is slower for a while (another test
 * worker, a neighbour of the virtual machine): the runs side by side see about the same machine,
 * while the fastest 1 MB run may come from a quieter moment than every 4 MB run. Taking the faster
 * neighbour means one slow 1 MB run (a collector pause after a 4 MB run) cannot lower the
 * reading: both neighbours of a 4 MB run would have to be slow.
 */
export async function growth(
  run: (input: string) => unknown,
  shape: (size: number) => string,
): Promise<{ small: number; large: number; ratio: number }> {
  const smallInput = shape(MB);
  const largeInput = shape(4 * MB);
  await cpuTime(() => run(smallInput)); // warm-up: compile the code paths first
  // Below 20 ms at 1 MB, timer and collector noise dominate; a quadratic step still shows at 4 MB (16 x 20 ms).
  const floored = (ms: number) => Math.max(ms, 20);
  const smalls: number[] = [await cpuTime(() => run(smallInput))];
  const larges: number[] = [];
  const ratio = () => {
    const fastest = larges.length === 0 ? Infinity : Math.min(...larges) / floored(Math.min(...smalls));
    const paired = larges.map((l, i) => l / floored(Math.min(smalls[i]!, smalls[i + 1]!)));
    return Math.min(fastest, ...paired);
  };
  // A ratio over the bound is measured again, up to RETRIES more times: noise (a collector pause, a busy
  // neighbour) only ever adds time, so one slow 4 MB run on a shared machine passes on a second look, while a
  // super-linear step is slow every time and still fails.
  for (let i = 0; i < REPS || (i < REPS + RETRIES && ratio() >= LINEAR_BOUND); i++) {
    larges.push(await cpuTime(() => run(largeInput)));
    smalls.push(await cpuTime(() => run(smallInput)));
  }
  return { small: Math.min(...smalls), large: Math.min(...larges), ratio: ratio() };
}

/**
 * The suite's bounded run (about a minute and a half here, in three files): on every step the shapes that made the
 * patterns fixed here super-linear, plus the one each kind of step is most exposed to.
 * `npm run test:linear` (SSMAX_LINEAR_FULL=1) tries every shape on every step (about five minutes).
 */
const DEFAULT_SHAPES = ['CRLF run', 'space-CRLF run', 'repeated tokens'];
const STEP_SHAPES: Record<string, readonly string[]> = {
  'body hash, quoted-printable': ['=CRLF run', '= run'],
  'body hash, base64': ['= run'],
  'relaxed header canonicalisation': ['space run'],
  'trailing line ends': ['LF run', 'CR run'],
  'HTML to text (inspection)': ['< run'],
  'chain verification': ['backslash run'],
  'decrypt, quoted-printable ciphertext (64 KB chunks)': ['space run', '=CRLF run', '= run'],
  'PEM blocks of publisher and TLS files': ['BEGIN lines without END'],
  'PEM armour': ['LF run', 'BEGIN lines without END'],
  'clamd answer, trailing NULs': ['NUL run'],
  'console metrics labels (src/console/backends.ts)': ['letter run'],
};
const shapesFor = (step: string) =>
  Object.entries(SHAPES).filter(([name]) => FULL || DEFAULT_SHAPES.includes(name) || (STEP_SHAPES[step] ?? []).includes(name));

/** Every step, body steps first. */
export const STEPS: Record<string, (input: string) => unknown> = { ...BODY_STEPS, ...TEXT_STEPS };

/**
 * The steps of each test file, about half a minute of the bounded run each: body steps split in
 * two by their times, text steps in the third.
 */
export const PARTS = {
  main: ['body hash, quoted-printable', 'body hash, format=flowed', 'chain verification'],
  body: ['body hash, text/plain 8bit', 'body hash, base64', 'body hash, multipart', 'body hash, embedded message'],
  text: Object.keys(TEXT_STEPS),
} as const;

/** The growth tests of one part's steps (1 MB vs 4 MB, every shape of `shapesFor`, each ratio below LINEAR_BOUND). */
export function growthTests(steps: readonly string[]): void {
  describe('time grows linearly with the size of hostile input (1 MB vs 4 MB)', () => {
    jest.setTimeout(900_000);
    const cases = steps.map((step): [string, (input: string) => unknown] => {
      const run = STEPS[step];
      if (!run) throw new Error(`no step "${step}"`);
      return [step, run];
    });
    it.each(cases)('%s', async (step, run) => {
      const results: string[] = [];
      for (const [shapeName, shape] of shapesFor(step)) {
        const g = await growth(run, shape);
        results.push(`${shapeName}: ${g.small.toFixed(1)} ms -> ${g.large.toFixed(1)} ms (x${g.ratio.toFixed(1)})`);
        if (g.ratio >= LINEAR_BOUND) throw new Error(`super-linear growth of "${step}" on ${shapeName}:\n${results.join('\n')}`);
      }
    });
  });
}
