/**
 * The limits every listener of the project takes (docs/operations.md,
 * "Listeners: timeouts and connection caps"): the TLS handshake, the request
 * header block and the whole request each within a time, an idle kept-alive
 * connection closed after a time, and a cap on open connections (over it a
 * new connection is closed at once, before any TLS or HTTP work). Node's own
 * defaults let a client that opens a connection and never finishes its TLS
 * handshake keep it for 120 s, and any number of them: a few thousand such
 * sockets from one host exhaust the process's file descriptors.
 *
 * One set of settings, one function for the server options and one for the
 * cap, so that no server is made with a copy of its own.
 */
import type { Server as NetServer, Socket } from 'node:net';
import { defineSettings } from '../config/ini';

export interface ListenerLimits {
  /** Time to finish the TLS handshake from the first byte of the connection (TLS listeners). */
  readonly handshakeTimeoutMs: number;
  /** Time to receive a request's header block (at most requestTimeoutMs). */
  readonly headersTimeoutMs: number;
  /** Time to receive a whole request. */
  readonly requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this time. */
  readonly keepAliveTimeoutMs: number;
  /**
   * A connection without any traffic for this time is closed, whatever it waits for: one that sends no request at
   * all (Node's header timeout starts with the first byte), or that finished its TLS handshake and then fell silent.
   * At least the longest a request may take to be answered.
   */
  readonly idleTimeoutMs: number;
  /** Open connections at most; a new one over the cap is closed at once. */
  readonly maxConnections: number;
}

/** The defaults: a 10 s handshake and header block, 30 s for a request, 5 s kept alive, 60 s without traffic, 1000 connections. */
export const LISTENER_DEFAULTS: ListenerLimits = {
  handshakeTimeoutMs: 10000,
  headersTimeoutMs: 10000,
  requestTimeoutMs: 30000,
  keepAliveTimeoutMs: 5000,
  idleTimeoutMs: 60000,
  maxConnections: 1000,
};

/** The options of `http.createServer`/`https.createServer` for these limits (the handshake one only counts for TLS). */
export function listenerOptions(limits: ListenerLimits): {
  handshakeTimeout: number;
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  connectionsCheckingInterval: number;
} {
  const headers = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return {
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: headers,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often Node checks the header and request timeouts (its default, 30 s, would let a slow client keep its socket that long).
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headers / 4))),
  };
}

/**
 * Caps the server's open connections (`maxConnections`: Node closes a new one
 * over it at once) and closes a connection without traffic for `idleTimeoutMs`.
 * `onDrop` hears of each connection closed over the cap (rate-limit what it
 * logs: it is called once per connection).
 */
export function capConnections<S extends NetServer & { setTimeout(ms: number): unknown }>(
  server: S,
  limits: Pick<ListenerLimits, 'maxConnections' | 'idleTimeoutMs'>,
  onDrop?: () => void,
): S {
  server.maxConnections = limits.maxConnections;
  // with no 'timeout' listener on the server, Node destroys the idle socket
  server.setTimeout(limits.idleTimeoutMs);
  if (onDrop) server.on('drop', () => onDrop());
  // a TLS client that never finishes its handshake, or resets it: the socket's error is the client's, never the process's
  server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
  // once listening, a failed accept (EMFILE, ENFILE: out of file descriptors under a flood) is emitted as the server's
  // 'error' while it goes on listening; with no listener that would end the process. An error of listen itself
  // still reaches the caller's own listener (every caller has one while it starts).
  server.on('error', () => undefined);
  return server;
}

/**
 * A log line, at most one a minute, for connections closed over the cap:
 * `log` gets how many were dropped since the last line. Drops within the
 * minute after a line are written by a one-off timer at its end (unref'd:
 * it never keeps the process alive), so the last count is not lost when no
 * further drop comes.
 */
export function droppedConnectionsLog(service: string, max: number, log: (line: string) => void, everyMs = 60000): () => void {
  let dropped = 0;
  let last = -Infinity;
  let pending: NodeJS.Timeout | undefined;
  const write = () => {
    pending = undefined;
    if (dropped === 0) return;
    last = Date.now();
    log(`${service}: ${dropped} connection(s) closed at once: ${max} open already (max_connections)`);
    dropped = 0;
  };
  return () => {
    dropped++;
    const wait = last + everyMs - Date.now();
    if (wait <= 0) {
      if (pending) clearTimeout(pending);
      write();
    } else if (!pending) {
      pending = setTimeout(write, wait);
      pending.unref();
    }
  };
}

const MS = { type: 'num', min: 100, max: 600000, whole: true } as const;

/** `<section>.handshake_timeout_ms` and `<section>.max_connections` of a service's ini file, with their defaults. */
export function listenerSettings<S extends string>(section: S) {
  return defineSettings({
    [`${section}.handshake_timeout_ms`]: { ...MS, default: LISTENER_DEFAULTS.handshakeTimeoutMs },
    [`${section}.max_connections`]: { type: 'num', min: 1, max: 1000000, whole: true, default: LISTENER_DEFAULTS.maxConnections },
  } as Record<
    `${S}.handshake_timeout_ms` | `${S}.max_connections`,
    { type: 'num'; min: number; max: number; whole: true; default: number }
  >);
}
