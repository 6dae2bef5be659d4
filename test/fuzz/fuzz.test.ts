/**
 * A short bounded fuzzing run of every target (the long one is `npm run
 * fuzz`, docs/fuzzing.md), and a replay of every input a run ever found
 * (test/fuzz/found/*.b64): each must now be refused or answered, not crash.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { type FuzzTarget, fuzzTargets, makeSeeds, mutate } from '../../src/fuzz/targets';

const FOUND = join(__dirname, 'found');

describe('fuzz targets (short run)', () => {
  let targets: FuzzTarget[];
  beforeAll(async () => {
    targets = fuzzTargets(await makeSeeds());
  });

  it('every target runs a bounded number of seeded and arbitrary inputs without a crash', async () => {
    for (const target of targets) {
      await fc.assert(
        fc.asyncProperty(target.input, (input) => target.run(input)),
        { numRuns: 40, interruptAfterTimeLimit: 1500 },
      );
    }
  }, 120_000);

  it('inputs found by earlier runs are refused or answered, not crashes', async () => {
    const files = readdirSync(FOUND).filter((f) => f.endsWith('.b64'));
    for (const file of files) {
      const target = targets.find((t) => file.startsWith(`${t.name}-`));
      if (!target) throw new Error(`${file}: no target of that name`);
      await target.run(new Uint8Array(Buffer.from(readFileSync(join(FOUND, file), 'utf8').trim(), 'base64')));
    }
  });

  it('mutations do change seeds (the generator is not a no-op)', () => {
    const seed = new Uint8Array(Buffer.from('From: a@b\r\n\r\nx'));
    expect(mutate(seed, [{ op: 'flip', at: 0, byte: 1, length: 1 }])).not.toEqual(seed);
    expect(mutate(seed, [{ op: 'run', at: 3, byte: 0, length: 2 }]).length).toBe(seed.length + 32);
  });
});
