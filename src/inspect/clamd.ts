/**
 * A ClamAV clamd client for inbound inspection (SSMAX §3.3): INSTREAM over
 * TCP or a unix socket (`zINSTREAM\0`, then chunks of [uint32 BE length]
 * [bytes], then four zero bytes; the answer `stream: OK` or `stream: NAME
 * FOUND`). Concurrency is bounded (a pool of at most `maxConnections` scans
 * at once); every scan has a timeout. An unreachable, slow or confused clamd
 * is a ClamdError — the gateway answers 4xx (never delivers unscanned mail
 * unless configured to tag-and-deliver). A message longer than clamd's
 * StreamMaxLength is answered `INSTREAM size limit exceeded. ERROR` (and
 * clamd closes the connection, so the rest of the message may not go:
 * EPIPE): ClamdError `too-large`, a property of the message, not a fault.
 */
import { type Socket, connect } from 'node:net';
import { Limit } from '../net/limit';

export interface ClamdOptions {
  readonly host?: string;
  readonly port?: number;
  readonly socketPath?: string;
  readonly timeoutMs?: number;
  readonly maxConnections?: number;
}

export type ScanResult = { readonly infected: false } | { readonly infected: true; readonly signature: string };

export class ClamdError extends Error {
  constructor(
    /** `busy`: no connection came free in time (clamd answers, but others are ahead): always for now, never a pass. */
    readonly code: 'unavailable' | 'timeout' | 'protocol' | 'too-large' | 'busy',
    message: string,
  ) {
    super(message);
    this.name = 'ClamdError';
  }
}

const CHUNK = 64 * 1024;

export class ClamdClient {
  private readonly limit: Limit;

  constructor(private readonly opts: ClamdOptions) {
    if (!opts.socketPath && !(opts.host && opts.port))
      throw new ClamdError('protocol', 'Cannot use clamd: give a socket path or a host and port');
    this.limit = new Limit(opts.maxConnections ?? 4);
  }

  private talk(send: (s: Socket) => void, timeoutMs = this.opts.timeoutMs ?? 10000): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = this.opts.socketPath ? connect(this.opts.socketPath) : connect(this.opts.port!, this.opts.host!);
      const parts: Buffer[] = [];
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new ClamdError('timeout', `clamd did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.setNoDelay(true);
      sock.on('connect', () => send(sock));
      sock.on('data', (c: Buffer) => parts.push(c));
      let failed: NodeJS.ErrnoException | undefined;
      // an error after clamd answered (it closes the connection on a stream over its StreamMaxLength while the rest is
      // still being written: EPIPE) leaves the answer to be read at 'close', which always follows
      sock.on('error', (err: NodeJS.ErrnoException) => (failed ??= err));
      sock.on('close', () => {
        clearTimeout(timer);
        const answer = withoutTrailingNuls(Buffer.concat(parts).toString('utf8')).trim();
        if (failed && answer === '') reject(new ClamdError('unavailable', `clamd unreachable: ${failed.code ?? failed.message}`));
        else resolve(answer);
      });
    });
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.talk((s) => s.end('zPING\0'))) === 'PONG';
    } catch {
      return false;
    }
  }

  async scan(data: Buffer): Promise<ScanResult> {
    // the whole scan, its wait for a connection included, within timeout_ms: a slow clamd makes later scans fail for
    // now (4xx, retried) rather than queue without end behind it, each holding its message's plaintext
    const timeoutMs = this.opts.timeoutMs ?? 10000;
    const deadline = Date.now() + timeoutMs;
    // a scan that had to wait in line and then runs out of time ran out of it in the line: busy, not clamd's timeout
    const waited = this.limit.active >= this.limit.max;
    const release = await this.limit.acquireWithin(timeoutMs);
    if (!release)
      throw new ClamdError(
        'busy',
        `clamd did not answer within ${timeoutMs} ms: all ${this.limit.max} connections busy, no turn came (${this.limit.queued} waiting)`,
      );
    try {
      const answer = await this.talk(
        (s) => {
          s.write('zINSTREAM\0');
          for (let off = 0; off < data.length; off += CHUNK) {
            const piece = data.subarray(off, off + CHUNK);
            const len = Buffer.alloc(4);
            len.writeUInt32BE(piece.length);
            s.write(len);
            s.write(piece);
          }
          s.end(Buffer.alloc(4));
        },
        Math.max(1, deadline - Date.now()),
      );
      if (answer === 'stream: OK') return { infected: false };
      const found = /^stream: (.+) FOUND$/.exec(answer);
      if (found) return { infected: true, signature: found[1]! };
      if (answer === 'INSTREAM size limit exceeded. ERROR')
        throw new ClamdError('too-large', `${data.length} bytes are more than clamd scans in one stream (clamd's StreamMaxLength)`);
      throw new ClamdError('protocol', `clamd answered "${answer.slice(0, 120)}"`);
    } catch (err) {
      if (waited && err instanceof ClamdError && err.code === 'timeout')
        throw new ClamdError('busy', `${err.message}, after waiting in line for a connection (all ${this.limit.max} were busy)`);
      throw err;
    } finally {
      release();
    }
  }
}

/** The answer less its trailing NUL terminators: a loop from the end (`/\0+$/` is quadratic on a run of NULs followed by anything else). */
export function withoutTrailingNuls(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0) end--;
  return text.slice(0, end);
}
