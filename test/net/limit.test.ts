import { Limit } from '../../src/net/limit';

const tick = () => new Promise((r) => setImmediate(r));

describe('Limit (src/net/limit.ts): the one concurrency limit', () => {
  test('tryAcquire gives at most max places; a release frees one; releasing twice frees one only', () => {
    const limit = new Limit(2);
    const a = limit.tryAcquire();
    const b = limit.tryAcquire();
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(limit.tryAcquire()).toBeUndefined();
    a!();
    a!();
    expect(limit.active).toBe(1);
    expect(limit.tryAcquire()).toBeDefined();
    expect(limit.tryAcquire()).toBeUndefined();
  });

  test('acquire waits its turn, first come first served, and a freed place cannot be taken in between', async () => {
    const limit = new Limit(1);
    const first = await limit.acquire();
    const order: string[] = [];
    const second = limit.acquire().then((r) => {
      order.push('second');
      return r;
    });
    const third = limit.acquire().then((r) => {
      order.push('third');
      return r;
    });
    await tick();
    expect(order).toEqual([]);
    first();
    expect(limit.tryAcquire()).toBeUndefined(); // handed to the first in line, not free for a newcomer
    (await second)();
    (await third)();
    expect(order).toEqual(['second', 'third']);
    expect(limit.active).toBe(0);
  });

  test('acquire never lets more than max work at once, and every place comes back', async () => {
    const limit = new Limit(3);
    let now = 0;
    let most = 0;
    const work = async (i: number) => {
      now++;
      most = Math.max(most, now);
      await tick();
      now--;
      if (i % 5 === 0) throw new Error(`job ${i}`);
      return i;
    };
    const held = async (i: number) => {
      const release = await limit.acquire();
      try {
        return await work(i);
      } finally {
        release();
      }
    };
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => held(i)));
    expect(most).toBe(3);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(8);
    expect(limit.active).toBe(0);
  });

  test('acquireWithin: a free place at once; a turn that comes in time; a waiter that gives up leaves the line and is never handed a place', async () => {
    const limit = new Limit(1);
    const first = await limit.acquireWithin(50);
    expect(first).toBeDefined();
    // a turn in time: released after 20 ms, within the 500 ms the second waits
    setTimeout(() => first!(), 20);
    const second = await limit.acquireWithin(500);
    expect(second).toBeDefined();
    expect(limit.active).toBe(1);
    // no turn in time: undefined after its wait, and out of the line
    const started = Date.now();
    expect(await limit.acquireWithin(60)).toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);
    expect(limit.queued).toBe(0);
    // the place then goes back free (not to the waiter that left), and only one holder at a time
    second!();
    expect(limit.active).toBe(0);
    expect(limit.tryAcquire()).toBeDefined();
  });

  test('a limit below 1 is refused', () => {
    expect(() => new Limit(0)).toThrow(RangeError);
    expect(() => new Limit(Number.NaN)).toThrow(RangeError);
  });
});
