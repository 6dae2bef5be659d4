/**
 * `npm run fuzz`: runs every fuzz target (src/fuzz/targets.ts) for a fixed
 * time each and reports, per target, the inputs tried, crashes (a thrown
 * error that is not one of the project's refusals; the shrunk input is
 * written to test/fuzz/found/ so the jest suite replays it from then on) and
 * hangs (one input taking more than --hang-ms). docs/fuzzing.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { fuzzTargets, makeSeeds } from './targets';

const USAGE = `Usage: npm run fuzz -- [--seconds N] [--target NAME[,NAME]] [--hang-ms MS] [--out DIR] [--list]

Runs each fuzz target for N seconds (default 60) with fast-check, seeded with
real messages, seals, certificates and CRLs the project makes, and prints per
target: inputs tried, crashes (errors that are not the project's refusals)
and hangs (one input over --hang-ms, default 2000). A crash's shrunk input is
written to DIR (default test/fuzz/found) as base64; the jest suite replays
every file there. Exit status 1 if any target crashed or hung.`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      target: { type: 'string' },
      'hang-ms': { type: 'string' },
      out: { type: 'string' },
      list: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const seconds = Number(values.seconds ?? 60);
  const hangMs = Number(values['hang-ms'] ?? 2000);
  if (!(seconds > 0) || !(hangMs > 0)) throw new Error('--seconds and --hang-ms must be positive numbers');
  const out = values.out ?? join(__dirname, '..', '..', 'test', 'fuzz', 'found');
  const targets = fuzzTargets(await makeSeeds());
  if (values.list) {
    for (const t of targets) process.stdout.write(`${t.name.padEnd(14)} ${t.what}\n`);
    return 0;
  }
  const wanted = values.target?.split(',');
  const unknown = wanted?.filter((w) => !targets.some((t) => t.name === w)) ?? [];
  if (unknown.length > 0) throw new Error(`unknown target(s) ${unknown.join(', ')}; --list names them`);
  let bad = 0;
  for (const target of targets.filter((t) => !wanted || wanted.includes(t.name))) {
    let inputs = 0;
    const hangs: { ms: number; input: Uint8Array }[] = [];
    const started = Date.now();
    const result = await fc.check(
      fc.asyncProperty(target.input, async (input) => {
        inputs++;
        const t0 = performance.now();
        await target.run(input);
        const ms = performance.now() - t0;
        if (ms > hangMs) hangs.push({ ms, input });
      }),
      { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: seconds * 1000, markInterruptAsFailure: false },
    );
    const took = (Date.now() - started) / 1000;
    const crashed = result.failed && !result.interrupted ? 1 : 0;
    mkdirSync(out, { recursive: true });
    if (crashed && result.counterexample) {
      const file = join(out, `${target.name}-${Date.now()}.b64`);
      writeFileSync(file, `${Buffer.from(result.counterexample[0] as Uint8Array).toString('base64')}\n`);
      process.stdout.write(`${target.name}: CRASH, input kept in ${file}\n${String(result.errorInstance ?? '')}\n`);
    }
    for (const h of hangs)
      writeFileSync(
        join(out, `${target.name}-hang-${Math.round(h.ms)}ms-${Date.now()}.b64`),
        `${Buffer.from(h.input).toString('base64')}\n`,
      );
    process.stdout.write(
      `${target.name.padEnd(14)} inputs=${inputs} crashes=${crashed} hangs>${hangMs}ms=${hangs.length} ran=${took.toFixed(0)}s\n`,
    );
    if (crashed || hangs.length > 0) bad++;
  }
  return bad > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`fuzz: ${err.message}\n`);
    process.exit(64);
  },
);
