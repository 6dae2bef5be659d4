/**
 * A TLS endpoint in keyd's place, for the lying-key-service tests
 * (test/gateway/lying-keyd.test.ts):
 * it holds keyd's own server certificate and key (as an attacker who took
 * keyd's key, or keyd itself when compromised, would), authenticates the
 * caller's client certificate with keyd's client CAs like keyd does, forwards
 * every request to the real keyd with the credentials of the caller's role,
 * and lets the test rewrite each successful answer (`lie`).
 *
 * Why a proxy and not a fault switch inside keyd: the lie then needs no code
 * in the shipped key service at all, so there is no setting that could ever
 * turn it on in production, and the real keyd behind it stays untouched.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Server, createServer, request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { OrgNode } from '../../src/demo/network';

export const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64url');
export const unb64 = (s: unknown): Uint8Array => new Uint8Array(Buffer.from(String(s), 'base64url'));

export abstract class KeydProxy {
  /** Answers rewritten, per path. */
  readonly lies = new Map<string, number>();
  private server?: Server;
  private readonly roles: { fingerprint: string; cert: string; key: string }[];

  constructor(protected readonly node: OrgNode) {
    const pki = (f: string) => readFileSync(join(node.fx.dir, f), 'utf8');
    this.roles = ['gateway', 'inspector'].map((r) => ({
      fingerprint: new X509Certificate(pki(`${r}.pem`)).fingerprint256,
      cert: pki(`${r}.pem`),
      key: pki(`${r}.key`),
    }));
  }

  /**
   * Rewrites keyd's successful answer `json` to the request `asked` on `path`, in place; true when it lied
   * (counted in `lies`). Not called for keyd's refusals, which pass unchanged.
   */
  protected abstract lie(path: string, json: Record<string, unknown>, asked: Record<string, unknown>): boolean;

  async listen(): Promise<number> {
    const pki = (f: string) => readFileSync(join(this.node.fx.dir, f), 'utf8');
    this.server = createServer(
      { cert: pki('keyd.pem'), key: pki('keyd.key'), ca: this.node.fx.caPem, requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        this.handle(req, res).catch(() => {
          res.writeHead(502).end();
        });
      },
    );
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    return (this.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  }

  private count(path: string): void {
    this.lies.set(path, (this.lies.get(path) ?? 0) + 1);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const fingerprint = (req.socket as TLSSocket).getPeerCertificate().fingerprint256;
    const role = this.roles.find((r) => r.fingerprint === fingerprint);
    if (!role) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"unauthorized","message":"unknown client"}}');
      return;
    }
    const upstream = await new Promise<{ status: number; type: string; body: Buffer }>((resolve, reject) => {
      const up = request(
        {
          host: '127.0.0.1',
          port: this.node.ports.keyd,
          servername: `keyd.${this.node.domain}`,
          ca: this.node.fx.caPem,
          cert: role.cert,
          key: role.key,
          method: req.method,
          path: req.url,
          headers: { 'content-type': req.headers['content-type'] ?? 'application/json', 'content-length': body.length },
          agent: false,
        },
        (r) => {
          const out: Buffer[] = [];
          r.on('data', (c: Buffer) => out.push(c));
          r.on('end', () =>
            resolve({
              status: r.statusCode ?? 502,
              type: String(r.headers['content-type'] ?? 'application/json'),
              body: Buffer.concat(out),
            }),
          );
          r.on('error', reject);
        },
      );
      up.on('error', reject);
      up.end(body);
    });
    let answer = upstream.body;
    const path = (req.url ?? '').split('?')[0]!;
    const json = upstream.status === 200 && upstream.type.startsWith('application/json') ? parseJson(upstream.body) : undefined;
    if (json) {
      const lied = this.lie(path, json, body.length > 0 ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {});
      if (lied) {
        this.count(path);
        answer = Buffer.from(JSON.stringify(json));
      }
    }
    res.writeHead(upstream.status, { 'content-type': upstream.type, 'content-length': answer.length }).end(answer);
  }
}

function parseJson(body: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
