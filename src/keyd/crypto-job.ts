/**
 * The key-service half of one blinded operation of keyd, as a job of the
 * crypto threads (crypto-threads.ts): computed by a crypto thread
 * (crypto-worker.ts), or on the main thread when a job is alone and its
 * thread idle. Nothing here logs or writes.
 */
import { answerBlindedDecryption, transformBlindedWithProof } from '../crypto';
import { defaultGroup } from '../crypto/backend';
import { CryptoError } from '../crypto/errors';
import { systemRng } from '../crypto/random';
import type { Job, JobAnswer } from './crypto-wire';

/** One job's answer; a failure other than the crypto core's own is answered without its text. */
export function answerJob(job: Job): JobAnswer {
  try {
    if (job.op === 'reencrypt') {
      const out = transformBlindedWithProof(defaultGroup, job.privateKey, { e: job.e, f: job.f }, job.target, systemRng, job.publicKey);
      return { ok: true, op: 'reencrypt', u: out.u, v: out.v, c: out.proof.c, s1: out.proof.s1, s2: out.proof.s2 };
    }
    const out = answerBlindedDecryption(defaultGroup, job.privateKey, job.publicKey, { e: job.e }, systemRng);
    return { ok: true, op: 'decrypt', z: out.z, c: out.proof.c, s: out.proof.s };
  } catch (err) {
    return err instanceof CryptoError ? { ok: false, code: err.code, message: err.message } : { ok: false, message: 'crypto worker fault' };
  }
}
