/**
 * Worker threads that are ended only once their script has loaded: keyd's
 * crypto threads (src/keyd/crypto-threads.ts) and the inspection's PDF reader
 * (src/inspect/documents.ts).
 *
 * Why: on Node 20, ending a thread (`worker.terminate()`) while it is inside a
 * `require()` of an ES module (@noble/curves and @noble/hashes are ES modules,
 * which the crypto core requires) aborts the whole process, not just the
 * thread: V8 stops the module's instantiation, and Node then asks the
 * unfinished module whether its graph is asynchronous ("FATAL ERROR:
 * v8::Module::IsGraphAsync must be used on an instantiated module", exit 134).
 * A keyd stopped in the first tenth of a second after a crypto thread started
 * could take the process down with it. (The PDF reader's script requires no ES
 * module; pdf.js comes later by import(), which Node stops safely. It starts
 * through the same loader so that no thread here is ended inside a load.)
 *
 * So every thread starts through a loader that requires the script and then
 * posts LOADED; `endWorker` waits for that message (or for the thread's exit)
 * before it terminates the thread. Loading runs once per thread, in well under
 * a second; LOAD_WAIT_MS bounds the wait so that a thread that never loads
 * cannot hold a shutdown forever.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** The message a thread's loader posts once the script has run to its end. */
export const LOADED = 'ssmax-thread-loaded';

/** The longest `endWorker` waits for a thread to finish loading before it ends it anyway. */
export const LOAD_WAIT_MS = 30_000;

/** Runs in the new thread: requires the script, then says so. A script that throws while loading ends the thread ('error', 'exit'). */
const LOADER = `const { parentPort, workerData } = require('node:worker_threads');
require(workerData.script);
parentPort.postMessage(${JSON.stringify(LOADED)});`;

export interface LoadedWorker {
  readonly worker: Worker;
  /** Settles when the script has loaded or the thread has ended, whichever comes first; never rejects. */
  readonly loaded: Promise<void>;
}

/** Whether a message from a thread is its loader's LOADED (which the thread's owner ignores). */
export function isLoadedMessage(m: unknown): boolean {
  return m === LOADED;
}

/** Starts `script` (an absolute path) on a new thread through the loader. `options.workerData` is not available to it. */
export function startWorker(script: string, options: Omit<WorkerOptions, 'eval' | 'workerData'> = {}): LoadedWorker {
  const worker = new Worker(LOADER, { ...options, eval: true, workerData: { script } });
  const loaded = new Promise<void>((resolve) => {
    const done = () => {
      worker.off('message', onMessage);
      worker.off('exit', done);
      worker.off('error', done);
      resolve();
    };
    const onMessage = (m: unknown) => {
      if (isLoadedMessage(m)) done();
    };
    worker.on('message', onMessage);
    worker.once('exit', done);
    worker.once('error', done);
  });
  return { worker, loaded };
}

/** Ends a thread once it has loaded (at most `waitMs` later), so that it is never ended inside a module load. */
export async function endWorker(w: LoadedWorker, waitMs = LOAD_WAIT_MS): Promise<void> {
  // Threads are usually unref'd (an idle one never keeps the process up); while a stop waits for one, it must, or a
  // process with nothing else left to do would end in the middle of the wait with its exit code unset.
  w.worker.ref();
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)));
  await Promise.race([w.loaded, bound]);
  clearTimeout(timer);
  await w.worker.terminate();
}
