/**
 * The gateway's operations listener and metrics ([ops] in ssmax.ini;
 * docs/operations.md): messages by direction and outcome, reply codes, step
 * latency, peers' bundle age/expiry and last error, CRL next-update, clamd
 * availability (inline inspection). Fed by the per-message records
 * (message-log.ts) and read from the gateway's own state at scrape time.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Histogram } from 'prom-client';
import { Directory } from '../directory/directory';
import { type Gateway } from '../gateway/setup';
import { LocalInspector } from '../inspect/engine';
import { type MessageRecord, STEPS, onRecord } from '../gateway/message-log';
import { parseCrl } from '../pki/crl';
import { type OpsListener, newRegistry, opsListenOf, startOps, unavailableText } from './server';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface GatewayOpsOptions {
  /** The lines logged at start for names of ssmax.ini the gateway does not know (src/gateway/ini-files.ts): readiness repeats those about [delivery]. */
  readonly unknownNames?: () => readonly string[];
}

/** How long readiness waits for the mailbox store's greeting (within the 3 s of a readiness answer: src/ops/server.ts). */
const DELIVERY_PROBE_MS = 2000;

/**
 * The mailbox store's readiness check: `ok` when a session to it opens (greeting, EHLO or LHLO), else the reason
 * naming the setting and its file, and any name of ssmax.ini about [delivery] the gateway did not know (a misspelt
 * section leaves the setting at its default: the reason then says which name was ignored).
 */
async function deliveryCheck(gw: Pick<Gateway, 'delivery'>, unknownNames: () => readonly string[] = () => []): Promise<string> {
  try {
    await gw.delivery.probe(DELIVERY_PROBE_MS);
    return 'ok';
  } catch (err) {
    const { address, protocol } = gw.delivery.where;
    const ignored = unknownNames().filter((l) => /deliver/i.test(l));
    const why = `unavailable: the mailbox store at ${address} ([delivery] host of ssmax.ini, ${protocol}) does not answer: ${(err as Error).message}`;
    return ignored.length > 0 ? `${why}; ${ignored.join('; ')}` : why;
  }
}

export interface GatewayOps {
  readonly listener: OpsListener;
  close(): Promise<void>;
}

/** Registers the gateway's metrics; `unhook` stops feeding them. */
export function gatewayMetrics(gw: Gateway): { registry: ReturnType<typeof newRegistry>; unhook: () => void } {
  const registry = newRegistry('gateway');
  const messages = new Counter({
    name: 'ssmax_gateway_messages_total',
    help: 'Messages answered at the queue hooks, by direction and outcome (queued, delivered, held, duplicate, refused, deferred)',
    labelNames: ['direction', 'outcome'],
    registers: [registry],
  });
  const replies = new Counter({
    name: 'ssmax_gateway_replies_total',
    help: 'Replies after DATA, by direction, SMTP code and enhanced status code',
    labelNames: ['direction', 'code', 'status'],
    registers: [registry],
  });
  const steps = new Histogram({
    name: 'ssmax_gateway_step_seconds',
    help: 'Time spent per message in each step (keyd, inspection, delivery, chain) and in all (total)',
    labelNames: ['direction', 'step'],
    buckets: BUCKETS,
    registers: [registry],
  });
  // 1 per process: summed across Haraka's workers, the number of workers that answered the scrape
  new Gauge({
    name: 'ssmax_gateway_worker_processes',
    help: "Gateway processes whose counts this answer holds (Haraka's workers under smtp.ini nodes=N; 1 otherwise)",
    registers: [registry],
    aggregator: 'sum',
  }).set(1);
  const unhook = onRecord((r: MessageRecord) => {
    messages.inc({ direction: r.direction, outcome: r.outcome });
    replies.inc({ direction: r.direction, code: String(r.reply.code), status: r.reply.status });
    for (const s of [...STEPS, 'total' as const])
      if (s === 'total' || r.ms[s] > 0) steps.observe({ direction: r.direction, step: s }, r.ms[s] / 1000);
  });
  const dir = gw.deps.directory;
  if (dir instanceof Directory) {
    // one collect for the four (prom-client collects each metric just before writing it: the first one fills them all)
    const refresh = () => {
      const now = Date.now();
      for (const g of [age, expiry, lastError, usable]) g.reset();
      for (const p of dir.status()) {
        usable.set({ peer: p.domain }, p.state === 'valid' || p.state === 'refresh-due' ? 1 : 0);
        if (p.lastFetch) age.set({ peer: p.domain }, (now - p.lastFetch.getTime()) / 1000);
        if (p.expires) expiry.set({ peer: p.domain }, p.expires.getTime() / 1000);
        if (p.lastErrorAt) lastError.set({ peer: p.domain }, p.lastErrorAt.getTime() / 1000);
      }
    };
    // across Haraka's workers (each holds its own cache): the oldest, the earliest expiry, the latest error, usable only if usable in all
    const age: Gauge = new Gauge({
      name: 'ssmax_gateway_peer_bundle_age_seconds',
      help: "Seconds since the peer's bundle was last fetched",
      labelNames: ['peer'],
      registers: [registry],
      collect: refresh,
      aggregator: 'max',
    });
    const expiry = new Gauge({
      name: 'ssmax_gateway_peer_bundle_expiry_timestamp_seconds',
      help: 'When the cached bundle of the peer expires (Unix time)',
      labelNames: ['peer'],
      registers: [registry],
      aggregator: 'min',
    });
    const lastError = new Gauge({
      name: 'ssmax_gateway_peer_bundle_last_error_timestamp_seconds',
      help: "When fetching the peer's bundle last failed (Unix time; absent if never)",
      labelNames: ['peer'],
      registers: [registry],
      aggregator: 'max',
    });
    const usable = new Gauge({
      name: 'ssmax_gateway_peer_bundle_usable',
      help: '1 when a valid (or refresh-due) bundle of the peer is held, else 0',
      labelNames: ['peer'],
      registers: [registry],
      aggregator: 'min',
    });
  }
  const crlNext = new Gauge({
    name: 'ssmax_gateway_crl_next_update_timestamp_seconds',
    help: 'nextUpdate of each CRL the gateway validates local users with (Unix time), by file order',
    labelNames: ['crl'],
    registers: [registry],
    aggregator: 'min',
    collect() {
      crlNext.reset();
      try {
        gw.deps.crls().forEach((pem, i) => {
          const next = parseCrl(pem).nextUpdate;
          if (next) crlNext.set({ crl: gw.config.pki.crls[i] ?? String(i) }, next.getTime() / 1000);
        });
      } catch {
        // an unreadable CRL shows as a missing series (and fails readiness)
      }
    },
  });
  const ins = gw.deps.inspection;
  const av = ins instanceof LocalInspector ? ins.config.av : undefined;
  if (av) {
    const up = new Gauge({
      name: 'ssmax_gateway_clamd_up',
      help: '1 when clamd answers PING, else 0',
      registers: [registry],
      aggregator: 'min',
      async collect() {
        up.set((await av.client.ping()) ? 1 : 0);
      },
    });
  }
  return { registry, unhook };
}

/**
 * Starts the listener when [ops] listen is set; undefined otherwise. Under
 * Haraka's cluster (smtp.ini nodes=N) the plugin is loaded in the master and
 * in every worker: the master listens and answers /metrics with the workers'
 * metrics aggregated (prom-client's AggregatorRegistry over the cluster IPC
 * channel); the workers only answer the master.
 */
export async function startGatewayOps(
  gw: Gateway,
  section: Record<string, unknown> | undefined,
  log: (line: string) => void,
  opts: GatewayOpsOptions = {},
): Promise<GatewayOps | undefined> {
  const addr = opsListenOf(section, 'ssmax.ini');
  if (!addr) return undefined;
  const { registry, unhook } = gatewayMetrics(gw);
  if (cluster.isWorker) {
    // A worker of Haraka's cluster (smtp.ini nodes=N): no listener of its own; the master answers
    // /metrics with every worker's series, aggregated (counters summed; gauges as set above).
    new AggregatorRegistry(); // installs the worker's answer to the master's request
    AggregatorRegistry.setRegistries([registry]);
    return { listener: { port: 0, close: () => Promise.resolve() }, close: () => Promise.resolve(unhook()) };
  }
  const aggregator = new AggregatorRegistry();
  const workers = () => Object.values(cluster.workers ?? {}).filter((w) => w?.isConnected()).length;
  const listener = await startOps({
    ...addr,
    service: 'gateway',
    registry,
    // the cluster master handles no mail: its workers' counts are the gateway's
    metrics: () => (workers() > 0 ? aggregator.clusterMetrics() : registry.metrics()),
    async ready() {
      const checks: Record<string, string> = {};
      // the mailbox store at once, beside keyd: both within the answer's 3 s
      const delivery = deliveryCheck(gw, opts.unknownNames);
      try {
        const keys = await gw.deps.keyd.orgKeys();
        checks.keyd = keys.current ? 'ok' : 'no current key';
      } catch (err) {
        checks.keyd = unavailableText(err);
      }
      checks.delivery = await delivery;
      try {
        const now = Date.now();
        const stale = gw.deps
          .crls()
          .map((pem) => parseCrl(pem).nextUpdate)
          .filter((d) => d && d.getTime() < now).length;
        checks.crls = stale === 0 ? 'ok' : `${stale} past nextUpdate`;
      } catch (err) {
        checks.crls = `unreadable (${(err as Error).message.slice(0, 80)})`;
      }
      return { ready: Object.values(checks).every((c) => c === 'ok'), checks };
    },
  });
  log(`ssmax: ops listening on ${addr.host}:${listener.port} (/health/live, /health/ready, /metrics)`);
  return {
    listener,
    async close() {
      unhook();
      await listener.close();
    },
  };
}
