/**
 * The one release (src/mail/release.ts) against an SMTP sink on loopback
 * standing in for the gateway (src/demo/mailbox.ts): what the store holds
 * after each way the gateway may not take the message, a second release
 * (in this process and from `ssmax quarantine release` processes: the state
 * in LMDB decides), an entry deleted meanwhile, a gateway refusing some
 * recipients. The release through the real gateway and console is in
 * test/console/console-release.test.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { type Socket, createServer } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { freePort } from '../../src/demo/haraka';
import { GATEWAY_DEFAULTS } from '../../src/gateway/config';
import { MailboxStore } from '../../src/demo/mailbox';
import { type QuarantineEntry, QuarantineStore, RELEASE_HEADER, ReleaseStateError, releaseInterrupted } from '../../src/inspect/quarantine';
import {
  RELEASE_CONNECT_TIMEOUT_MS,
  RELEASE_LEASE_MS,
  RELEASE_SOCKET_TIMEOUT_MS,
  ReinjectError,
  describeRelease,
  releaseHeld,
} from '../../src/mail/release';
import { main } from '../../src/cli/main';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { createOrgCa, createRootCa } from '../../src/pki/issue';
import { issueTlsCredentials } from '../../src/pki/tls-credentials';
import { waitFor } from '../gateway/network-fixture';
import { isLoopbackAddress } from '../../src/net/loopback';

let dir: string;
let store: QuarantineStore;
let sink: MailboxStore;
let port: number;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-release-'));
  store = new QuarantineStore(dir);
  sink = new MailboxStore();
  port = await freePort();
  await sink.listen(port);
});

afterEach(async () => {
  await sink.close();
  await store.close();
});

const hold = () =>
  store.hold({
    direction: 'outbound',
    from: 'a@a.example',
    rcpts: ['b@b.example'],
    rule: 'r',
    message: Buffer.from('Subject: x\r\n\r\nCIPHERTEXT\r\n'),
  });

test('taken (250): the reply is returned, the release field is on top, the entry is removed; a second release finds nothing and sends nothing', async () => {
  const id = await hold();
  const done = await releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  expect(done?.reply).toMatch(/^250 /);
  expect(done?.refused).toEqual([]);
  expect(sink.mails).toHaveLength(1);
  expect(sink.mails[0]!.raw.toString()).toMatch(new RegExp(`^${RELEASE_HEADER}: ${id} [0-9a-f]{24}\\r\\n`));
  expect(store.get(id)).toBeUndefined();
  expect(await releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port })).toBeUndefined();
  expect(await releaseHeld(store, 'q-none-000000000000', RELEASE_HEADER, { host: '127.0.0.1', port })).toBeUndefined();
  expect(sink.mails).toHaveLength(1);
});

test('refused (451 at the end of DATA): a ReinjectError with the reply; the entry is held again', async () => {
  const id = await hold();
  sink.refuse = '4.3.0 try again later';
  await expect(releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port })).rejects.toThrow(
    new ReinjectError(`cannot re-inject ${id}: 451 4.3.0 try again later`),
  );
  expect(store.get(id)?.state).toBe('held');
  expect(sink.mails).toHaveLength(0);
});

test('nothing listening: the entry is held again', async () => {
  const id = await hold();
  const closed = await freePort();
  await expect(releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port: closed })).rejects.toThrow(/ECONNREFUSED/);
  expect(store.get(id)?.state).toBe('held');
});

test('the gateway consumed the release, then did not take the message: the entry is held again, not lost', async () => {
  const id = await hold();
  sink.delayMs = 1500;
  sink.refuse = '4.3.0 fault after the inspection';
  const release = releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  await waitFor(() => store.get(id)?.state === 'releasing');
  expect(await store.consumeRelease(id, store.get(id)!.release!.token)).toBe(true); // as the gateway's inspection step does
  expect(store.get(id)?.state).toBe('released');
  await expect(release).rejects.toThrow(/451 4\.3\.0 fault after the inspection/);
  expect(store.get(id)).toMatchObject({ id, state: 'held', rcpts: ['b@b.example'] });
  expect(store.get(id)?.release).toBeUndefined();
  expect(Buffer.from(store.get(id)!.message).toString()).toMatch(/CIPHERTEXT/);
});

test('a second release of the same entry while the first is under way is refused by the store; one message is sent', async () => {
  const id = await hold();
  sink.delayMs = 300;
  const first = releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  await waitFor(() => store.get(id)?.state === 'releasing');
  const second = releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  await expect(second).rejects.toThrow(ReleaseStateError);
  await expect(second).rejects.toThrow(new RegExp(`^a release of ${id} is under way \\(since `));
  expect((await first)?.reply).toMatch(/^250 /);
  expect(sink.mails).toHaveLength(1);
});

test('an entry the gateway let pass (released) is not released again: a clear error, nothing sent', async () => {
  const id = await hold();
  sink.delayMs = 1500;
  const first = releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  await waitFor(() => store.get(id)?.state === 'releasing');
  expect(await store.consumeRelease(id, store.get(id)!.release!.token)).toBe(true);
  await expect(releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port })).rejects.toThrow(
    new RegExp(`^${id} was already released`),
  );
  await first;
  expect(sink.mails).toHaveLength(1);
  expect(store.get(id)).toBeUndefined();
});

const bin = join(__dirname, '..', '..', 'bin', 'ssmax');

/** `ssmax quarantine release` as its own process (the compiled CLI: npm run build). */
function cli(id: string, ...more: string[]): Promise<{ code: number | null; text: string }> {
  const proc = spawn(process.execPath, [bin, 'quarantine', 'release', id, '--state', dir, '--smtp', `127.0.0.1:${port}`, ...more], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const parts: Buffer[] = [];
  proc.stdout.on('data', (c: Buffer) => parts.push(c));
  proc.stderr.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve) => proc.on('close', (code) => resolve({ code, text: Buffer.concat(parts).toString() })));
}

test('across processes: a CLI release while this process releases is refused; two CLI releases at once send one message', async () => {
  const id = await hold();
  // the first release stays in flight until the CLI has answered, however long a loaded machine takes to start it
  let open!: () => void;
  sink.gate = new Promise<void>((resolve) => (open = resolve));
  const here = releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  await waitFor(() => store.get(id)?.state === 'releasing');
  const other = await cli(id).finally(() => {
    open();
    sink.gate = undefined;
  });
  expect(other.code).toBe(1);
  expect(other.text).toMatch(new RegExp(`a release of ${id} is under way`));
  expect((await here)?.reply).toMatch(/^250 /);
  expect(sink.mails).toHaveLength(1);

  // three at once: the winner's message stays in flight until both others have answered (a loaded machine can
  // start one CLI after the winner finished, which would then find no entry at all: exit 66)
  const id2 = await hold();
  let openBoth!: () => void;
  sink.gate = new Promise<void>((resolve) => (openBoth = resolve));
  let losers = 0;
  const both = await Promise.all(
    [0, 1, 2].map(() =>
      cli(id2).then((r) => {
        if (r.code !== 0 && ++losers === 2) openBoth();
        return r;
      }),
    ),
  ).finally(() => {
    openBoth();
    sink.gate = undefined;
  });
  expect(both.map((r) => r.code).sort()).toEqual([0, 1, 1].sort());
  for (const r of both.filter((x) => x.code === 1)) expect(r.text).toMatch(new RegExp(`a release of ${id2} is under way`));
  expect(sink.mails.filter((m) => m.raw.toString().startsWith(`${RELEASE_HEADER}: ${id2} `))).toHaveLength(1);
  expect(store.get(id2)).toBeUndefined();
}, 30000);

test('an entry deleted while its release was under way is not recreated when the gateway does not take it; the error says so', async () => {
  const id = await hold();
  sink.delayMs = 1000;
  sink.refuse = '4.3.0 try again later';
  const release = releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port });
  await waitFor(() => store.get(id)?.state === 'releasing');
  expect(await store.delete(id)).toBe(true);
  const err = (await release.catch((e: unknown) => e)) as ReinjectError;
  expect(err).toBeInstanceOf(ReinjectError);
  expect(err.message).toBe(`cannot re-inject ${id}: 451 4.3.0 try again later; the entry was deleted meanwhile, so it is not held again`);
  expect(err.held).toBe(false);
  expect(store.get(id)).toBeUndefined();
});

test('putting the entry back fails: both errors are reported', async () => {
  class FailingStore extends QuarantineStore {
    override holdAgain(_e: QuarantineEntry): Promise<'held'> {
      return Promise.reject(new Error('MDB_MAP_FULL: Environment mapsize limit reached'));
    }
  }
  const failing = new FailingStore(mkdtempSync(join(tmpdir(), 'ssmax-release-')));
  try {
    const id = await failing.hold({
      direction: 'outbound',
      from: 'a@a.example',
      rcpts: ['b@b.example'],
      rule: 'r',
      message: Buffer.from('x'),
    });
    sink.refuse = '4.3.0 try again later';
    const err = (await releaseHeld(failing, id, RELEASE_HEADER, { host: '127.0.0.1', port }).catch((e: unknown) => e)) as ReinjectError;
    expect(err.message).toBe(
      `cannot re-inject ${id}: 451 4.3.0 try again later; and it could not be put back as held: MDB_MAP_FULL: Environment mapsize limit reached`,
    );
    expect(err.held).toBe(false);
  } finally {
    await failing.close();
  }
});

test('the gateway refuses some recipients: the others get the message, the refused stay held (and the outcome says so)', async () => {
  const partial = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo: (addr, _s, cb) =>
      addr.address === 'c@c.example' ? cb(Object.assign(new Error('5.1.1 no such user'), { responseCode: 550 })) : cb(),
    onData: (stream, session, cb) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('end', () => {
        got.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(parts) });
        cb();
      });
    },
  });
  const got: { to: string[]; raw: Buffer }[] = [];
  const p2 = await freePort();
  await new Promise<void>((r) => partial.listen(p2, '127.0.0.1', r));
  try {
    const id = await store.hold({
      direction: 'outbound',
      from: 'a@a.example',
      rcpts: ['b@b.example', 'c@c.example', 'd@d.example'],
      rule: 'r',
      message: Buffer.from('Subject: x\r\n\r\nCIPHERTEXT\r\n'),
    });
    const done = (await releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port: p2 }))!;
    expect(done.reply).toMatch(/^250 /);
    expect(done.refused).toEqual([{ rcpt: 'c@c.example', reply: expect.stringMatching(/^550 5\.1\.1 no such user/) as string }]);
    expect(describeRelease(done)).toMatch(/; refused for c@c\.example \(550 5\.1\.1 no such user\): held again for those recipients$/);
    expect(got).toHaveLength(1);
    expect(got[0]!.to).toEqual(['b@b.example', 'd@d.example']);
    const e = store.get(id)!;
    expect(e).toMatchObject({ state: 'held', rcpts: ['c@c.example'] });
    expect(e.note).toMatch(/refused for c@c\.example \(550 5\.1\.1 no such user\)/);
    // released again, it goes to the refused recipient only
    const again = (await releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port }))!;
    expect(again.refused).toEqual([]);
    expect(sink.mails.map((m) => m.to)).toEqual([['c@c.example']]);
    expect(store.get(id)).toBeUndefined();
  } finally {
    await new Promise<void>((r) => partial.close(() => r()));
  }
});

test('a release process killed midway (SIGKILL while its SMTP peer is silent) holds the entry for its lease only; then the entry shows held and a second release delivers exactly once', async () => {
  const id = await hold();
  // a stand-in for a gateway that accepts the connection and never answers: the release waits there, after marking the entry
  const held: Socket[] = [];
  const silent = createServer((s) => void held.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as { port: number }).port;
  try {
    const started = Date.now();
    const dead = spawn(
      process.execPath,
      [bin, 'quarantine', 'release', id, '--state', dir, '--smtp', `127.0.0.1:${silentPort}`, '--lease', '12'],
      {
        stdio: 'ignore',
      },
    );
    const exited = new Promise<NodeJS.Signals | null>((r) => dead.on('exit', (_c, sig) => r(sig)));
    await waitFor(() => held.length > 0 && store.get(id)?.state === 'releasing', 10000);
    dead.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const stuck = store.get(id)!;
    expect(stuck).toMatchObject({ state: 'releasing' });
    expect(stuck.release!.until! - stuck.release!.since).toBe(12000);
    expect(stuck.release!.since).toBeGreaterThanOrEqual(started);
    // within the lease the dead release still holds it: a second release is refused, nothing sent
    const early = await cli(id);
    expect(early.code).toBe(1);
    expect(early.text).toMatch(new RegExp(`a release of ${id} is under way`));
    expect(Date.now()).toBeLessThan(stuck.release!.until!); // (the refusal above came within the lease)
    expect(sink.mails).toHaveLength(0);
    // after the lease: shown as held, interrupted
    await waitFor(() => Date.now() >= stuck.release!.until!, 15000);
    expect(releaseInterrupted(store.get(id)!)).toBe(true);
    const show = spawnSync(process.execPath, [bin, 'quarantine', 'show', id, '--state', dir], { encoding: 'utf8' });
    expect(show.status).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({
      id,
      state: 'held',
      releaseInterrupted: expect.stringMatching(/can be released again/) as string,
    });
    // a second release (its own process) takes it over with a new token and delivers it, once
    const again = await cli(id);
    expect(again.code).toBe(0);
    expect(again.text).toMatch(new RegExp(`released ${id}: 250 `));
    expect(sink.mails).toHaveLength(1);
    const marker = new RegExp(`^${RELEASE_HEADER}: ${id} ([0-9a-f]{24})\\r\\n`).exec(sink.mails[0]!.raw.toString());
    expect(marker?.[1]).toBeDefined();
    expect(marker![1]).not.toBe(stuck.release!.token);
    expect(store.get(id)).toBeUndefined();
    // the dead release's token would get nothing at the gateway now, and a third release finds nothing to send
    expect(await store.consumeRelease(id, stuck.release!.token)).toBe(false);
    expect((await cli(id)).code).toBe(66);
    expect(sink.mails).toHaveLength(1);
  } finally {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
}, 60000);

test('a release that outlives its lease is taken over: the new release delivers once, the old one is never cut short and never holds the entry again', async () => {
  const id = await hold();
  const held: Socket[] = [];
  const silent = createServer((s) => void held.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    // the first release waits on a gateway that never answers, past its 1.5 s lease
    const first = releaseHeld(store, id, RELEASE_HEADER, {
      host: '127.0.0.1',
      port: (silent.address() as { port: number }).port,
      leaseMs: 1500,
    }).catch((e: unknown) => e);
    await waitFor(() => held.length > 0 && store.get(id)?.state === 'releasing', 10000);
    const dead = store.get(id)!.release!;
    await waitFor(() => Date.now() > dead.until!, 5000);
    // a second release takes the entry over (a new token) and the gateway stand-in takes it
    const second = (await releaseHeld(store, id, RELEASE_HEADER, { host: '127.0.0.1', port }))!;
    expect(second.reply).toMatch(/^250 /);
    expect(sink.mails).toHaveLength(1);
    expect(sink.mails[0]!.raw.toString()).not.toContain(dead.token);
    expect(store.get(id)).toBeUndefined();
    // the first is still waiting (not cut at any deadline of its own); when its connection ends it holds nothing again
    expect(held.every((s) => !s.destroyed)).toBe(true);
    for (const s of held) s.destroy();
    const err = (await first) as ReinjectError;
    expect(err).toBeInstanceOf(ReinjectError);
    expect(err.message).toMatch(/the entry was deleted meanwhile, so it is not held again/);
    expect(store.get(id)).toBeUndefined();
    expect(sink.mails).toHaveLength(1);
  } finally {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

test("a live gateway answers before a release gives up: the release's silence bound is longer than the gateway's hook timeout", () => {
  // a release cut while the gateway still works on the message would hold again a message the gateway may queue
  expect(RELEASE_SOCKET_TIMEOUT_MS).toBeGreaterThan(GATEWAY_DEFAULTS.hook_timeout_ms + 10_000);
});

test('the default lease is ten times the longest SMTP timeout of a release, as config/ssmax-console.ini says', () => {
  expect(Math.max(RELEASE_CONNECT_TIMEOUT_MS, RELEASE_SOCKET_TIMEOUT_MS)).toBe(60_000);
  expect(RELEASE_LEASE_MS).toBe(10 * RELEASE_SOCKET_TIMEOUT_MS);
  expect(readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-console.ini'), 'utf8')).toContain(
    `;release_lease_seconds=${RELEASE_LEASE_MS / 1000}\n`,
  );
});

describe('the release token and the password never cross the network in plaintext', () => {
  /** An address of this machine that is not loopback (a release to it must use STARTTLS); '127.1' names loopback but is no loopback literal. */
  const outside =
    Object.values(networkInterfaces())
      .flat()
      .find((i) => i && !i.internal && i.family === 'IPv4')?.address ?? '127.1';

  /** A gateway stand-in on every address: what it saw of AUTH and of messages, and whether the session was under TLS. */
  async function gatewayStandIn(tls?: { key: string; cert: string }) {
    const seen = { auth: [] as string[], data: [] as { secure: boolean; raw: string }[], starttls: 0 };
    const server = new SMTPServer({
      authOptional: true,
      logger: false,
      ...(tls ? { key: tls.key, cert: tls.cert } : { disabledCommands: ['STARTTLS'] }),
      onSecure: (_socket, _session, cb) => {
        seen.starttls++;
        cb();
      },
      onAuth: (auth, _session, cb) => {
        seen.auth.push(`${auth.username}:${auth.password}`);
        cb(null, { user: auth.username });
      },
      onData: (stream, session, cb) => {
        const parts: Buffer[] = [];
        stream.on('data', (c: Buffer) => parts.push(c));
        stream.on('end', () => {
          seen.data.push({ secure: session.secure, raw: Buffer.concat(parts).toString() });
          cb();
        });
      },
    });
    const p = await freePort();
    await new Promise<void>((r) => server.listen(p, '0.0.0.0', () => r()));
    return { seen, port: p, close: () => new Promise<void>((r) => server.close(() => r())) };
  }

  test('which hosts are loopback (literal addresses only, as for clamd: a name is resolved by the system)', () => {
    for (const h of ['127.0.0.1', '127.9.9.9', '::1', '[::1]', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1'])
      expect([h, isLoopbackAddress(h)]).toEqual([h, true]);
    for (const h of [
      'localhost',
      'localhost.',
      '192.0.2.1',
      '10.0.0.1',
      'mx.a.example',
      '127.1',
      'localhost.example',
      '::',
      '::2',
      '128.0.0.1',
    ])
      expect([h, isLoopbackAddress(h)]).toEqual([h, false]);
  });

  test('a gateway that is not on loopback and offers no STARTTLS gets no AUTH and no message: a clear error, exit 69, still held', async () => {
    const gw = await gatewayStandIn();
    try {
      const id = await hold();
      const via = { host: outside, port: gw.port, user: 'admin@a.example', password: 'pw-secret' };
      const err = (await releaseHeld(store, id, RELEASE_HEADER, via).catch((e: unknown) => e)) as ReinjectError;
      expect(err).toBeInstanceOf(ReinjectError);
      expect(err.tls).toBe(true);
      expect(err.held).toBe(true);
      expect(err.message).toMatch(/is not loopback, so the release requires STARTTLS .* the gateway refused STARTTLS \(5\d\d/);
      expect(err.message).not.toContain('pw-secret');
      expect(store.get(id)?.state).toBe('held');
      // the command line: 69 (the gateway cannot be used as it is), the message stays held
      const pw = join(dir, 'pw');
      writeFileSync(pw, 'pw-secret\n');
      const out: string[] = [];
      const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
      const smtp = `${outside}:${gw.port}`;
      expect(
        await main(['quarantine', 'release', id, '--state', dir, '--smtp', smtp, '--user', 'admin@a.example', '--password-file', pw], io),
      ).toBe(69);
      expect(out.join('\n')).toMatch(/requires STARTTLS/);
      expect(store.get(id)?.state).toBe('held');
      expect(gw.seen).toEqual({ auth: [], data: [], starttls: 0 });
    } finally {
      await gw.close();
    }
  });

  test('with STARTTLS the release goes through, the certificate verified against the CA given; an unverified one gets nothing', async () => {
    const now = Math.floor(Date.now() / 1000) * 1000; // certificate times have whole seconds
    const validity = { notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 86_400_000) };
    const root = createRootCa({ ...validity, privateKey: generateP256KeyPair().privateKey });
    const org = createOrgCa(root, { ...validity, domains: ['a.example'], organisation: 'A', privateKey: generateP256KeyPair().privateKey });
    const creds = issueTlsCredentials(org, 'gateway', validity, ['mx.a.example']);
    const gw = await gatewayStandIn({ key: creds.key, cert: creds.cert + org.certificate.pem });
    try {
      const id = await hold();
      const via = { host: outside, port: gw.port, user: 'admin@a.example', password: 'pw-secret' };
      // not trusted (the system's roots): nothing sent, still held
      const err = (await releaseHeld(store, id, RELEASE_HEADER, via).catch((e: unknown) => e)) as ReinjectError;
      expect(err).toBeInstanceOf(ReinjectError);
      expect(err.tls).toBe(true);
      expect(err.message).toMatch(/TLS failed/);
      expect(store.get(id)?.state).toBe('held');
      // the right name is needed too
      const wrongName = (await releaseHeld(store, id, RELEASE_HEADER, {
        ...via,
        tls: { ca: root.certificate.pem, servername: 'other.a.example' },
      }).catch((e: unknown) => e)) as ReinjectError;
      expect(wrongName.tls).toBe(true);
      expect(gw.seen.auth).toEqual([]);
      expect(gw.seen.data).toEqual([]);
      // trusted: AUTH and the message under TLS only
      const done = await releaseHeld(store, id, RELEASE_HEADER, { ...via, tls: { ca: root.certificate.pem, servername: 'mx.a.example' } });
      expect(done?.reply).toMatch(/^250 /);
      expect(gw.seen.auth).toEqual(['admin@a.example:pw-secret']);
      expect(gw.seen.data).toHaveLength(1);
      expect(gw.seen.data[0]!.secure).toBe(true);
      expect(gw.seen.data[0]!.raw).toMatch(new RegExp(`^${RELEASE_HEADER}: ${id} [0-9a-f]{24}\\r\\n`));
      expect(store.get(id)).toBeUndefined();
    } finally {
      await gw.close();
    }
  });
});
