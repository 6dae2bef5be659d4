/**
 * The per-message CPU budget counts the message's own compute, not wall time
 * (issue 24): on a process busy with many other messages and other work, an
 * ordinary message must not be refused, while a message that needs more
 * compute than the budget still is, naming the limit, with the event loop
 * turning meanwhile.
 *
 * Before the fix the budget summed wall time between checkpoints, awaits
 * included, so every other message read in between was charged to this one.
 */
import { WorkBudget } from '../../src/chain/body-hash';
import { verifyChain } from '../../src/chain/verify-chain';
import { computeMs, ComputeTally, trackCompute } from '../../src/chain/compute-time';
import { now } from './fixtures';

jest.setTimeout(300_000);

function message(parts: number, partBytes: number): Buffer {
  const line = 'Lorem ipsum dolor sit amet, =C3=A9 consectetur adipiscing elit, sed do=\r\n';
  const part = `--zz\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${line.repeat(Math.ceil(partBytes / line.length))}\r\n`;
  return Buffer.from(
    `From: a@a.example\r\nTo: b@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n${part.repeat(parts)}--zz--\r\n`,
    'latin1',
  );
}

/** Keeps the event loop busy with other work: 8 ms of spinning in every timer turn. */
function busyProcess(): () => void {
  const timer = setInterval(() => {
    const until = performance.now() + 8;
    while (performance.now() < until) {
      /* other connections' work */
    }
  }, 1);
  return () => clearInterval(timer);
}

/** `process.cpuUsage` itself, taken before any test spies on it: `compute` below does not add to a spy's count. */
const cpuUsage = process.cpuUsage.bind(process);

function cpuMs(): number {
  const u = cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * What reading one message alone needs: for each of three runs after a warm-up, the smaller of its wall time and the
 * process's CPU time over it (each is at least the message's own compute: the CPU time also counts this process's other
 * threads, such as GC or work left over by an earlier test, and the wall time counts what the operating system gave to
 * other processes), the fastest run of the three.
 */
async function computeAlone(raw: Buffer): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < 4; i++) {
    const t0 = cpuMs();
    const w0 = performance.now();
    expect((await verifyChain(raw, { lookup: () => undefined, now, cpuBudgetMs: 60_000 })).result).toBe('none');
    if (i > 0) best = Math.min(best, cpuMs() - t0, performance.now() - w0);
  }
  return best;
}

/** Spins until the process has used `ms` more CPU time (on a shared machine, wall time is not compute). */
function compute(ms: number): void {
  const until = cpuMs() + ms;
  while (cpuMs() < until) {
    /* compute */
  }
}

describe('per-message CPU budget under load', () => {
  const ordinary = message(8, 64 * 1024); // about 512 KB, eight quoted-printable text parts

  it('many concurrent ordinary messages on a busy process are all read within a budget of five times what one needs alone', async () => {
    const alone = await computeAlone(ordinary);
    // Five times, not three: when other processes take the machine's cores, a callback's count is the smaller of its
    // wall time and the process's CPU time over it, and both grow (the thread is preempted while this process's GC
    // threads run); three times failed once on a 2-core machine with another test suite running beside this one.
    // Two and a half times passed five runs beside three processes spinning on this 2-core machine; 1.5 times did not.
    const budget = Math.max(5 * alone, 60);
    const stop = busyProcess();
    const started = performance.now();
    const spans: number[] = [];
    let results;
    try {
      results = await Promise.all(
        Array.from({ length: 24 }, async () => {
          const result = await verifyChain(ordinary, { lookup: () => undefined, now, cpuBudgetMs: budget });
          spans.push(performance.now() - started);
          return result;
        }),
      );
    } finally {
      stop();
    }
    const wall = performance.now() - started;
    // The load is real: most messages took longer than their budget from start to finish, so counting wall time (as
    // before the fix) would have refused them.
    spans.sort((x, y) => x - y);
    expect(spans[spans.length >> 1]).toBeGreaterThan(budget);
    const refused = results.filter((r) => r.result !== 'none');
    expect(refused).toEqual([]);
    console.log(
      `CPU budget under load: one message alone needed ${alone.toFixed(1)} ms; budget ${budget.toFixed(1)} ms; 24 concurrent on a busy loop took ${wall.toFixed(0)} ms of wall time (median message ${spans[spans.length >> 1]!.toFixed(0)} ms from start to finish); none refused`,
    );
  });

  it('a message needing more compute than its budget is still refused under the same load, naming the limit, and the loop keeps turning', async () => {
    const heavy = message(64, 256 * 1024); // 16 MB
    const stop = busyProcess();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    try {
      const [result, ...others] = await Promise.all([
        verifyChain(heavy, { lookup: () => undefined, now, cpuBudgetMs: 150 }),
        ...Array.from({ length: 8 }, () => verifyChain(ordinary, { lookup: () => undefined, now, cpuBudgetMs: 5000 })),
      ]);
      expect(result).toMatchObject({ result: 'fail', reason: 'limit-exceeded' });
      expect(result!.result === 'fail' && result!.detail).toMatch(/CPU budget of 150 ms/);
      expect(others.map((r) => r.result)).toEqual(Array(8).fill('none'));
    } finally {
      clearInterval(ticker);
      stop();
    }
    expect(ticks).toBeGreaterThan(0);
  });

  it('counts the compute of the work, not the time it waits', async () => {
    const tally = new ComputeTally();
    const started = performance.now();
    await trackCompute(tally, async () => {
      for (let i = 0; i < 5; i++) {
        compute(10);
        await new Promise((resolve) => setTimeout(resolve, 40)); // 40 ms of waiting
      }
    });
    const wall = performance.now() - started;
    expect(wall).toBeGreaterThan(200);
    expect(computeMs(tally)).toBeGreaterThan(40);
    // about 50 ms of compute; counting the 200 ms of waits too would be about the wall time (whatever stretched it)
    expect(computeMs(tally)).toBeLessThan(wall - 150);
  });

  it('work cut into thousands of callbacks shorter than the system-call threshold is counted in full, not as nothing', async () => {
    const tally = new ComputeTally();
    const started = performance.now();
    await trackCompute(tally, async () => {
      for (let i = 0; i < 4000; i++) {
        compute(0.02); // 20 µs of CPU per callback
        await new Promise<void>((resolve) => setImmediate(resolve)); // the next slice in a later callback
      }
    });
    const wall = performance.now() - started;
    expect(computeMs(tally)).toBeGreaterThan(0.8 * 4000 * 0.02); // at least (most of) the 80 ms of CPU
    expect(computeMs(tally)).toBeLessThanOrEqual(wall); // and never more than the time the work took
  });

  it('reading an ordinary small message asks the system for no CPU time; work past the wall-time-only start does', async () => {
    const small = message(1, 4 * 1024);
    await verifyChain(small, { lookup: () => undefined, now }); // warm-up
    const spy = jest.spyOn(process, 'cpuUsage');
    try {
      for (let i = 0; i < 20; i++) expect((await verifyChain(small, { lookup: () => undefined, now })).result).toBe('none');
      expect(spy).not.toHaveBeenCalled();
      // Work of 60 ms of CPU in 2 ms callbacks: the first 10 ms count wall time, the rest ask for CPU time. Spun on CPU
      // time, not wall time: a callback counts the smaller of the two, so wall-time spinning on a loaded machine would
      // be counted short.
      const tally = new ComputeTally();
      await trackCompute(tally, async () => {
        for (let i = 0; i < 30; i++) {
          compute(2);
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      });
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(20);
      expect(computeMs(tally)).toBeGreaterThan(0.5 * 60);
    } finally {
      spy.mockRestore();
    }
  });

  it('refuses a checkpoint outside the work it counts (the compute would go uncounted)', async () => {
    await expect(new WorkBudget(10).checkpoint()).rejects.toThrow(/outside WorkBudget.run/);
  });
});
