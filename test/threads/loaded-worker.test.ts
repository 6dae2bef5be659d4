/**
 * Threads are ended only once their script has loaded (src/threads/loaded-worker.ts): on Node 20, ending a thread
 * inside a require() of an ES module aborts the whole process (exit 134). A CI run was lost that way when a test closed
 * keyd's crypto threads in their first tenth of a second. The thread scripts here are real files run by real threads.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ThreadedCrypto } from '../../src/keyd/crypto-threads';
import { endWorker, startWorker } from '../../src/threads/loaded-worker';

const DIST = join(__dirname, '..', '..', 'dist');
const dir = mkdtempSync(join(tmpdir(), 'ssmax-threads-'));

/** A thread script whose loading takes `ms` of busy time and then writes `marker`: the marker exists only if loading ran to its end. */
function slowScript(name: string, ms: number): { script: string; marker: string } {
  const script = join(dir, `${name}.js`);
  const marker = join(dir, `${name}.loaded`);
  writeFileSync(
    script,
    `const end = Date.now() + ${ms}; while (Date.now() < end) {}\n` +
      `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'loaded');\n` +
      "require('node:worker_threads').parentPort.on('message', () => {});\n",
  );
  return { script, marker };
}

describe('worker threads end only once loaded', () => {
  test('endWorker called at once waits for the script to finish loading, then ends the thread', async () => {
    const { script, marker } = slowScript('direct', 400);
    const t = startWorker(script);
    const exited = new Promise<number>((resolve) => t.worker.once('exit', resolve));
    await endWorker(t);
    expect(existsSync(marker)).toBe(true);
    await exited; // the thread is gone (its listener would otherwise keep it alive)
  });

  test("keyd's crypto threads closed right after they start let every thread load first", async () => {
    const { script, marker } = slowScript('keyd', 400);
    const threads = new ThreadedCrypto(1, script, false);
    await threads.close();
    expect(existsSync(marker)).toBe(true);
  });

  test('a process with nothing else to do stays up while endWorker waits for an unreferenced thread to load', () => {
    // keyd's threads are unref'd: a failed start (its port taken) awaited their end and the process exited 0, the
    // command's exit code never set (cli/exit-codes caught it)
    const { script, marker } = slowScript('unref', 400);
    const code = `
      const { startWorker, endWorker } = require(${JSON.stringify(join(DIST, 'threads', 'loaded-worker.js'))});
      const t = startWorker(${JSON.stringify(script)});
      t.worker.unref();
      endWorker(t).then(() => { console.log('ended'); process.exitCode = 3; });`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60_000 });
    expect({ status: r.status, stdout: r.stdout.trim() }).toEqual({ status: 3, stdout: 'ended' });
    expect(existsSync(marker)).toBe(true);
  });

  test("closing keyd's crypto threads fails the jobs they have not answered, at once", async () => {
    const { script } = slowScript('never-answers', 0); // loads, then takes jobs and never answers
    const threads = new ThreadedCrypto(1, script, false);
    const job = threads.decrypt(new Uint8Array(32), new Uint8Array(65), { e: new Uint8Array(33) }).then(
      () => 'answered',
      (err: Error) => err.message,
    );
    await new Promise((r) => setTimeout(r, 50));
    await threads.close();
    expect(await job).toBe('keyd crypto threads are closed');
  });

  test('a script that throws while loading does not hold endWorker', async () => {
    const script = join(dir, 'throws.js');
    writeFileSync(script, "throw new Error('broken thread script');\n");
    const t = startWorker(script);
    t.worker.on('error', () => undefined); // the owner's listener: the error is expected
    const started = Date.now();
    await endWorker(t);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('a script that never finishes loading is ended after the bound', async () => {
    const script = join(dir, 'forever.js');
    writeFileSync(script, 'for (;;) {}\n');
    const t = startWorker(script);
    const exited = new Promise<number>((resolve) => t.worker.once('exit', resolve));
    await endWorker(t, 300);
    expect(await exited).toBe(1); // terminated
  });

  test("the real crypto threads, closed at every moment of their loading, never abort the process (Node's require(esm) fault)", () => {
    // In a child process: an abort there fails this test instead of ending Jest. On the old code about one thread in
    // 200 ended during its loading aborted the process (six sweeps of single threads), so these 180 catch the fault
    // about half the time; the two marker tests above catch a close that does not wait, always.
    const code = `
      const { ThreadedCrypto } = require(${JSON.stringify(join(DIST, 'keyd', 'crypto-threads.js'))});
      const wait = (ms) => new Promise((r) => { const s = performance.now(); const spin = () => (performance.now() - s >= ms ? r() : setImmediate(spin)); spin(); });
      const alive = setInterval(() => undefined, 1000); // the threads are unref'd: this keeps the process up until the end
      (async () => {
        const t0 = performance.now();
        const probe = new ThreadedCrypto(1, undefined, false);
        await probe.decrypt(new Uint8Array(32), new Uint8Array(33), { e: new Uint8Array(1) }).catch(() => undefined);
        const load = performance.now() - t0;
        await probe.close();
        const rounds = 60;
        for (let i = 0; i < rounds; i++) {
          const threads = new ThreadedCrypto(3, undefined, false);
          await wait((load * 1.3 * i) / rounds);
          await threads.close();
        }
        console.log('closed ' + rounds + ' times across a load of ' + load.toFixed(0) + ' ms');
        clearInterval(alive);
      })();`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).not.toContain('FATAL ERROR');
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
    expect(r.stdout).toMatch(/^closed 60 times across a load of \d+ ms$/m);
    console.log(r.stdout.trim());
  });
});
