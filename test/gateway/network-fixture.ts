import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { createTransport } from 'nodemailer';
import { type Network, type OrgSpec, type UserSpec, startNetwork } from '../../src/demo/network';

export const ORGS: OrgSpec[] = [
  {
    domain: 'a.example',
    users: [
      { address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' },
      { address: 'dave@a.example', client: 'plain', password: 'pw-dave' },
    ],
  },
  {
    domain: 'b.example',
    policy: { default: 'opportunistic' },
    users: [
      { address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' },
      { address: 'carol@b.example', client: 'plain', password: 'pw-carol' },
      { address: 'erin@b.example', client: 'ssmax', password: 'pw-erin' },
    ],
  },
  { domain: 'c.example', users: [{ address: 'frank@c.example', client: 'plain', password: 'pw-frank' }] },
];

export async function network(specs: readonly OrgSpec[] = ORGS): Promise<Network> {
  return startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-gw-')), specs);
}

/** `specs` with further users per domain (e.g. individuals, for the consent tests). */
export function withUsers(specs: readonly OrgSpec[], extra: Readonly<Record<string, readonly UserSpec[]>>): OrgSpec[] {
  return specs.map((s) => ({ ...s, users: [...s.users, ...(extra[s.domain] ?? [])] }));
}

/** Plain SMTP (submission with AUTH when `auth` is given, else as a peer MTA). */
export async function smtp(
  port: number,
  from: string,
  to: string[],
  raw: Buffer | string,
  auth?: { user: string; pass: string },
): Promise<string> {
  const t = createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    ...(auth ? { auth } : {}),
    connectionTimeout: 10000,
    socketTimeout: 30000,
  });
  try {
    const r = await t.sendMail({ envelope: { from, to }, raw });
    return r.response;
  } catch (err) {
    return (err as { response?: string }).response ?? `ERROR ${(err as Error).message}`;
  } finally {
    t.close();
  }
}

export async function waitFor(cond: () => boolean, ms = 20000, explain: () => string = () => ''): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting\n${explain()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits until a process's output so far (`source`) matches `re`, failing with its tail. A line a
 * process logs while answering can reach the test's pipe after the answer itself, so a positive
 * check of a log is a wait, never a read of the output at one instant.
 */
export async function expectLogged(source: () => string, re: RegExp, ms = 15000): Promise<void> {
  if (re.global || re.sticky) throw new Error('expectLogged: a /g or /y pattern keeps state between tests');
  await waitFor(
    () => re.test(source()),
    ms,
    () => `nothing matching ${re} in the output:\n${source().slice(-3000)}`,
  );
}

/** Every file under `dir`, with its bytes (for the no-plaintext-at-rest check). */
export function filesUnder(dir: string): { path: string; bytes: Buffer }[] {
  const out: { path: string; bytes: Buffer }[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push({ path: p, bytes: readFileSync(p) });
    }
  };
  walk(dir);
  return out;
}

/** A raw SMTP dialogue over a plain socket (no client-side normalisation of line breaks); resolves to the reply to the final dot. */
export function rawSmtp(
  port: number,
  from: string,
  to: string[],
  data: Buffer,
  auth?: { user: string; pass: string },
  localAddress?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    const cmds: Buffer[] = [Buffer.from('EHLO test.example\r\n')];
    if (auth) cmds.push(Buffer.from(`AUTH PLAIN ${Buffer.from(`\0${auth.user}\0${auth.pass}`).toString('base64')}\r\n`));
    cmds.push(Buffer.from(`MAIL FROM:<${from}>\r\n`), ...to.map((t) => Buffer.from(`RCPT TO:<${t}>\r\n`)), Buffer.from('DATA\r\n'));
    cmds.push(Buffer.concat([data, Buffer.from(data.subarray(-2).toString() === '\r\n' ? '.\r\n' : '\r\n.\r\n')]), Buffer.from('QUIT\r\n'));
    let buf = '';
    let step = -1; // -1: greeting
    const replies: string[] = [];
    sock.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (;;) {
        const m = /^(\d{3})([ -])(.*)\r\n/.exec(buf);
        if (!m) break;
        buf = buf.slice(m[0].length);
        if (m[2] === '-') continue;
        replies.push(`${m[1]} ${m[3]}`);
        if (/^[45]/.test(m[1]!) && step >= 0 && step < cmds.length - 2) {
          sock.end();
          resolve(`${m[1]} ${m[3]}`);
          return;
        }
        step++;
        if (step === cmds.length - 1) {
          sock.end();
          resolve(replies[replies.length - 1]!);
          return;
        }
        sock.write(cmds[step]!);
      }
    });
    sock.on('error', reject);
  });
}

/**
 * One SMTP session kept open for many messages (load tests): EHLO, optional
 * AUTH PLAIN, then MAIL/RCPT/DATA per message; `send` resolves to the final
 * reply of that transaction (a 4xx/5xx at MAIL or RCPT ends it with RSET).
 */
export class SmtpSession {
  private buf = '';
  private waiting: ((line: string) => void)[] = [];
  private lines: string[] = [];
  private closed = false;

  private constructor(private readonly sock: import('node:net').Socket) {
    sock.on('data', (c: Buffer) => {
      this.buf += c.toString('latin1');
      for (;;) {
        const m = /^(\d{3})([ -])(.*)\r\n/.exec(this.buf);
        if (!m) break;
        this.buf = this.buf.slice(m[0].length);
        if (m[2] === '-') continue;
        const line = `${m[1]} ${m[3]}`;
        const w = this.waiting.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    const fail = () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w('421 connection closed');
    };
    sock.on('close', fail);
    sock.on('error', fail);
  }

  private reply(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.closed) return Promise.resolve('421 connection closed');
    return new Promise((r) => this.waiting.push(r));
  }

  private async cmd(text: string | Buffer): Promise<string> {
    this.sock.write(text);
    return this.reply();
  }

  get open(): boolean {
    return !this.closed;
  }

  static async open(port: number, auth?: { user: string; pass: string }): Promise<SmtpSession> {
    const s = new SmtpSession(connect(port, '127.0.0.1'));
    s.sock.setNoDelay(true);
    const greeting = await s.reply();
    if (!greeting.startsWith('220')) throw new Error(`SMTP greeting: ${greeting}`);
    const ehlo = await s.cmd('EHLO load.test\r\n');
    if (!ehlo.startsWith('250')) throw new Error(`EHLO: ${ehlo}`);
    if (auth) {
      const r = await s.cmd(`AUTH PLAIN ${Buffer.from(`\0${auth.user}\0${auth.pass}`).toString('base64')}\r\n`);
      if (!r.startsWith('235')) throw new Error(`AUTH: ${r}`);
    }
    return s;
  }

  /** `beforeData`: run once every RCPT was taken, before DATA (a test changes the world between RCPT and DATA). */
  async send(from: string, to: readonly string[], data: Buffer, beforeData?: () => Promise<void> | void): Promise<string> {
    let r = await this.cmd(`MAIL FROM:<${from}>\r\n`);
    if (!r.startsWith('250')) return this.abort(r);
    for (const t of to) {
      r = await this.cmd(`RCPT TO:<${t}>\r\n`);
      if (!r.startsWith('250')) return this.abort(r);
    }
    await beforeData?.();
    r = await this.cmd('DATA\r\n');
    if (!r.startsWith('354')) return this.abort(r);
    const stuffed = Buffer.from(data.toString('latin1').replace(/\r\n\./g, '\r\n..'), 'latin1');
    return this.cmd(Buffer.concat([stuffed, Buffer.from(stuffed.subarray(-2).toString() === '\r\n' ? '.\r\n' : '\r\n.\r\n')]));
  }

  private async abort(r: string): Promise<string> {
    if (!this.closed) await this.cmd('RSET\r\n');
    return r;
  }

  async close(): Promise<void> {
    if (!this.closed) await this.cmd('QUIT\r\n').catch(() => undefined);
    this.sock.destroy();
  }
}

/**
 * A minimal authoritative DNS server on 127.0.0.1 (UDP) answering TXT queries
 * from `zone` (name → records, each a list of strings) and A queries from
 * `addresses` (name → IPv4 address); NXDOMAIN for a name in neither.
 * For tests of DNS discovery through real processes.
 */
export async function startTxtServer(
  zone: Map<string, string[][]>,
  addresses: Map<string, string> = new Map(),
): Promise<{ port: number; queries: string[]; close(): Promise<void> }> {
  const { createSocket } = await import('node:dgram');
  const sock = createSocket('udp4');
  const queries: string[] = [];
  sock.on('message', (q: Buffer, rinfo) => {
    if (q.length < 12) return;
    let off = 12;
    const labels: string[] = [];
    while (off < q.length && q[off]! > 0) {
      const len = q[off]!;
      labels.push(q.subarray(off + 1, off + 1 + len).toString('latin1'));
      off += len + 1;
    }
    const qEnd = off + 5; // zero byte, QTYPE, QCLASS
    if (qEnd > q.length) return;
    const name = labels.join('.').toLowerCase();
    const qtype = q.readUInt16BE(off + 1);
    queries.push(name);
    const records = zone.get(name);
    const address = addresses.get(name); // A records (IPv4), for host names
    const known = records !== undefined || address !== undefined;
    const answers = qtype === 16 && records ? records : [];
    const header = Buffer.alloc(12);
    q.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (q.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2); // QR, AA, RD copied, NXDOMAIN when unknown
    header.writeUInt16BE(1, 4);
    const a =
      qtype === 1 && address !== undefined
        ? [Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]), Buffer.from(address.split('.').map(Number))])]
        : [];
    header.writeUInt16BE(answers.length + a.length, 6);
    const rrs = answers.map((strings) => {
      const rdata = Buffer.concat(
        strings.map((s) => Buffer.concat([Buffer.from([Buffer.byteLength(s, 'latin1')]), Buffer.from(s, 'latin1')])),
      );
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(16, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([rr, rdata]);
    });
    sock.send(Buffer.concat([header, q.subarray(12, qEnd), ...rrs, ...a]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, queries, close: () => new Promise<void>((r) => sock.close(() => r())) };
}
