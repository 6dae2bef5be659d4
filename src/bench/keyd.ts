/**
 * keyd end to end (issue 5): blinded re-encryptions/s and blinded
 * decryptions/s over HTTPS with mutual TLS and keep-alive, at concurrency 1
 * and 16, with p50/p99 latency — beside the in-process key-service half of
 * the same operations in the same run. keyd runs in its own process (one
 * core); this process is the load generator (the other core).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Group,
  answerBlindedDecryption,
  blindForDecryption,
  blindForReencryption,
  encapsulate,
  defaultGroup,
  generateEncryptionKeyPair,
  groups,
  newMessageKey,
  systemRng,
  transformBlinded,
  transformBlindedWithProof,
} from '../crypto';
import { provisionOrg } from '../demo/provision';
import { KeydBatcher } from '../keyd/client-batch';
import { KeydClient } from '../keyd/client';
import { loadKeydConfig } from '../keyd/config';
import { openKeyd } from '../keyd/daemon';
import { type BenchRow, cpuSeconds, measure } from './harness';
import { umbralReencrypt } from './peers';

const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');
const SECONDS = Number(process.env.SSMAX_BENCH_SECONDS ?? 4);
const WARMUP_SECONDS = Number(process.env.SSMAX_BENCH_WARMUP_SECONDS ?? 3);

function startKeyd(configFile: string, backend: string): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    // SSMAX_BENCH_KEYD_NODE_ARGS: node flags for the keyd process (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p").
    const nodeArgs = (process.env.SSMAX_BENCH_KEYD_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
    const proc = spawn(
      process.execPath,
      [...nodeArgs, join(__dirname, '..', '..', 'bin', 'ssmax'), 'keyd', 'run', '--config', configFile],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SSMAX_CRYPTO_BACKEND: backend } },
    );
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on [^:]+:(\d+)/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.once('exit', (code) => reject(new Error(`keyd exited ${code}`)));
  });
}

export interface LoadResult {
  rate: number;
  p50: number;
  p99: number;
  keydCpuUs?: number;
  keydBusy?: number;
}

async function load(call: () => Promise<unknown>, concurrency: number, keydPid?: number): Promise<LoadResult> {
  // Warm-up at the measured concurrency (discarded): connections, JIT, the store's first growth
  // under this write rate — start-up transients, not keyd's steady state.
  const warm = performance.now() + WARMUP_SECONDS * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < warm) await call();
    }),
  );
  const latencies: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  const start = performance.now();
  const cpu0 = cpuSeconds(keydPid);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await call();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const cpu1 = cpuSeconds(keydPid);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  const cpu =
    cpu0 !== undefined && cpu1 !== undefined
      ? { keydCpuUs: ((cpu1 - cpu0) / latencies.length) * 1e6, keydBusy: (cpu1 - cpu0) / elapsed }
      : {};
  return { rate: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), ...cpu };
}

/** keyd's CPU per operation (all its threads) and its CPU use, when /proc tells. */
function cpuNote(r: LoadResult): string {
  return r.keydCpuUs === undefined ? '' : `; keyd ${r.keydCpuUs.toFixed(0)} µs CPU/op, ${((r.keydBusy ?? 0) * 100).toFixed(0)}% CPU`;
}

/**
 * Each backend keyd can use, measured end to end beside its own in-process
 * key-service half: the default (native libsecp256k1 where it loads) and, when
 * that is native, the WebAssembly build too — the transport, audit and storage
 * cost the same either way, so the share they take depends on the crypto's speed.
 */
export async function run(): Promise<BenchRow[]> {
  const backends = defaultGroup.name === 'native' ? [defaultGroup, groups.libsecp256k1] : [defaultGroup];
  const rows: BenchRow[] = [];
  for (const g of backends) rows.push(...(await measureKeyd(g, true)).rows);
  const umbral = await umbralReencrypt();
  rows.push(
    'missing' in umbral
      ? { suite: 'keyd/peer', name: 'Umbral reencrypt in process', rate: 0, unit: 'ops/s', note: `not measured: ${umbral.missing}` }
      : {
          suite: 'keyd/peer',
          name: `Umbral reencrypt in process (@nucypher/umbral-pre ${umbral.version}, WebAssembly)`,
          rate: umbral.rate,
          unit: 'ops/s',
          note: `${(1e6 / umbral.rate).toFixed(0)} µs/op; the proxy re-encryption a user would pick instead`,
        },
  );
  return rows;
}

/** What the ratios of issue 22 need from one keyd run (ratios.ts). */
export interface KeydFigures {
  /** The in-process key-service half of a re-encryption (ops/s). */
  readonly inProcess: number;
  /** Re-encryptions over mTLS at 16 in flight, one request each. */
  readonly single16: LoadResult;
  /** The same through the gateway's coalescing client (src/keyd/client-batch.ts). */
  readonly batched16: LoadResult;
}

/** One keyd process on backend `g`: the in-process halves and the loads; `full` adds concurrency 1 and the decryptions. */
export async function measureKeyd(g: Group, full: boolean): Promise<{ rows: BenchRow[]; figures: KeydFigures }> {
  const suite = `keyd/${g.name}`;
  // SSMAX_BENCH_KEYD_CRYPTO_THREADS: keyd's [limits] crypto_threads for this run (default: the shipped default, "auto")
  const threads = process.env.SSMAX_BENCH_KEYD_CRYPTO_THREADS;
  const fx = provisionOrg(mkdtempSync(join(tmpdir(), 'ssmax-bench-keyd-')), {
    ...(threads !== undefined && threads !== '' ? { limits: { crypto_threads: threads } } : {}),
  });
  const { proc, port } = await startKeyd(fx.configFile, g.name);
  const rows: BenchRow[] = [];
  try {
    const client = (creds: { cert: string; key: string }) =>
      new KeydClient({
        url: `https://127.0.0.1:${port}`,
        servername: `keyd.${fx.domain}`,
        cert: creds.cert,
        key: creds.key,
        ca: fx.caPem,
        maxSockets: 16,
      });
    const admin = client(fx.clients.admin);
    const bob = generateEncryptionKeyPair(g, systemRng);
    await admin.call('POST', '/v1/registry/users', {
      address: 'bob@a.example',
      code: 'U-1',
      identityRef: 'EMP-1',
      encryptionPublicKey: Buffer.from(bob.publicKey).toString('hex'),
    });
    const pub = await admin.call<{ current: string; keys: { keyId: string; publicKey: string }[] }>('GET', '/v1/public');
    admin.close();
    const orgPub = new Uint8Array(Buffer.from(pub.keys.find((k) => k.keyId === pub.current)!.publicKey, 'hex'));
    const capsule = encapsulate(g, newMessageKey(g, systemRng), { keyId: pub.current, publicKey: orgPub }, systemRng);
    const re = blindForReencryption(g, capsule, systemRng).request;
    const de = blindForDecryption(g, capsule, systemRng).request;
    const reBody = { keyId: capsule.keyId, e: b64(re.e), f: b64(re.f), target: { kind: 'user', address: 'bob@a.example' } };
    const deBody = { keyId: capsule.keyId, e: b64(de.e) };

    // In-process key-service halves, with keyd's own key (read from its store while it runs).
    const parts = openKeyd(loadKeydConfig(fx.configFile));
    const key = parts.keyring.usable(pub.current, new Date()).key;
    const bobPub = g.encodeUncompressed(g.decode(bob.publicKey, 'bob'));
    // The half keyd computes: the re-encryption with its proof (docs/format.md, "The re-encryption proof").
    const inReenc = await measure(() => transformBlindedWithProof(g, key.privateKey, re, bobPub, systemRng, key.publicKeyUncompressed));
    const inBare = full ? await measure(() => transformBlinded(g, key.privateKey, re, bobPub, systemRng)) : 0;
    const inDec = full ? await measure(() => answerBlindedDecryption(g, key.privateKey, key.publicKeyUncompressed, de, systemRng)) : 0;
    await parts.store.close();
    rows.push({
      suite,
      name: 're-encryption with its proof, key-service half in process',
      rate: inReenc,
      unit: 'ops/s',
      note: `baseline (what keyd computes per operation); ${(1e6 / inReenc).toFixed(0)} µs/op`,
    });
    if (full)
      rows.push({
        suite,
        name: 're-encryption without the proof, in process',
        rate: inBare,
        unit: 'ops/s',
        note: `for comparison: the proof's share is ${(100 * (1 - inReenc / inBare)).toFixed(0)}% of the half`,
      });
    if (full)
      rows.push({
        suite,
        name: 'blinded decryption + proof, key-service half in process',
        rate: inDec,
        unit: 'ops/s',
        note: `baseline; ${(1e6 / inDec).toFixed(0)} µs/op`,
      });

    const gw = client(fx.clients.gateway);
    const ins = client(fx.clients.inspector);
    let single16: LoadResult | undefined;
    for (const c of full ? [1, 16] : [16]) {
      const r = await load(() => gw.call('POST', '/v1/reencrypt', reBody), c, proc.pid);
      if (c === 16) single16 = r;
      rows.push({
        suite,
        name: `re-encryption over HTTPS mTLS, concurrency ${c}, one request each`,
        rate: r.rate,
        unit: 'ops/s',
        note: `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms; ${((r.rate / inReenc) * 100).toFixed(0)}% of in-process${cpuNote(r)}`,
      });
    }
    // The gateway's own client: operations in flight together travel in one batch.
    const batcher = new KeydBatcher(gw);
    const batched16 = await load(() => batcher.call('reencrypt', reBody), 16, proc.pid);
    rows.push({
      suite,
      name: 're-encryption over HTTPS mTLS, 16 in flight, gateway client (coalesced)',
      rate: batched16.rate,
      unit: 'ops/s',
      note: `p50 ${batched16.p50.toFixed(1)} ms, p99 ${batched16.p99.toFixed(1)} ms; ${((batched16.rate / inReenc) * 100).toFixed(0)}% of in-process${cpuNote(batched16)}`,
    });
    if (full) {
      for (const c of [1, 16]) {
        const r = await load(() => ins.call('POST', '/v1/decrypt', deBody), c, proc.pid);
        rows.push({
          suite,
          name: `blinded decryption over HTTPS mTLS, concurrency ${c}, one request each`,
          rate: r.rate,
          unit: 'ops/s',
          note: `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms; ${((r.rate / inDec) * 100).toFixed(0)}% of in-process${cpuNote(r)}`,
        });
      }
      const insBatcher = new KeydBatcher(ins);
      const r = await load(() => insBatcher.call('decrypt', deBody), 16, proc.pid);
      rows.push({
        suite,
        name: 'blinded decryption over HTTPS mTLS, 16 in flight, gateway client (coalesced)',
        rate: r.rate,
        unit: 'ops/s',
        note: `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms; ${((r.rate / inDec) * 100).toFixed(0)}% of in-process${cpuNote(r)}`,
      });
    }
    gw.close();
    ins.close();
    return { rows, figures: { inProcess: inReenc, single16: single16!, batched16 } };
  } finally {
    proc.kill('SIGTERM');
    await new Promise((resolve) => (proc.exitCode !== null ? resolve(undefined) : proc.once('exit', resolve)));
    rmSync(fx.dir, { recursive: true, force: true }); // its keys and store: nothing of a run stays behind
  }
}
