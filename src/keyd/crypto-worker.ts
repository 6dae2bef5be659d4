/**
 * A keyd crypto thread (crypto-threads.ts): computes the key-service half of
 * a blinded operation and posts the answer. Nothing here logs or writes.
 */
import { parentPort } from 'node:worker_threads';
import { answerBlindedDecryption, transformBlindedWithProof } from '../crypto';
import { defaultGroup } from '../crypto/backend';
import { CryptoError } from '../crypto/errors';
import { systemRng } from '../crypto/random';
import type { WorkerAnswer, WorkerJob } from './crypto-threads';

const group = defaultGroup;

/** One job's answer; a failure other than the crypto core's own is answered without its text. */
function answer(job: WorkerJob): WorkerAnswer {
  try {
    if (job.op === 'reencrypt') {
      const out = transformBlindedWithProof(group, job.privateKey, { e: job.e, f: job.f }, job.target, systemRng, job.publicKey);
      return { id: job.id, ok: true, u: out.u, v: out.v, c: out.proof.c, s1: out.proof.s1, s2: out.proof.s2 };
    }
    const out = answerBlindedDecryption(group, job.privateKey, job.publicKey, { e: job.e }, systemRng);
    return { id: job.id, ok: true, z: out.z, c: out.proof.c, s: out.proof.s };
  } catch (err) {
    return err instanceof CryptoError
      ? { id: job.id, ok: false, code: err.code, message: err.message }
      : { id: job.id, ok: false, message: 'crypto worker fault' };
  } finally {
    job.privateKey.fill(0); // this thread's copy
  }
}

// The jobs of one turn of keyd's event loop arrive together and are answered together.
parentPort?.on('message', (jobs: WorkerJob[]) => {
  parentPort!.postMessage(jobs.map(answer));
});
