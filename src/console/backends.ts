/**
 * What the console talks to (docs/console.md), each over its existing
 * interface: keyd over mutual TLS with the console's certificate, naming the
 * logged-in administrator (SSMAX-On-Behalf-Of, src/keyd/on-behalf.ts); the
 * operations listeners (health and metrics, plain HTTP on loopback); the
 * gateway's quarantine store (LMDB beside the gateway, as `ssmax
 * quarantine`) and its SMTP port for a release. The console holds no key of
 * the organisation (only TLS client keys: its own, and optionally an
 * inspector certificate's for content.ts).
 */
import { request as httpRequest } from 'node:http';
import { KeydClient } from '../keyd/client';
import { ON_BEHALF_HEADER } from '../keyd/on-behalf';
import type { KeydConnection } from '../keyd/client-settings';

/** keyd, called by the console for one administrator (`certificate`: the DER of the certificate they logged in with). */
export class ConsoleKeyd {
  private readonly client: KeydClient;

  /** `target`: keyd as the console's config gives it (`ca`, `cert`, `key`: PEM text of the console's own role-console certificate). */
  constructor(target: KeydConnection) {
    this.client = new KeydClient({
      url: target.url,
      cert: target.cert,
      key: target.key,
      ca: target.ca,
      ...(target.servername ? { servername: target.servername } : {}),
      timeoutMs: target.timeoutMs,
      maxSockets: 8,
    });
  }

  /** A client with `call` (what src/abuse/resolve.ts needs) acting for the administrator. */
  for(certificate: Buffer): { call<T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> } {
    return { call: (method, path, body) => this.call(certificate, method, path, body) };
  }

  /** One request to keyd as the console, on behalf of the administrator whose certificate this is (header SSMAX-On-Behalf-Of). */
  call<T = Record<string, unknown>>(certificate: Buffer, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return this.client.call<T>(method, path, body, { [ON_BEHALF_HEADER]: certificate.toString('base64') });
  }

  close(): void {
    this.client.close();
  }
}

/** GET over plain HTTP (an operations listener), bounded in time and size; resolves with status and text, or rejects. */
export function getText(url: string, timeoutMs = 3000, maxBytes = 4 << 20): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) req.destroy(new Error(`answer over ${maxBytes} bytes`));
        else parts.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of a Prometheus text exposition whose names are in `names` (one pass, linear; comments skipped). */
export function parseMetrics(text: string, names: ReadonlySet<string>): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    const name = line.slice(0, brace >= 0 && brace < space ? brace : space);
    if (!names.has(name)) continue;
    const labels: Record<string, string> = {};
    let rest = line.slice(name.length);
    if (rest.startsWith('{')) {
      const end = rest.lastIndexOf('}');
      const body = rest.slice(1, end);
      // label after label from where the last one ended (sticky), stopping at the first that is not one: an
      // unanchored search would start again at every character of a malformed body (quadratic)
      const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/y;
      for (let m = label.exec(body); m; m = label.exec(body))
        labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(end + 1);
    }
    const value = Number(rest.trim().split(' ')[0]);
    if (Number.isFinite(value)) out.push({ name, labels, value });
  }
  return out;
}

export interface ServiceHealth {
  readonly service: string;
  readonly state: 'ready' | 'not-ready' | 'unreachable' | 'not-configured';
  readonly checks: Readonly<Record<string, string>>;
}

/** One service's readiness from its operations listener (`base`: http://host:port). */
export async function health(service: string, base: string | undefined): Promise<ServiceHealth> {
  if (!base) return { service, state: 'not-configured', checks: {} };
  try {
    const r = await getText(`${base}/health/ready`);
    const body = JSON.parse(r.text) as { checks?: Record<string, string> };
    return { service, state: r.status === 200 ? 'ready' : 'not-ready', checks: body.checks ?? {} };
  } catch (err) {
    return { service, state: 'unreachable', checks: { answer: (err as Error).message.slice(0, 200) } };
  }
}
