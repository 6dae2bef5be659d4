/**
 * One gateway hop doing the full SSMAX work (issue 6): messages/s and p50/p99
 * latency of b.example's Haraka receiving sealed, encrypted 5 KB messages from
 * a.example — chain verification against a.example's bundle, re-encryption to
 * the recipient's key through keyd over mutual TLS, sealing i=2, hand-over to
 * the mailbox store — over 16 SMTP connections, one Haraka process, keyd in its
 * own process. Beside it, in the same run: the same Haraka relaying plain 5 KB
 * mail (smtp_forward to the same mailbox store), stock and with TCP_NODELAY.
 * The saturated runs are closed loops (each session sends its next message on
 * the 250 of the last), so their latency is 16 / rate by Little's law; a last
 * run offers the SSMAX hop the load stock Haraka carries at most, at a fixed
 * rate, for its latency below saturation.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIni } from '../config/ini';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { type HarakaProcess, freePort, layoutHaraka, startHaraka } from '../demo/haraka';
import { MailboxStore } from '../demo/mailbox';
import { startNetwork } from '../demo/network';
import { setupGateway } from '../gateway/setup';
import { submit } from '../gateway/submission';
import { type BenchRow, cpuSeconds } from './harness';

const CONNECTIONS = 16;
const SSMAX_MESSAGES = Number(process.env.SSMAX_BENCH_GATEWAY_MESSAGES ?? 1500);
const PLAIN_SECONDS = Number(process.env.SSMAX_BENCH_SECONDS ?? 4);
/**
 * Messages sent through each Haraka (and keyd) before its measured run, and
 * discarded: connections, caches, keyd's store and above all V8's optimising
 * compiler, which here keeps compiling Haraka's and our code for a few
 * thousand messages (after 300 messages TurboFan still took ~18% of Haraka's
 * CPU). A gateway runs for days, so the steady state is the figure; measured
 * here, the hop's rate rose from ~230 msg/s after 300 messages to ~270 after
 * 1,000 and ~330 after 4,000, and stayed there after 8,000. Every case in the
 * table gets the same warm-up.
 */
const WARMUP = Number(process.env.SSMAX_BENCH_GATEWAY_WARMUP ?? 4000);

function progress(line: string): void {
  process.stderr.write(`bench: gateway: ${line}…\n`);
}

function body5k(i: number): string {
  const line = 'The quarterly figures are attached as agreed; please review them before Friday.\r\n';
  return line.repeat(Math.ceil(5000 / line.length)).slice(0, 5000 - 20) + `\r\nmessage ${i}\r\n`;
}

function plainMessage(from: string, to: string, i: number): string {
  return `From: ${from}\r\nTo: ${to}\r\nSubject: bench ${i}\r\nMessage-ID: <bench-${i}-${Date.now()}@a.example>\r\nDate: ${new Date().toUTCString()}\r\n\r\n${body5k(i)}`;
}

export interface Run {
  rate: number;
  p50: number;
  p99: number;
  failed: number;
  /** Messages accepted. */
  count: number;
  /** CPU per message of the watched processes (µs, all their threads), when /proc tells. */
  cpuUs?: number[];
}

/** Rate since `start` and latency percentiles of the accepted messages. */
function summary(latencies: number[], start: number, failed: number): Run {
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return { rate: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), failed, count: latencies.length };
}

/** Runs `load` and adds the CPU per message that each of `pids` used meanwhile. */
async function watched(pids: readonly (number | undefined)[], load: () => Promise<Run>): Promise<Run> {
  const before = pids.map(cpuSeconds);
  const r = await load();
  const after = pids.map(cpuSeconds);
  if (r.count === 0 || before.some((c) => c === undefined) || after.some((c) => c === undefined)) return r;
  return { ...r, cpuUs: after.map((c, i) => ((c! - before[i]!) / r.count) * 1e6) };
}

/** An SMTP session for the load generator: nodemailer's protocol layer alone (no message composer), TCP_NODELAY. */
function session(port: number): Promise<SMTPConnection> {
  return new Promise((resolve, reject) => {
    const c = new SMTPConnection({ host: '127.0.0.1', port, ignoreTLS: true, socketTimeout: 60000 });
    c.once('error', reject);
    c.connect(() => {
      if (c._socket) c._socket.setNoDelay(true);
      resolve(c);
    });
  });
}

function sendOne(c: SMTPConnection, from: string, to: string, msg: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => c.send({ from, to: [to] }, msg, (err) => (err ? reject(err) : resolve())));
}

/**
 * 16 connections, each sending its share sequentially; `next` hands out
 * messages until it returns undefined. The load generator shares this
 * 2-core machine with Haraka and keyd, so it is kept cheap: one SMTP session
 * per connection for the whole run, raw messages, no composition.
 */
async function drive(port: number, from: string, to: string, next: () => Buffer | string | undefined): Promise<Run> {
  const latencies: number[] = [];
  let failed = 0;
  const sessions = await Promise.all(Array.from({ length: CONNECTIONS }, () => session(port)));
  const start = performance.now();
  await Promise.all(
    sessions.map(async (c) => {
      let alive = true;
      c.on('error', () => {
        alive = false;
      });
      try {
        for (let msg = next(); msg !== undefined; msg = next()) {
          const t0 = performance.now();
          try {
            if (!alive) throw new Error('session lost');
            await sendOne(c, from, to, msg);
            latencies.push(performance.now() - t0);
          } catch {
            failed++;
            if (!alive) break;
            await new Promise<void>((r) => c.reset(() => r()));
          }
        }
      } finally {
        c.quit();
      }
    }),
  );
  return summary(latencies, start, failed);
}

/**
 * The same 16 sessions, but the load offered at a fixed rate: message n is
 * due at start + n / rate; its latency runs from when it was due (so a
 * backlog counts against the hop), to its 250.
 */
async function drivePaced(port: number, from: string, to: string, messages: readonly (Buffer | string)[], rate: number): Promise<Run> {
  const latencies: number[] = [];
  let failed = 0;
  let n = 0;
  const sessions = await Promise.all(Array.from({ length: CONNECTIONS }, () => session(port)));
  const start = performance.now() + 50;
  await Promise.all(
    sessions.map(async (c) => {
      try {
        while (n < messages.length) {
          const i = n++;
          const due = start + (i * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          try {
            await sendOne(c, from, to, messages[i]!);
            latencies.push(performance.now() - due);
          } catch {
            failed++;
            await new Promise<void>((r) => c.reset(() => r()));
          }
        }
      } finally {
        c.quit();
      }
    }),
  );
  return summary(latencies, start, failed);
}

/** A Haraka relay's kind: stock, with TCP_NODELAY, or with TCP_NODELAY relaying (relay ACL) and signing with haraka-plugin-dkim (RSA-2048). */
type RelayKind = 'stock' | 'nodelay' | 'dkim';

async function relay(base: string, sinkPort: number, kind: RelayKind, sink: MailboxStore): Promise<Run> {
  const port = await freePort();
  const dir = join(base, `relay-${kind}`);
  const files: Record<string, string> = {
    host_list: 'b.example\n',
    'smtp_forward.ini': `host=127.0.0.1\nport=${sinkPort}\nenable_tls=false\n`,
  };
  let plugins = [...(kind === 'stock' ? [] : ['ssmax-nodelay']), 'rcpt_to.in_host_list', 'queue/smtp_forward'];
  if (kind === 'dkim') {
    // The way a Haraka administrator authenticates relayed mail today: the relay ACL marks the
    // sender as relaying (without it the dkim plugin does not sign), dkim signs on queue_outbound,
    // smtp_forward forwards outbound mail too. Verification of inbound signatures off: signing is measured.
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    plugins = ['ssmax-nodelay', 'relay', 'rcpt_to.in_host_list', 'dkim', 'queue/smtp_forward'];
    Object.assign(files, {
      'relay.ini': '[relay]\nacl=true\n',
      relay_acl_allow: '127.0.0.1/32\n',
      'dkim.ini': '[sign]\nenabled=true\nselector=bench\ndomain=a.example\n[verify]\nenabled=false\n',
      'dkim.private.key': rsa,
      'smtp_forward.ini': `${files['smtp_forward.ini']}enable_outbound=true\n`,
    });
  }
  layoutHaraka(dir, { port, me: 'relay.b.example', plugins, files });
  const haraka: HarakaProcess = await startHaraka(dir, port);
  try {
    let i = 0;
    progress(`plain relay, ${kind}: ${WARMUP} warm-up messages, then ${PLAIN_SECONDS} s measured`);
    await drive(port, 'dave@a.example', 'bob@b.example', () =>
      i++ < WARMUP ? plainMessage('dave@a.example', 'bob@b.example', i) : undefined,
    ); // warm-up
    const end = performance.now() + PLAIN_SECONDS * 1000; // the measured window starts after the warm-up
    const r = await watched([haraka.proc.pid, process.pid], () =>
      drive(port, 'dave@a.example', 'bob@b.example', () =>
        performance.now() < end ? plainMessage('dave@a.example', 'bob@b.example', i++) : undefined,
      ),
    );
    if (kind === 'dkim') {
      const last = sink.for('bob@b.example').at(-1)?.raw.toString('latin1') ?? '';
      if (!/^DKIM-Signature:[^]*?\bs=bench\b/m.test(last))
        throw new Error(`the dkim relay did not sign (last message head: ${last.slice(0, 400)})\n${haraka.logs().slice(-2000)}`);
    }
    return r;
  } finally {
    await haraka.stop();
  }
}

/** The worker processes of a Haraka in cluster mode (children of its master), from /proc; empty elsewhere. */
function childrenOf(pid: number | undefined): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((x) => x !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** What the ratios of issue 22 need from one gateway run (ratios.ts). */
export interface GatewayFigures {
  readonly nodelay: Run;
  readonly dkim: Run;
  readonly ssmax: Run;
  readonly ssmax2: Run;
}

export async function run(): Promise<BenchRow[]> {
  return (await measureGateway(true)).rows;
}

/**
 * The relays and the SSMAX hop, nodes=1 then nodes=2; `full` adds stock Haraka and the paced run.
 * The same warm-up and measured amounts for each case.
 */
export async function measureGateway(full: boolean): Promise<{ rows: BenchRow[]; figures: GatewayFigures }> {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-bench-gw-'));
  const net = await startNetwork(base, [
    { domain: 'a.example', users: [{ address: 'dave@a.example', client: 'plain', password: 'pw-dave' }] },
    { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }] },
  ]);
  const rows: BenchRow[] = [];
  try {
    const A = net.org('a.example');
    const B = net.org('b.example');
    // The baselines first: the paced run below offers the load stock Haraka carries at most.
    const sink = new MailboxStore();
    const sinkPort = await freePort();
    await sink.listen(sinkPort);
    let stock: Run | undefined;
    let nodelay: Run;
    let dkim: Run;
    try {
      if (full) stock = await relay(base, sinkPort, 'stock', sink);
      nodelay = await relay(base, sinkPort, 'nodelay', sink);
      dkim = await relay(base, sinkPort, 'dkim', sink);
    } finally {
      await sink.close();
    }
    const pacedCount = stock ? Math.ceil(stock.rate * PLAIN_SECONDS) : 0;

    // Distinct sealed, encrypted A->B messages, made by a.example's own gateway steps in-process
    // (distinct: the exactly-once record would skip a message delivered before).
    const ini = parseIni(readFileSync(join(A.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    const gwA = setupGateway(ini, A.harakaDir, () => undefined, 'ssmax-state-bench');
    const sealed: Buffer[] = [];
    const total = 2 * (WARMUP + SSMAX_MESSAGES) + pacedCount;
    progress(`SSMAX hop: sealing ${total} messages at a.example, in process`);
    try {
      for (let i = 0; i < total; i++) {
        const { copies } = await submit(gwA.deps, Buffer.from(plainMessage('dave@a.example', 'bob@b.example', i)), ['bob@b.example']);
        sealed.push(copies[0]!.message);
      }
    } finally {
      await gwA.close();
    }
    let k = 0;
    const hop = async (nodes: number): Promise<Run> => {
      progress(`SSMAX hop, nodes=${nodes}: ${WARMUP} warm-up messages, then ${SSMAX_MESSAGES} measured`);
      const stop = k + WARMUP;
      await drive(B.ports.smtp, 'dave@a.example', 'bob@b.example', () => (k < stop ? sealed[k++] : undefined)); // warm-up: caches, JIT, keep-alive
      const end = k + SSMAX_MESSAGES;
      const harakaPids = nodes > 1 ? childrenOf(B.haraka.proc.pid) : [B.haraka.proc.pid];
      const r = await watched([...harakaPids, B.keyd.proc.pid, process.pid], () =>
        drive(B.ports.smtp, 'dave@a.example', 'bob@b.example', () => (k < end ? sealed[k++] : undefined)),
      );
      if (r.cpuUs && nodes > 1)
        r.cpuUs = [r.cpuUs.slice(0, harakaPids.length).reduce((a, b) => a + b, 0), ...r.cpuUs.slice(harakaPids.length)];
      return r;
    };
    const ssmax = await hop(1);
    const paced = stock
      ? await drivePaced(B.ports.smtp, 'dave@a.example', 'bob@b.example', sealed.slice(k, (k += pacedCount)), stock.rate)
      : undefined;
    // The same hop under Haraka's cluster mode: two worker processes on this 2-core machine.
    const smtpIni = join(B.harakaDir, 'config', 'smtp.ini');
    writeFileSync(smtpIni, readFileSync(smtpIni, 'utf8').replace(/^nodes=\d+$/m, 'nodes=2'));
    await B.restartHaraka();
    if (childrenOf(B.haraka.proc.pid).length < 2) await new Promise((r) => setTimeout(r, 2000)); // workers still starting
    const ssmax2 = await hop(2);
    const failed = ssmax.failed + ssmax2.failed + (paced?.failed ?? 0);
    if (failed > 0) throw new Error(`${failed} SSMAX messages were refused during the benchmark:\n${B.haraka.logs().slice(-2000)}`);

    const cpu = (r: Run, names: readonly string[]) =>
      r.cpuUs ? `; CPU/msg ${r.cpuUs.map((us, i) => `${names[i]} ${Math.round(us)} µs`).join(', ')}` : '';
    const bench = 'load generator + mailbox store';
    const line = (r: Run, names: readonly string[] = ['Haraka', 'keyd', bench]) =>
      `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms${cpu(r, names)}`;
    if (stock)
      rows.push({
        suite: 'gateway',
        name: 'plain relay, stock Haraka (no TCP_NODELAY), 5 KB, 16 conns',
        rate: stock.rate,
        unit: 'msg/s',
        note: line(stock, ['Haraka', bench]),
      });
    rows.push({
      suite: 'gateway',
      name: 'plain relay, Haraka with TCP_NODELAY, 5 KB, 16 conns',
      rate: nodelay.rate,
      unit: 'msg/s',
      note: line(nodelay, ['Haraka', bench]),
    });
    rows.push({
      suite: 'gateway/peer',
      name: 'relay signing with haraka-plugin-dkim (RSA-2048, relay ACL, TCP_NODELAY), 5 KB, 16 conns',
      rate: dkim.rate,
      unit: 'msg/s',
      note: line(dkim, ['Haraka', bench]),
    });
    rows.push({
      suite: 'gateway',
      name: 'SSMAX hop (chain verify, keyd re-encrypt, seal, deliver), nodes=1, 5 KB, 16 conns',
      rate: ssmax.rate,
      unit: 'msg/s',
      note: `${line(ssmax)}; ${(ssmax.rate / nodelay.rate).toFixed(2)}x nodelay relay, ${(ssmax.rate / dkim.rate).toFixed(2)}x dkim relay`,
    });
    rows.push({
      suite: 'gateway',
      name: 'SSMAX hop, Haraka cluster nodes=2, 5 KB, 16 conns',
      rate: ssmax2.rate,
      unit: 'msg/s',
      note: `${line(ssmax2, ['Haraka workers', 'keyd', bench])}; ${(ssmax2.rate / ssmax.rate).toFixed(2)}x nodes=1`,
    });
    if (stock && paced) {
      rows.push({
        suite: 'gateway',
        name: `SSMAX hop, load offered at stock Haraka's rate (${Math.round(stock.rate)} msg/s), 16 conns`,
        rate: paced.rate,
        unit: 'msg/s',
        note: `${line(paced)} (from when each message was due)`,
      });
    }
    return { rows, figures: { nodelay, dkim, ssmax, ssmax2 } };
  } finally {
    await net.stop();
    rmSync(base, { recursive: true, force: true }); // its keys and stores: nothing of a run stays behind
  }
}
