/**
 * The HTTPS plumbing keyd and the inspector share, on both sides: a JSON
 * request over a keep-alive agent with one overall timeout (client), and
 * listening / graceful closing of a service (server). What an answer means
 * — and how a failure is named to the caller — stays with each service.
 */
import type { Server } from 'node:https';
import { errnoText } from '../errors/errno';
import { type Agent, request } from 'node:https';

/**
 * Why a request got no JSON answer: the peer could not be reached, did not answer in time, cut the response,
 * answered with something that is not JSON, or with more bytes than the caller reads (`maxBytes`).
 */
export type RequestFailure = 'unreachable' | 'timeout' | 'response-failed' | 'not-json' | 'too-large';

export class HttpsJsonError extends Error {
  constructor(
    readonly failure: RequestFailure,
    readonly detail: string,
    readonly status = 0,
  ) {
    super(detail);
    this.name = 'HttpsJsonError';
  }
}

export interface JsonRequest {
  readonly agent: Agent;
  readonly base: URL;
  readonly servername?: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: Buffer;
  readonly contentType?: string;
  /** More request headers (e.g. SSMAX-On-Behalf-Of); they cannot replace accept, content-type or content-length. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** The most bytes of answer body read: a longer answer is cut off and refused ('too-large'), never parsed. */
  readonly maxBytes: number;
}

/**
 * Sends one request and resolves with the status and the parsed JSON body
 * (whatever the status); rejects with HttpsJsonError — `detail` is the
 * error code of the socket (ECONNREFUSED…), the timeout in ms, the HTTP
 * status of a body that is not JSON, or the byte limit an answer exceeds
 * (its content-length, or as its bytes arrive: the connection is then closed).
 */
export function requestJson(r: JsonRequest): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        protocol: 'https:',
        host: r.base.hostname,
        port: r.base.port || 443,
        path: r.path,
        method: r.method,
        agent: r.agent,
        headers: {
          ...r.headers,
          accept: 'application/json',
          ...(r.body ? { 'content-type': r.contentType ?? 'application/json', 'content-length': r.body.length } : {}),
        },
        ...(r.servername ? { servername: r.servername } : {}),
      },
      (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        const tooLarge = (): void => {
          clearTimeout(timer);
          reject(new HttpsJsonError('too-large', String(r.maxBytes), res.statusCode ?? 0));
          req.destroy();
        };
        if (Number(res.headers['content-length'] ?? 0) > r.maxBytes) return tooLarge();
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > r.maxBytes) return tooLarge();
          parts.push(c);
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(new HttpsJsonError('response-failed', err.message));
        });
        res.on('end', () => {
          clearTimeout(timer);
          if (size > r.maxBytes) return;
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(parts).toString('utf8'));
          } catch {
            reject(new HttpsJsonError('not-json', String(res.statusCode), res.statusCode ?? 0));
            return;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new HttpsJsonError('timeout', String(r.timeoutMs))), r.timeoutMs);
    req.on('socket', (s) => s.setNoDelay(true));
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof HttpsJsonError ? err : new HttpsJsonError('unreachable', errnoText(err)));
    });
    req.end(r.body);
  });
}

/** Listens on host:port (0: any free port); resolves with the port. */
export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}

/** Stops accepting, lets requests in flight (`inFlight()`) finish for at most `graceMs`, then closes every connection. */
export async function closeGracefully(server: Server, inFlight: () => number, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const deadline = Date.now() + graceMs;
  while (inFlight() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  server.closeAllConnections();
  await closed;
}
