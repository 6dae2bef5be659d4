/**
 * The quoted-printable decoder of encrypted entities (issue 24): it used to
 * re-join an unfinished line on every chunk and find the final line break
 * with `/=?[ \t]*\r?\n$/`, both quadratic on a long line (a run of spaces
 * before the line break, or a line without one arriving in small chunks).
 * Now: plain loops, a line cap of 998 octets, the same output as before.
 */
import fc from 'fast-check';
import libqp from 'libqp';
import { CryptoError } from '../../src/crypto/errors';
import { MAX_QP_LINE, QuotedPrintableLines } from '../../src/envelope/decrypt';

/** The decoder as it was (fast on short input): the reference the loops must agree with. */
class PatternQuotedPrintableLines {
  private rest = '';
  private held = '';
  push(data: Uint8Array): Buffer {
    const text = this.rest + Buffer.from(data).toString('latin1');
    const cut = text.lastIndexOf('\n') + 1;
    if (cut === 0) {
      this.rest = text;
      return Buffer.alloc(0);
    }
    this.rest = text.slice(cut);
    let block = this.held + text.slice(0, cut);
    const lb = /=?[ \t]*\r?\n$/.exec(block)![0];
    block = block.slice(0, block.length - lb.length);
    this.held = lb.startsWith('=') ? '' : lb;
    return libqp.decode(block);
  }
  finish(): Buffer {
    const out = this.rest === '' ? Buffer.alloc(0) : libqp.decode(this.held + this.rest);
    this.rest = '';
    this.held = '';
    return out;
  }
}

function run(dec: { push(d: Uint8Array): Buffer; finish(): Buffer }, chunks: Buffer[]): Buffer {
  return Buffer.concat([...chunks.map((c) => dec.push(c)), dec.finish()]);
}

function chunked(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  return out;
}

describe('quoted-printable lines of an encrypted entity', () => {
  const qpText = fc
    .array(fc.constantFrom('a', 'Z', '=', '=3D', '=0A', ' ', '\t', '\r', '\n', '\r\n', '=\r\n', ' \r\n', '==', 'x='), { maxLength: 60 })
    .map((a) => Buffer.from(a.join(''), 'latin1'));

  it('decodes exactly as the pattern-based decoder did, however the input is chunked', () => {
    fc.assert(
      fc.property(qpText, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const chunks = chunked(bytes, cuts);
        expect(run(new QuotedPrintableLines(), chunks).toString('latin1')).toBe(
          run(new PatternQuotedPrintableLines(), chunks).toString('latin1'),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('accepts a line of 998 octets and refuses one of 999 with a limit error, chunked or not', () => {
    const ok = Buffer.from(`${'a'.repeat(MAX_QP_LINE)}\r\nb`, 'latin1');
    expect(run(new QuotedPrintableLines(), [ok]).toString('latin1')).toBe(`${'a'.repeat(MAX_QP_LINE)}\r\nb`);
    const long = Buffer.from(`x\r\n${'a'.repeat(MAX_QP_LINE + 1)}\r\n`, 'latin1');
    for (const chunks of [[long], chunked(long, [1, 500, 900, 1001])]) {
      let err: unknown;
      try {
        run(new QuotedPrintableLines(), chunks);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CryptoError);
      expect((err as CryptoError).code).toBe('limit');
      expect((err as Error).message).toMatch(/quoted-printable line .* limit of 998/);
    }
    // A final line without a line break is held to the same limit.
    expect(() => run(new QuotedPrintableLines(), [Buffer.from('a'.repeat(MAX_QP_LINE + 2))])).toThrow(/limit of 998/);
  });

  it('a line without a line break arriving in 1-byte chunks is refused at the limit, not carried on', () => {
    const dec = new QuotedPrintableLines();
    let pushed = 0;
    expect(() => {
      for (; pushed < 1_000_000; pushed++) dec.push(Buffer.from(' '));
    }).toThrow(/limit of 998/);
    expect(pushed).toBe(MAX_QP_LINE + 1); // 999 octets held (998 and a CR), the 1000th refused
  });
});
