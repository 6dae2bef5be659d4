/**
 * A small benchmark harness: each case runs repeatedly for a fixed time after
 * a warm-up, in several rounds; the table reports the median rate. Figures are
 * measured, never asserted (a project rule: performance lives in benchmarks, not in tests).
 */
import { readFileSync } from 'node:fs';
export interface BenchRow {
  readonly suite: string;
  readonly name: string;
  /** Median rate over the rounds. */
  readonly rate: number;
  /** Unit of `rate`, e.g. "ops/s", "MB/s". */
  readonly unit: string;
  /** Free text: a baseline, a ratio, a target. */
  readonly note?: string;
}

export interface MeasureOptions {
  /** Milliseconds per round (default 400). */
  readonly roundMs?: number;
  /** Rounds; the median is reported (default 5). */
  readonly rounds?: number;
  /** Work units per call, e.g. bytes for MB/s (default 1). */
  readonly unitsPerCall?: number;
}

/** Runs `fn` repeatedly and returns the median calls (or units) per second. */
export async function measure(fn: () => unknown | Promise<unknown>, opts: MeasureOptions = {}): Promise<number> {
  const roundMs = opts.roundMs ?? 400;
  const rounds = opts.rounds ?? 5;
  const units = opts.unitsPerCall ?? 1;
  const warmUntil = performance.now() + Math.min(200, roundMs);
  while (performance.now() < warmUntil) await fn();
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let calls = 0;
    const start = performance.now();
    let now = start;
    while (now - start < roundMs) {
      await fn();
      calls++;
      now = performance.now();
    }
    rates.push((calls * units) / ((now - start) / 1000));
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)] ?? 0;
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc (Linux); undefined elsewhere. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /s, '')
      .split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15) in clock ticks of 1/100 s
  } catch {
    return undefined;
  }
}

function formatRate(rate: number): string {
  if (rate >= 100) return Math.round(rate).toLocaleString('en-US');
  return rate.toFixed(rate >= 10 ? 1 : 2);
}

/** Renders rows as a Markdown table (pasteable into a closing note). */
export function formatTable(rows: readonly BenchRow[]): string {
  const head = ['suite', 'case', 'rate', 'unit', 'note'];
  const body = rows.map((r) => [r.suite, r.name, formatRate(r.rate), r.unit, r.note ?? '']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ')} |`;
  return [
    line(head),
    `|${widths.map((w, i) => (i === 2 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`,
    ...body.map(line),
  ].join('\n');
}
