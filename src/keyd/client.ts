/**
 * A client for keyd's HTTPS API with mutual TLS and keep-alive, for
 * gateways, inspectors and tools. Every call is bounded by a timeout; errors
 * come back as `KeydClientError` with keyd's code (or "unreachable" /
 * "timeout"), so callers can map them to SMTP replies (4xx for anything
 * transient).
 */
import { Agent, request } from 'node:https';

export interface KeydClientOptions {
  readonly url: string;
  /** Client certificate and key (PEM), issued by the org CA with the caller's role. */
  readonly cert: string;
  readonly key: string;
  /** CA certificates (PEM) that keyd's server certificate chains to. */
  readonly ca: readonly string[];
  /** Host name in keyd's certificate, when `url` uses an IP address. */
  readonly servername?: string;
  readonly timeoutMs?: number;
  readonly maxSockets?: number;
}

export class KeydClientError extends Error {
  constructor(readonly code: string, message: string, readonly status: number, readonly details?: Record<string, string>) {
    super(message);
    this.name = 'KeydClientError';
  }

  /** Transient: worth a retry later (SMTP 4xx). */
  get transient(): boolean {
    return this.status === 0 || this.status >= 500;
  }
}

export class KeydClient {
  private readonly agent: Agent;
  private readonly base: URL;

  constructor(private readonly opts: KeydClientOptions) {
    this.base = new URL(opts.url);
    this.agent = new Agent({
      keepAlive: true, maxSockets: opts.maxSockets ?? 16, cert: opts.cert, key: opts.key, ca: [...opts.ca],
      ...(opts.servername ? { servername: opts.servername } : {}),
    });
  }

  call<T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const timeoutMs = this.opts.timeoutMs ?? 5000;
    return new Promise<T>((resolve, reject) => {
      const req = request({
        protocol: 'https:', host: this.base.hostname, port: this.base.port || 443, path, method, agent: this.agent,
        headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
        ...(this.opts.servername ? { servername: this.opts.servername } : {}),
      }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', (err) => reject(new KeydClientError('unreachable', `keyd response failed: ${err.message}`, 0)));
        res.on('end', () => {
          clearTimeout(timer);
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(parts).toString('utf8'));
          } catch {
            reject(new KeydClientError('bad-response', `keyd answered ${res.statusCode} with a body that is not JSON`, res.statusCode ?? 0));
            return;
          }
          if (res.statusCode === 200) resolve(json as T);
          else {
            const e = (json as { error?: { code?: string; message?: string; details?: Record<string, string> } }).error ?? {};
            reject(new KeydClientError(e.code ?? 'error', e.message ?? `keyd answered ${res.statusCode}`, res.statusCode ?? 0, e.details));
          }
        });
      });
      const timer = setTimeout(() => req.destroy(new KeydClientError('timeout', `keyd did not answer within ${timeoutMs} ms`, 0)), timeoutMs);
      req.on('socket', (s) => s.setNoDelay(true));
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err instanceof KeydClientError ? err : new KeydClientError('unreachable', `keyd unreachable: ${err.message}`, 0));
      });
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
