/**
 * The operations listener of every SSMAX process (gateway, keyd, publisher,
 * inspector): plain HTTP, no client certificate, loopback unless configured
 * otherwise ([ops] listen), separate from the service's own port. Three
 * endpoints, nothing secret in any of them (docs/operations.md):
 *  - GET /health/live  — 200 while the process answers;
 *  - GET /health/ready — 200 when it can do its work, 503 otherwise, with one
 *    word per check (`ok` or a short reason without secrets);
 *  - GET /metrics      — Prometheus text format (prom-client).
 * Anything else: 404 (405 for other methods). Requests carry no body; the
 * answer is built from the process's own state.
 */
import { LISTENER_DEFAULTS, type ListenerLimits, capConnections, listenerOptions } from '../net/listener-limits';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type Registry, collectDefaultMetrics, Registry as PromRegistry } from 'prom-client';
import { closeGracefully, listen } from '../net/https-json';
import { HostPortError, parseHostPort } from '../config/host-port';
import { ConfigError, readIniFile } from '../config/ini';

export interface ReadyAnswer {
  readonly ready: boolean;
  /** check name → `ok` or a short reason (never a secret). */
  readonly checks: Readonly<Record<string, string>>;
}

export interface OpsOptions {
  readonly host: string;
  readonly port: number;
  /** The service's name in the answers (keyd, publisher, inspector, gateway). */
  readonly service: string;
  readonly registry: Registry;
  /** The /metrics text, when it is not `registry`'s own (a Haraka cluster master: its workers' counts, aggregated). */
  readonly metrics?: () => Promise<string>;
  /** Readiness; bounded by `readyTimeoutMs` (a check that does not answer in time counts as not ready). */
  readonly ready: () => Promise<ReadyAnswer>;
  readonly readyTimeoutMs?: number;
  /** The listener's limits; each one not given: OPS_LISTENER. */
  readonly listener?: Partial<ListenerLimits>;
}

export interface OpsListener {
  readonly port: number;
  close(): Promise<void>;
}

/** A registry with the process metrics (CPU, memory, event loop) under `ssmax_<service>_` names. */
export function newRegistry(service: string): Registry {
  const registry = new PromRegistry();
  collectDefaultMetrics({ register: registry, prefix: `ssmax_${service}_` });
  return registry;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const json = (res: ServerResponse, status: number, body: unknown) => send(res, status, 'application/json', `${JSON.stringify(body)}\n`);

async function readiness(opts: OpsOptions): Promise<ReadyAnswer> {
  const ms = opts.readyTimeoutMs ?? 3000;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<ReadyAnswer>((resolve) => {
    timer = setTimeout(() => resolve({ ready: false, checks: { answer: `no answer within ${ms} ms` } }), ms);
  });
  try {
    return await Promise.race([
      opts.ready().catch((err: unknown) => ({ ready: false, checks: { answer: `failed: ${(err as Error).message}`.slice(0, 200) } })),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function handle(opts: OpsOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    json(res, 405, { error: 'only GET' });
    return;
  }
  switch (path) {
    case '/health/live':
      json(res, 200, { service: opts.service, status: 'live' });
      return;
    case '/health/ready': {
      const r = await readiness(opts);
      json(res, r.ready ? 200 : 503, { service: opts.service, status: r.ready ? 'ready' : 'not-ready', checks: r.checks });
      return;
    }
    case '/metrics':
      send(res, 200, opts.registry.contentType, await (opts.metrics ? opts.metrics() : opts.registry.metrics()));
      return;
    default:
      json(res, 404, { error: 'not found', endpoints: ['/health/live', '/health/ready', '/metrics'] });
  }
}

/** The operations listener's limits (src/net/listener-limits.ts): headers within 5 s, a request within 10 s, 20 s without traffic, 100 connections (a few scrapers and probes). */
export const OPS_LISTENER: ListenerLimits = {
  ...LISTENER_DEFAULTS,
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10000,
  idleTimeoutMs: 20000,
  maxConnections: 100,
};

/** Starts the operations listener; resolves with its port (0 in the settings: any free port). */
export async function startOps(opts: OpsOptions): Promise<OpsListener> {
  let inFlight = 0;
  const limits: ListenerLimits = { ...OPS_LISTENER, ...opts.listener };
  const server: Server = createServer(listenerOptions(limits), (req, res) => {
    inFlight++;
    req.resume(); // no body is read
    handle(opts, req, res)
      .catch((err: unknown) => {
        if (!res.headersSent) json(res, 500, { error: (err as Error).message.slice(0, 200) });
        else res.destroy();
      })
      .finally(() => {
        inFlight--;
      });
  });
  capConnections(server, limits);
  const port = await listen(server as unknown as Parameters<typeof listen>[0], opts.host, opts.port);
  return { port, close: () => closeGracefully(server as unknown as Parameters<typeof closeGracefully>[0], () => inFlight, 2000) };
}

/** The default of `[ops] listen` for every service: empty, no listener. */
export const OPS_DEFAULTS = { listen: '' } as const;

/**
 * `[ops] listen` (host:port, an IPv6 address in brackets; empty: no listener):
 * the parsed address, undefined for none; a ConfigError naming `where` otherwise.
 */
export function parseOpsListen(value: string | undefined, where: string): { host: string; port: number } | undefined {
  const v = (value ?? '').trim();
  if (v === '') return undefined;
  try {
    return parseHostPort(v);
  } catch (err) {
    if (err instanceof HostPortError) throw new ConfigError(`${where}: [ops] listen ${err.message} (or empty: no listener)`);
    throw err;
  }
}

/** The [ops] section of a service's ini file (empty when absent). */
export function opsSection(file: string): Record<string, unknown> {
  const s = readIniFile(file, 'config').ops;
  return s && typeof s === 'object' ? s : {};
}

/** The ops listener's address from a config file's [ops] section (absent: the default, no listener); the one reader of every service. */
export function opsListenOf(section: Record<string, unknown> | undefined, where: string): { host: string; port: number } | undefined {
  const listen = section?.listen;
  return parseOpsListen(listen === undefined ? OPS_DEFAULTS.listen : String(listen), where);
}

/** A dependency's failure in words for /health/ready ("unavailable: keyd unreachable: ECONNREFUSED"), never an error class's name. */
export function unavailableText(err: unknown): string {
  // the innermost cause says it best (a reply's "Key service unavailable: unreachable" wraps "keyd unreachable: connect ECONNREFUSED …")
  let e = err;
  for (let depth = 0; depth < 5 && e instanceof Error && e.cause instanceof Error; depth++) e = e.cause;
  const text = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
  return `unavailable: ${text.length > 200 ? `${text.slice(0, 197)}...` : text || 'no reason given'}`;
}
