/**
 * A keyd crypto thread (crypto-threads.ts): computes the key-service half of
 * the blinded operations of one batch and posts the answers. Nothing here
 * logs or writes.
 */
import { parentPort } from 'node:worker_threads';
import { answerBlindedDecryption, transformBlindedWithProof } from '../crypto';
import { defaultGroup } from '../crypto/backend';
import { CryptoError } from '../crypto/errors';
import { systemRng } from '../crypto/random';
import { type Job, type JobAnswer, type JobMessage, packAnswers, unpackJobs } from './crypto-wire';

const group = defaultGroup;

/** One job's answer; a failure other than the crypto core's own is answered without its text. */
function answer(job: Job): JobAnswer {
  try {
    if (job.op === 'reencrypt') {
      const out = transformBlindedWithProof(group, job.privateKey, { e: job.e, f: job.f }, job.target, systemRng, job.publicKey);
      return { ok: true, op: 'reencrypt', u: out.u, v: out.v, c: out.proof.c, s1: out.proof.s1, s2: out.proof.s2 };
    }
    const out = answerBlindedDecryption(group, job.privateKey, job.publicKey, { e: job.e }, systemRng);
    return { ok: true, op: 'decrypt', z: out.z, c: out.proof.c, s: out.proof.s };
  } catch (err) {
    return err instanceof CryptoError ? { ok: false, code: err.code, message: err.message } : { ok: false, message: 'crypto worker fault' };
  }
}

// The jobs of one turn of keyd's event loop arrive together, packed in one buffer, and are answered together.
parentPort?.on('message', (m: JobMessage) => {
  let answers: JobAnswer[];
  try {
    answers = unpackJobs(m.buffer).map(answer);
  } catch {
    answers = [];
  } finally {
    new Uint8Array(m.buffer).fill(0); // this thread's only copy of the private key
  }
  const out = packAnswers(m.id, answers);
  parentPort!.postMessage(out, [out.buffer]);
});
