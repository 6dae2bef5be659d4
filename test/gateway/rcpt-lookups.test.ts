/**
 * What a sender on port 25 can make keyd do, one RCPT at a time, through
 * real processes (a Haraka gateway with the ssmax plugin, keyd, the
 * publisher): RCPTs to unknown addresses of the organisation write nothing to
 * keyd's audit log and, repeated, reach keyd at most once per address within
 * [keyd] not_found_ttl_ms; RCPTs to a large list ask keyd only what the
 * address is, never for the list's members (those are asked once per post,
 * after DATA), and the members' facts are asked only once the posting policy
 * admitted the post.
 */
import { type Socket, connect } from 'node:net';
import type { Network, OrgNode } from '../../src/demo/network';
import type { KeydClient } from '../../src/keyd/client';
import { network, smtp } from './network-fixture';

jest.setTimeout(240000);

let net: Network;
let A: OrgNode;
let admin: KeydClient;

/** One SMTP session in which each command's one-line answers are read back in order (pipelined in groups). */
class Session {
  private buffer = '';
  private waiting: (() => void) | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.waiting?.();
    });
  }

  static async open(port: number): Promise<Session> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const s = new Session(socket);
    await s.replies(1);
    return s;
  }

  /** The next `n` final reply lines (a multi-line reply counts once, by its last line). */
  private async replies(n: number): Promise<string[]> {
    const out: string[] = [];
    while (out.length < n) {
      const nl = this.buffer.indexOf('\r\n');
      if (nl < 0) {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`no reply within 30 s; got ${JSON.stringify(out.slice(-3))}`)), 30000);
          this.waiting = () => {
            clearTimeout(t);
            this.waiting = undefined;
            resolve();
          };
        });
        continue;
      }
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 2);
      if (/^\d{3} /.test(line)) out.push(line);
    }
    return out;
  }

  /** Sends `commands` at once and returns their replies in order. */
  async send(...commands: string[]): Promise<string[]> {
    this.socket.write(commands.map((c) => `${c}\r\n`).join(''));
    return this.replies(commands.length);
  }

  close(): void {
    this.socket.end('QUIT\r\n');
  }
}

/** keyd's chain check as the admin: the number of audit records. */
async function auditCount(): Promise<number> {
  const r = await admin.call<{ ok: boolean; count: number }>('GET', '/v1/audit/verify');
  expect(r.ok).toBe(true);
  return r.count;
}

/** keyd's `ssmax_keyd_lookups_total{op}` over every result, from its /metrics. */
async function lookups(op: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${A.ports.ops.keyd}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(/^ssmax_keyd_lookups_total\{([^}]*)\} (\d+)$/gm)) if (m[1]!.includes(`op="${op}"`)) sum += Number(m[2]);
  return sum;
}

/** RCPTs to `rcpts` from a sender on the Internet, 100 per transaction, pipelined; the replies. */
async function rcptsTo(rcpts: readonly string[]): Promise<string[]> {
  const s = await Session.open(A.ports.smtp);
  try {
    await s.send('EHLO mx.elsewhere.example');
    const out: string[] = [];
    for (let i = 0; i < rcpts.length; i += 100) {
      const [mail] = await s.send('MAIL FROM:<someone@elsewhere.example>');
      expect(mail).toMatch(/^250 /);
      out.push(...(await s.send(...rcpts.slice(i, i + 100).map((r) => `RCPT TO:<${r}>`))));
      await s.send('RSET');
    }
    return out;
  } finally {
    s.close();
  }
}

beforeAll(async () => {
  net = await network([
    {
      domain: 'a.example',
      users: [
        { address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' },
        { address: 'carol@a.example', client: 'plain', password: 'pw-carol' },
        { address: 'dave@a.example', client: 'plain', password: 'pw-dave' },
      ],
    },
  ]);
  A = net.org('a.example');
  admin = A.admin();
  const members = Array.from({ length: 2000 }, (_, i) => `member${String(i).padStart(4, '0')}@a.example`);
  await admin.call('POST', '/v1/lists', { address: 'big@a.example', policy: 'open', members });
});

afterAll(async () => {
  admin?.close();
  await net?.stop();
});

test('2,000 RCPTs to unknown addresses: no audit record at keyd, at most one question per address within not_found_ttl_ms', async () => {
  const before = await auditCount();
  const asked = await lookups('directory.address');
  const unknown = Array.from({ length: 2000 }, (_, i) => `nobody${i % 40}@a.example`);
  const started = Date.now();
  const replies = await rcptsTo(unknown);
  const elapsed = Date.now() - started;
  expect(replies).toHaveLength(2000);
  for (const r of replies) expect(r).toMatch(/^550 5\.1\.1 /);
  expect(await auditCount()).toBe(before);
  const questions = (await lookups('directory.address')) - asked;
  expect(questions).toBeGreaterThanOrEqual(40);
  // 40 addresses, each asked again at most once per 5 s (the default not_found_ttl_ms) the RCPTs took: a slow
  // machine asks more often, a gateway that does not keep its answers asks up to 2,000 times
  expect(questions).toBeLessThanOrEqual(40 * (1 + Math.ceil(elapsed / 5000)));
  expect(questions).toBeLessThan(2000 / 4);
  expect(await lookups('directory.user')).toBe(0);
  expect(await lookups('list.resolve')).toBe(0);
});

test('RCPTs to a list of 2,000 members are accepted without asking keyd for its members', async () => {
  const before = await auditCount();
  const replies = await rcptsTo(Array.from({ length: 300 }, () => 'big@a.example'));
  for (const r of replies) expect(r).toMatch(/^250 /);
  expect(await lookups('list.resolve')).toBe(0);
  expect(await auditCount()).toBe(before);
  // a local user still is one, and a suspended one is refused at once
  expect(await rcptsTo(['alice@a.example'])).toEqual([expect.stringMatching(/^250 /)]);
  await admin.call('POST', '/v1/registry/users/alice%40a.example/status', { status: 'suspended' });
  expect(await rcptsTo(['alice@a.example'])).toEqual([expect.stringMatching(/^550 5\.1\.1 /)]);
});

test("after DATA: the list's members once per post, their facts only once the posting policy admitted it", async () => {
  await admin.call('POST', '/v1/lists', { address: 'club@a.example', policy: 'members', members: ['alice@a.example', 'carol@a.example'] });
  const post = (from: string) =>
    Buffer.from(
      `From: ${from}\r\nTo: club@a.example\r\nSubject: hello\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <${Date.now()}.${from}>\r\n` +
        'MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n',
    );
  const [resolved, facts] = [await lookups('list.resolve'), await lookups('directory.users')];
  // dave is no member: refused on the list as keyd resolved it, and no member's facts were asked for
  expect(
    await smtp(A.ports.smtp, 'dave@a.example', ['club@a.example'], post('dave@a.example'), { user: 'dave@a.example', pass: 'pw-dave' }),
  ).toMatch(/^550 5\.7\.2 /);
  expect(await lookups('list.resolve')).toBe(resolved + 1);
  expect(await lookups('directory.users')).toBe(facts);
  // carol is one: the post goes out, the members' facts asked in one request
  const before = A.mailbox.mails.length;
  expect(
    await smtp(A.ports.smtp, 'carol@a.example', ['club@a.example'], post('carol@a.example'), { user: 'carol@a.example', pass: 'pw-carol' }),
  ).toMatch(/^250 /);
  expect(await lookups('list.resolve')).toBe(resolved + 2);
  expect(await lookups('directory.users')).toBe(facts + 1);
  expect(A.mailbox.mails.length).toBeGreaterThan(before);
});

test('a recipient named again and again gets one copy, and a list named again and again is expanded once', async () => {
  await admin.call('POST', '/v1/lists', { address: 'pair@a.example', policy: 'open', members: ['carol@a.example'] });
  const resolved = await lookups('list.resolve');
  const [dave, carol] = [A.mailbox.for('dave@a.example').length, A.mailbox.for('carol@a.example').length];
  // carol submits (each local copy is sealed for its recipient): dave named 52 times, the list 50 times
  const s = await Session.open(A.ports.smtp);
  try {
    await s.send('EHLO client.a.example');
    expect(await s.send(`AUTH PLAIN ${Buffer.from('\0carol@a.example\0pw-carol').toString('base64')}`)).toEqual([
      expect.stringMatching(/^235 /),
    ]);
    const repeated = [
      ...Array.from({ length: 50 }, () => 'dave@a.example'),
      'DAVE@A.example',
      'Dave@a.EXAMPLE',
      ...Array.from({ length: 50 }, () => 'pair@a.example'),
    ];
    const replies = await s.send('MAIL FROM:<carol@a.example>', ...repeated.map((r) => `RCPT TO:<${r}>`), 'DATA');
    expect(replies.slice(0, -1).every((r) => r.startsWith('250'))).toBe(true);
    expect(replies.at(-1)).toMatch(/^354 /);
    const message =
      `From: carol@a.example\r\nTo: dave@a.example, pair@a.example\r\nSubject: once\r\nDate: ${new Date().toUTCString()}\r\n` +
      `Message-ID: <once.${Date.now()}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nonce\r\n.`;
    expect(await s.send(message)).toEqual([expect.stringMatching(/^250 /)]);
  } finally {
    s.close();
  }
  expect(A.mailbox.for('dave@a.example').length - dave).toBe(1);
  expect(A.mailbox.for('carol@a.example').length - carol).toBe(1);
  expect((await lookups('list.resolve')) - resolved).toBe(1);
});
