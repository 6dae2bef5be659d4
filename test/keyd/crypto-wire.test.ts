/**
 * The packed messages between keyd's main thread and its crypto threads
 * (src/keyd/crypto-wire.ts): jobs and answers come back as they were packed,
 * in order, for any field lengths the format allows; a truncated or unknown
 * message is refused, never read past its end.
 */
import fc from 'fast-check';
import {
  type Job,
  type JobAnswer,
  MAX_FIELD_BYTES,
  fits,
  packAnswers,
  packJobs,
  unpackAnswers,
  unpackJobs,
} from '../../src/keyd/crypto-wire';

const field = fc.uint8Array({ minLength: 0, maxLength: MAX_FIELD_BYTES });
const job: fc.Arbitrary<Job> = fc.oneof(
  fc.record({ op: fc.constant('reencrypt' as const), privateKey: field, publicKey: field, e: field, f: field, target: field }),
  fc.record({ op: fc.constant('decrypt' as const), privateKey: field, publicKey: field, e: field }),
);
const answer: fc.Arbitrary<JobAnswer> = fc.oneof(
  fc.record({ ok: fc.constant(true as const), op: fc.constant('reencrypt' as const), u: field, v: field, c: field, s1: field, s2: field }),
  fc.record({ ok: fc.constant(true as const), op: fc.constant('decrypt' as const), z: field, c: field, s: field }),
  fc.record({ ok: fc.constant(false as const), code: fc.constant('bad-point' as const), message: fc.string() }),
  fc.record({ ok: fc.constant(false as const), message: fc.string() }),
);

/** Plain arrays for comparison (views and copies compare alike). */
const plain = (x: unknown): unknown =>
  x instanceof Uint8Array
    ? Array.from(x)
    : x && typeof x === 'object'
      ? Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)]))
      : x;

describe('crypto-thread wire format', () => {
  test('any batch of jobs unpacks to the same jobs, in order', () => {
    fc.assert(
      fc.property(fc.array(job, { maxLength: 20 }), (jobs) => {
        expect(unpackJobs(packJobs(jobs)).map(plain)).toEqual(jobs.map(plain));
      }),
    );
  });

  test('any batch of answers, failures among them, unpacks to the same answers, in order', () => {
    fc.assert(
      fc.property(fc.nat(), fc.array(answer, { maxLength: 20 }), (id, answers) => {
        const m = packAnswers(id, answers);
        expect(m.id).toBe(id);
        expect(unpackAnswers(m).map(plain)).toEqual(answers.map(plain));
      }),
    );
  });

  test('a truncated message is refused, at every cut', () => {
    const jobs: Job[] = [
      {
        op: 'reencrypt',
        privateKey: new Uint8Array(32).fill(1),
        publicKey: new Uint8Array(65).fill(2),
        e: new Uint8Array(65),
        f: new Uint8Array(65),
        target: new Uint8Array(33),
      },
      { op: 'decrypt', privateKey: new Uint8Array(32).fill(3), publicKey: new Uint8Array(65), e: new Uint8Array(65) },
    ];
    const whole = new Uint8Array(packJobs(jobs));
    let refused = 0;
    for (let cut = 1; cut < whole.length; cut++) {
      const part = whole.slice(0, cut).buffer;
      try {
        const got = unpackJobs(part);
        // a cut exactly between two jobs is a shorter batch, never a different one
        expect(got.map(plain)).toEqual(jobs.slice(0, got.length).map(plain));
      } catch (err) {
        expect(err).toBeInstanceOf(RangeError);
        refused++;
      }
    }
    expect(refused).toBe(whole.length - 2); // every cut but the one between the jobs
  });

  test('an unknown job kind is refused', () => {
    expect(() => unpackJobs(new Uint8Array([9, 0]).buffer)).toThrow(/unknown crypto-thread job kind 9/);
  });

  test('a field longer than its length byte does not fit, and is never packed', () => {
    const long: Job = {
      op: 'decrypt',
      privateKey: new Uint8Array(32),
      publicKey: new Uint8Array(65),
      e: new Uint8Array(MAX_FIELD_BYTES + 1),
    };
    expect(fits(long)).toBe(false);
    expect(fits({ ...long, e: new Uint8Array(65) })).toBe(true);
    expect(() => packJobs([long])).toThrow(RangeError);
  });
});
