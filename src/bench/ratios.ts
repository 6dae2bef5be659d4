/**
 * `npm run bench ratios`: the ratios of issue 22, each measured side by side
 * in one run — keyd against its own in-process half and against Umbral's
 * `reencrypt`, the SSMAX hop against Haraka relaying (with TCP_NODELAY, and
 * signing with haraka-plugin-dkim), nodes=2 against nodes=1 — repeated
 * `SSMAX_BENCH_RUNS` times (default 3), reported as min / median / max. Every
 * figure is measured in this process's run; none is typed in.
 */
import { availableParallelism } from 'node:os';
import { defaultGroup } from '../crypto';
import { type GatewayFigures, measureGateway } from './gateway';
import { hopCryptoUs } from './hop-crypto';
import type { BenchRow } from './harness';
import { type KeydFigures, measureKeyd } from './keyd';
import { umbralReencrypt } from './peers';

const RUNS = Number(process.env.SSMAX_BENCH_RUNS ?? 3);

interface Ratio {
  readonly name: string;
  readonly target: string;
  /** The ratio of one run, with what it was computed from (for the note), or undefined if not measurable. */
  readonly of: (k: KeydFigures, umbral: number | undefined, gw: GatewayFigures, x: Extra) => { value: number; from: string } | undefined;
}

/** Measured in the same run besides keyd and the gateway: the gateway's own curve and signature work per hop, and this machine's cores. */
interface Extra {
  readonly hopCryptoUs: number;
  readonly cores: number;
}

/** The most a hop ÷ relay ratio could be: `baseUs` (a relay's Haraka CPU) against the plain relay's CPU plus the hop's curve and signature work. */
const hopCeiling = (baseUs: number | undefined, relayUs: number | undefined, x: Extra, what: string) =>
  baseUs === undefined || relayUs === undefined
    ? undefined
    : {
        value: baseUs / (relayUs + x.hopCryptoUs),
        from: `${what} ${f0(baseUs)} µs vs relay ${f0(relayUs)} + hop crypto ${f0(x.hopCryptoUs)} µs`,
      };

const f0 = (n: number) => Math.round(n).toLocaleString('en-US');
const f1 = (n: number) => n.toFixed(1);

type KeydRun = KeydFigures['batched16'];

/** keyd's server CPU per operation in `run` against the in-process key-service half's time per operation. */
const cpuPerOperation = (run: KeydRun, inProcess: number) =>
  run.keydCpuUs === undefined
    ? undefined
    : { value: run.keydCpuUs / (1e6 / inProcess), from: `${f0(run.keydCpuUs)} vs ${f0(1e6 / inProcess)} µs` };

/** p99 against p50 of `run`. */
const tailOf = (run: KeydRun) => ({ value: run.p99 / run.p50, from: `${f1(run.p99)} vs ${f1(run.p50)} ms` });

const RATIOS: readonly Ratio[] = [
  {
    name: 'keyd over mTLS, 16 in flight (gateway client, coalesced) ÷ in-process key-service half (with its proof)',
    target: '>= 0.8',
    of: (k) => ({ value: k.batched16.rate / k.inProcess, from: `${f0(k.batched16.rate)} vs ${f0(k.inProcess)}/s` }),
  },
  {
    name: 'keyd over mTLS, 16 in flight, one request each ÷ in-process key-service half (with its proof)',
    target: 'for comparison',
    of: (k) => ({ value: k.single16.rate / k.inProcess, from: `${f0(k.single16.rate)} vs ${f0(k.inProcess)}/s` }),
  },
  {
    name: 'keyd server CPU per operation (coalesced) ÷ crypto half (with its proof) per operation',
    target: '<= 1.4',
    of: (k) => cpuPerOperation(k.batched16, k.inProcess),
  },
  {
    name: 'keyd server CPU per operation, one request each ÷ crypto half (with its proof) per operation',
    target: 'for comparison',
    of: (k) => cpuPerOperation(k.single16, k.inProcess),
  },
  {
    name: 'keyd p99 ÷ p50 at 16 in flight (coalesced)',
    target: '<= 1.5',
    of: (k) => tailOf(k.batched16),
  },
  {
    name: 'keyd p99 ÷ p50 at 16 in flight, one request each',
    target: 'for comparison',
    of: (k) => tailOf(k.single16),
  },
  {
    name: 'keyd over mTLS, 16 in flight (coalesced) ÷ Umbral reencrypt in process',
    target: '>= 4',
    of: (k, u) => (u === undefined ? undefined : { value: k.batched16.rate / u, from: `${f0(k.batched16.rate)} vs ${f0(u)}/s` }),
  },
  {
    name: 'SSMAX hop ÷ Haraka relay with TCP_NODELAY',
    target: '>= 0.8',
    of: (_k, _u, g) => ({ value: g.ssmax.rate / g.nodelay.rate, from: `${f0(g.ssmax.rate)} vs ${f0(g.nodelay.rate)} msg/s` }),
  },
  {
    name: 'SSMAX hop ÷ Haraka relay signing with haraka-plugin-dkim (TCP_NODELAY, relaying)',
    target: '>= 1.6',
    of: (_k, _u, g) => ({ value: g.ssmax.rate / g.dkim.rate, from: `${f0(g.ssmax.rate)} vs ${f0(g.dkim.rate)} msg/s` }),
  },
  {
    name: 'SSMAX hop p99 ÷ TCP_NODELAY relay p99',
    target: '<= 1.2',
    of: (_k, _u, g) => ({ value: g.ssmax.p99 / g.nodelay.p99, from: `${f1(g.ssmax.p99)} vs ${f1(g.nodelay.p99)} ms` }),
  },
  {
    name: 'SSMAX hop, nodes=2 ÷ nodes=1',
    target: 'report',
    of: (_k, _u, g) => ({ value: g.ssmax2.rate / g.ssmax.rate, from: `${f0(g.ssmax2.rate)} vs ${f0(g.ssmax.rate)} msg/s` }),
  },
  // How far three of the targets can be met on this machine at all (docs/scaling.md, "What this machine allows")
  {
    name: 'most keyd ÷ Umbral could be here: every core computing halves, transport, audit and load generator free',
    target: 'below 4: the >= 4 target is out of reach here',
    of: (k, u, _g, x) =>
      u === undefined ? undefined : { value: (x.cores * k.inProcess) / u, from: `${x.cores} cores × ${f0(k.inProcess)} vs ${f0(u)}/s` },
  },
  {
    name: "most SSMAX hop ÷ TCP_NODELAY relay could be: the relay's Haraka CPU against it plus the hop's curve and signature work alone",
    target: 'below 0.8: the >= 0.8 target is out of reach here',
    of: (_k, _u, g, x) => hopCeiling(g.nodelay.cpuUs?.[0], g.nodelay.cpuUs?.[0], x, 'relay'),
  },
  {
    name: "most SSMAX hop ÷ dkim relay could be: the dkim relay's Haraka CPU against the plain relay's plus the hop's curve and signature work",
    target: 'below 1.6: the >= 1.6 target is out of reach here',
    of: (_k, _u, g, x) => hopCeiling(g.dkim.cpuUs?.[0], g.nodelay.cpuUs?.[0], x, 'dkim relay'),
  },
];

/** Per-message and per-operation CPU costs behind the ratios (docs/scaling.md), median of the runs. */
interface Cost {
  readonly name: string;
  readonly of: (k: KeydFigures, gw: GatewayFigures, x: Extra) => number | undefined;
}

const COSTS: readonly Cost[] = [
  { name: 'keyd CPU per re-encryption, 16 in flight, coalesced', of: (k) => k.batched16.keydCpuUs },
  { name: 'keyd CPU per re-encryption, 16 in flight, one request each', of: (k) => k.single16.keydCpuUs },
  { name: 'key-service half of a re-encryption with its proof, in process (crypto only)', of: (k) => 1e6 / k.inProcess },
  { name: 'Haraka CPU per message, SSMAX hop, nodes=1', of: (_k, g) => g.ssmax.cpuUs?.[0] },
  { name: 'keyd CPU per message, SSMAX hop, nodes=1', of: (_k, g) => g.ssmax.cpuUs?.[1] },
  { name: 'Haraka CPU per message (both workers), SSMAX hop, nodes=2', of: (_k, g) => g.ssmax2.cpuUs?.[0] },
  { name: 'Haraka CPU per message, relay with TCP_NODELAY', of: (_k, g) => g.nodelay.cpuUs?.[0] },
  { name: 'Haraka CPU per message, relay signing with dkim', of: (_k, g) => g.dkim.cpuUs?.[0] },
  {
    name: "the gateway's curve and signature work per hop message, in process (blind, check keyd's proof, unblind, verify the seal, sign)",
    of: (_k, _g, x) => x.hopCryptoUs,
  },
];

export async function run(): Promise<BenchRow[]> {
  const costs: number[][] = COSTS.map(() => []);
  const values: { value: number; from: string }[][] = RATIOS.map(() => []);
  const notes: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    process.stderr.write(`bench: ratios: run ${i + 1} of ${RUNS}…\n`);
    const keyd = (await measureKeyd(defaultGroup, false)).figures;
    const umbral = await umbralReencrypt();
    if ('missing' in umbral && !notes.includes(umbral.missing)) notes.push(umbral.missing);
    const gw = (await measureGateway(false)).figures;
    const x: Extra = { hopCryptoUs: await hopCryptoUs(defaultGroup), cores: availableParallelism() };
    RATIOS.forEach((r, j) => {
      const v = r.of(keyd, 'rate' in umbral ? umbral.rate : undefined, gw, x);
      if (v && Number.isFinite(v.value)) values[j]!.push(v);
    });
    COSTS.forEach((c, j) => {
      const v = c.of(keyd, gw, x);
      if (v !== undefined && Number.isFinite(v)) costs[j]!.push(v);
    });
  }
  const costRows: BenchRow[] = COSTS.map((c, j) => {
    const vs = [...costs[j]!].sort((a, b) => a - b);
    if (vs.length === 0) return { suite: 'ratios/cost', name: c.name, rate: 0, unit: 'µs', note: 'not measured (no /proc here)' };
    return {
      suite: 'ratios/cost',
      name: c.name,
      rate: vs[Math.floor((vs.length - 1) / 2)]!,
      unit: 'µs',
      note: `min ${f0(vs[0]!)} / max ${f0(vs.at(-1)!)} over ${vs.length} runs`,
    };
  });
  const ratioRows = RATIOS.map((r, j): BenchRow => {
    const vs = [...values[j]!].sort((a, b) => a.value - b.value);
    if (vs.length === 0)
      return { suite: 'ratios', name: r.name, rate: 0, unit: 'ratio', note: `not measured${notes.length ? `: ${notes.join('; ')}` : ''}` };
    const median = vs[Math.floor((vs.length - 1) / 2)]!;
    return {
      suite: 'ratios',
      name: r.name,
      rate: median.value,
      unit: 'ratio',
      note: `min ${vs[0]!.value.toFixed(2)} / median ${median.value.toFixed(2)} / max ${vs.at(-1)!.value.toFixed(2)} over ${vs.length} runs (median run: ${median.from}); target ${r.target}`,
    };
  });
  return [...ratioRows, ...costRows];
}
