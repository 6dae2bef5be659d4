/**
 * A client for keyd's HTTPS API with mutual TLS and keep-alive, for
 * gateways, inspectors and tools. Every call is bounded by a timeout; errors
 * come back as `KeydClientError` with keyd's code (or "unreachable" /
 * "timeout"), so callers can map them to SMTP replies (4xx for anything
 * transient).
 */
import { Agent } from 'node:https';
import { HttpsJsonError, requestJson } from '../net/https-json';

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
  /** The most bytes of one answer read (KEYD_ANSWER_MAX_BYTES when absent): a longer answer is refused as a temporary fault. */
  readonly maxAnswerBytes?: number;
}

/**
 * The default most bytes of one keyd answer a client reads (the gateway's `[keyd] max_answer_bytes`). The largest
 * answer a keyd gives in normal use is a list's resolve by a keyd of an earlier version: 10,000 members (the most a
 * list has) with the facts and signing certificates of its local members, about 11 MB with P-256 certificates
 * (~1.1 KB a member); this leaves room for longer certificates. This version's resolve is the addresses alone
 * (about 0.3 MB), the facts asked 500 at a time (about 0.6 MB).
 */
export const KEYD_ANSWER_MAX_BYTES = 32 * 1024 * 1024;

export class KeydClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly details?: Record<string, string>,
  ) {
    super(message);
    this.name = 'KeydClientError';
  }

  /** Transient: worth a retry later (SMTP 4xx); a keyd without the endpoint asked (an older one: `no-such-endpoint`) is one too. */
  get transient(): boolean {
    return this.status === 0 || this.status >= 500 || this.code === 'no-such-endpoint';
  }
}

export class KeydClient {
  private agent: Agent;
  private readonly base: URL;

  constructor(private readonly opts: KeydClientOptions) {
    this.base = new URL(opts.url);
    this.agent = this.agentFor(opts.cert, opts.key);
  }

  private agentFor(cert: string, key: string): Agent {
    return new Agent({
      keepAlive: true,
      maxSockets: this.opts.maxSockets ?? 16,
      cert,
      key,
      ca: [...this.opts.ca],
      ...(this.opts.servername ? { servername: this.opts.servername } : {}),
    });
  }

  /**
   * A renewed client certificate (docs/operations.md, "Renewals"): new
   * requests connect with it; requests under way finish on the old
   * connections, which close when idle.
   */
  setCredentials(cert: string, key: string): void {
    const old = this.agent;
    this.agent = this.agentFor(cert, key);
    setTimeout(() => old.destroy(), 30000).unref();
  }

  /**
   * One request. `headers`: more request headers, e.g. the console's
   * SSMAX-On-Behalf-Of (src/keyd/on-behalf.ts) naming the administrator it
   * acts for.
   */
  async call<T = Record<string, unknown>>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers?: Readonly<Record<string, string>>,
  ): Promise<T> {
    const timeoutMs = this.opts.timeoutMs ?? 5000;
    let r: { status: number; json: unknown };
    try {
      r = await requestJson({
        agent: this.agent,
        base: this.base,
        method,
        path,
        timeoutMs,
        maxBytes: this.opts.maxAnswerBytes ?? KEYD_ANSWER_MAX_BYTES,
        ...(headers ? { headers } : {}),
        ...(this.opts.servername ? { servername: this.opts.servername } : {}),
        ...(body === undefined ? {} : { body: Buffer.from(JSON.stringify(body)) }),
      });
    } catch (err) {
      if (!(err instanceof HttpsJsonError)) throw err;
      switch (err.failure) {
        case 'timeout':
          throw new KeydClientError('timeout', `keyd did not answer within ${timeoutMs} ms`, 0);
        case 'not-json':
          throw new KeydClientError('bad-response', `keyd answered ${err.status} with a body that is not JSON`, err.status);
        case 'response-failed':
          throw new KeydClientError('unreachable', `keyd response failed: ${err.detail}`, 0);
        case 'unreachable':
          throw new KeydClientError('unreachable', `keyd unreachable: ${err.detail}`, 0);
        case 'too-large':
          throw new KeydClientError(
            'answer-too-large',
            `keyd answered ${method} ${path.slice(0, 200)} with more than ${err.detail} bytes (the client's limit; gateway: [keyd] max_answer_bytes)`,
            0,
          );
      }
    }
    if (r.status === 200) return r.json as T;
    const e = (r.json as { error?: { code?: string; message?: string; details?: Record<string, string> } } | null)?.error ?? {};
    throw new KeydClientError(e.code ?? 'error', e.message ?? `keyd answered ${r.status}`, r.status, e.details);
  }

  close(): void {
    this.agent.destroy();
  }
}
