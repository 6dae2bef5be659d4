/**
 * A keyd crypto thread (crypto-threads.ts): computes the key-service half of
 * the blinded operations of one batch and posts the answers. Nothing here
 * logs or writes.
 */
import { parentPort } from 'node:worker_threads';
import { answerJob } from './crypto-job';
import { type JobAnswer, type JobMessage, packAnswers, unpackJobs } from './crypto-wire';

// The jobs of one turn of keyd's event loop arrive together, packed in one buffer, and are answered together.
parentPort?.on('message', (m: JobMessage) => {
  let answers: JobAnswer[];
  try {
    answers = unpackJobs(m.buffer).map(answerJob);
  } catch {
    answers = [];
  } finally {
    new Uint8Array(m.buffer).fill(0); // this thread's only copy of the private key
  }
  const out = packAnswers(m.id, answers);
  parentPort!.postMessage(out, [out.buffer]);
});
