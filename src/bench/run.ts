/**
 * `npm run bench [suite…]`: runs the benchmark suites and prints one table.
 * Each suite is a module exporting `run(): Promise<BenchRow[]>`, listed here.
 */
import { type BenchRow, formatTable } from './harness';
import * as chain from './chain';
import * as crypto from './crypto';
import * as gateway from './gateway';
import * as inspect from './inspect';
import * as keyd from './keyd';
import * as lists from './lists';
import * as pki from './pki';
import * as ratios from './ratios';
import * as streamMemory from './stream-memory';

type Suite = () => Promise<BenchRow[]>;

const suites: Record<string, Suite> = {
  crypto: crypto.run,
  chain: chain.run,
  gateway: gateway.run,
  inspect: inspect.run,
  keyd: keyd.run,
  lists: lists.run,
  pki: pki.run,
  ratios: ratios.run,
  stream: streamMemory.run,
};

export async function runBench(names: string[]): Promise<string> {
  const chosen = names.length > 0 ? names : Object.keys(suites);
  const rows: BenchRow[] = [];
  for (const name of chosen) {
    const suite = suites[name];
    if (!suite) throw new Error(`Unknown bench suite "${name}" (have: ${Object.keys(suites).join(', ')})`);
    process.stderr.write(`bench: running ${name}…\n`);
    rows.push(...(await suite()));
  }
  return formatTable(rows);
}

if (require.main === module && process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
  process.stdout.write(
    `usage: npm run bench [suite…]   (node dist/bench/run.js [suite…])\nRuns the named benchmark suites (all when none is named) and prints one Markdown table.\nSuites: ${Object.keys(suites).join(', ')}.\n"ratios" repeats keyd, its peers and the gateway hop SSMAX_BENCH_RUNS times (default 3) and prints min/median/max of each ratio.\nShorter runs: SSMAX_BENCH_SECONDS, SSMAX_BENCH_WARMUP_SECONDS, SSMAX_BENCH_GATEWAY_WARMUP, SSMAX_BENCH_GATEWAY_MESSAGES (docs/benchmarks.md).\n`,
  );
} else if (require.main === module) {
  runBench(process.argv.slice(2)).then(
    (table) => process.stdout.write(`${table}\n`),
    (err: unknown) => {
      process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
