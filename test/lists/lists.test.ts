/**
 * Encrypted mailing lists end to end (docs/lists.md), through real
 * processes: Haraka gateways with the ssmax plugin, keyd over mutual TLS,
 * bundle publishers and mailbox stores of three organisations on loopback.
 * staff@a.example has members of every kind: a local SSMAX client (alice), a
 * local plain client (dave), a remote SSMAX client (bob@b.example) and a
 * remote plain client (carol@b.example).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listCapsules } from '../../src/envelope';
import { main } from '../../src/cli/main';
import type { Network, OrgNode } from '../../src/demo/network';
import { loadUserProfile } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { bodyOf, forwardMessage } from '../../src/user/forward';
import { simpleParser } from 'mailparser';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { filesUnder, network, smtp, waitFor } from '../gateway/network-fixture';
import { KeydClient } from '../../src/keyd/client';
import { Directory } from '../../src/directory/directory';
import { parse as parseIni } from 'ini';
import { setupGateway } from '../../src/gateway/setup';
import { addSeal } from '../../src/gateway/sealing';
import { verifyUnsealed } from '../../src/chain/verify-chain';

jest.setTimeout(240000);

let net: Network;
let A: OrgNode;
let B: OrgNode;

const adminIni = (o: OrgNode): string => {
  const file = join(o.fx.dir, 'list-admin.ini');
  writeFileSync(
    file,
    [
      '[keyd]',
      `url=https://127.0.0.1:${o.ports.keyd}`,
      `servername=keyd.${o.domain}`,
      'cert=admin.pem',
      'key=admin.key',
      'ca=org-ca.pem,root.pem',
      '',
    ].join('\n'),
  );
  return file;
};

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeAll(async () => {
  net = await network([
    {
      domain: 'a.example',
      users: [
        { address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' },
        { address: 'dave@a.example', client: 'plain', password: 'pw-dave' },
        { address: 'greg@a.example', client: 'ssmax', password: 'pw-greg' },
        { address: 'hana@a.example', client: 'ssmax', password: 'pw-hana' },
      ],
      // small enough to be met by a post of 100 KB to a list of a few members (every copy is the whole post)
      gatewayIni: ['[main]', `max_copy_bytes=${MAX_COPY_BYTES}`],
    },
    {
      domain: 'b.example',
      users: [
        { address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' },
        { address: 'carol@b.example', client: 'plain', password: 'pw-carol' },
      ],
    },
  ]);
  A = net.org('a.example');
  B = net.org('b.example');
});
afterAll(async () => {
  await net?.stop();
});

const profile = (o: OrgNode, who: string) => loadUserProfile(o.profiles[who]!);
const MAX_COPY_BYTES = 300_000;

function post(from: string, subject: string, secret: string, to = 'staff@a.example'): Buffer {
  return Buffer.from(
    `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <${subject.replace(/\W/g, '')}-${Date.now()}@x>\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${secret}\r\n`,
  );
}

async function send(
  o: OrgNode,
  who: string,
  subject: string,
  secret: string,
  to = 'staff@a.example',
): Promise<{ original: Buffer; response: string }> {
  const p = profile(o, who);
  const original = post(who, subject, secret, to);
  const sealed = await signAndEncrypt(p, original, { now: new Date() });
  try {
    return { original, response: (await submitMessage(p, sealed, { to: [to] })).response };
  } catch (err) {
    return { original, response: String((err as { response?: string }).response ?? (err as Error).message) };
  }
}

const copiesOf = (o: OrgNode, who: string, subject: string) =>
  o.mailbox.for(who).filter((m) => m.raw.toString('latin1').includes(`Subject: ${subject}`));

describe('ssmax list: create, add, show, policy at keyd (admin role, audited)', () => {
  test('create and add members of every kind; show lists them; --help on each subcommand', async () => {
    const ini = adminIni(A);
    expect((await cli('list', 'create', '--config', ini, 'staff@a.example')).out).toMatch(
      /Created list staff@a\.example \(policy members\)/,
    );
    const add = await cli(
      'list',
      'add',
      '--config',
      ini,
      'staff@a.example',
      'alice@a.example',
      'dave@a.example',
      'bob@b.example',
      'carol@b.example',
    );
    expect(add.code).toBe(0);
    expect(add.out).toMatch(/4 members/);
    const show = await cli('list', 'show', '--config', ini, 'staff@a.example', '--json');
    expect(JSON.parse(show.out)).toMatchObject({
      address: 'staff@a.example',
      policy: 'members',
      members: ['alice@a.example', 'dave@a.example', 'bob@b.example', 'carol@b.example'],
    });
    for (const sub of ['create', 'add', 'remove', 'show', 'policy', 'held', 'release'])
      expect((await cli('list', sub, '--help')).out).toMatch(new RegExp(`^Usage: ssmax list ${sub}`));
    // a list cannot contain itself; a list address of another organisation is refused
    expect((await cli('list', 'add', '--config', ini, 'staff@a.example', 'staff@a.example')).err).toMatch(/cannot be a member of itself/);
    expect((await cli('list', 'create', '--config', ini, 'x@b.example')).err).toMatch(/not an address of a\.example/);
  });
});

describe('a post from a local member reaches every member, each copy for that member alone', () => {
  const SECRET = 'List secret one: Heron-4410';
  let original: Buffer;
  beforeAll(async () => {
    const r = await send(A, 'alice@a.example', 'Post one', SECRET);
    original = r.original;
    expect(r.response).toMatch(/^250 /);
    await waitFor(
      () =>
        copiesOf(A, 'alice@a.example', 'Post one').length +
          copiesOf(A, 'dave@a.example', 'Post one').length +
          copiesOf(B, 'bob@b.example', 'Post one').length +
          copiesOf(B, 'carol@b.example', 'Post one').length >=
        4,
      60000,
    );
  });

  test('SSMAX members (local alice, remote bob) open their own copy: one capsule, theirs; List-Id; seal i=1 with ls=', async () => {
    for (const [o, who] of [
      [A, 'alice@a.example'],
      [B, 'bob@b.example'],
    ] as const) {
      const copies = copiesOf(o, who, 'Post one');
      expect(copies).toHaveLength(1);
      const raw = copies[0]!.raw;
      expect(copies[0]!.to).toEqual([who]);
      const p = profile(o, who);
      expect((await listCapsules(raw)).map((c) => c.keyId)).toEqual([p.encryption.keyId]);
      expect(raw.toString('latin1')).toMatch(/^List-Id: <staff\.a\.example>\r$/m);
      expect(raw.toString('latin1')).toMatch(/List-Post: <mailto:staff@a\.example>/);
      expect(raw.toString('latin1')).toMatch(/List-Unsubscribe: <mailto:staff-request@a\.example\?subject=unsubscribe>/);
      expect(raw.toString('latin1')).toMatch(/SSMAX-Seal: v=1; i=1; d=a\.example;[^]*?ls=staff@a\.example/);
      const opened = await openMessage(p, raw, { now: new Date() });
      expect(opened.plaintext).toEqual(original);
    }
    // the remote copy carries a.example's list seal and b.example's own
    const bobRaw = copiesOf(B, 'bob@b.example', 'Post one')[0]!.raw;
    expect((await openMessage(profile(B, 'bob@b.example'), bobRaw, { now: new Date() })).hops.map((h) => [h.instance, h.domain])).toEqual([
      [1, 'a.example'],
      [2, 'b.example'],
    ]);
  });

  test("no member can open another member's copy, and no copy names the other members", async () => {
    const aliceCopy = copiesOf(A, 'alice@a.example', 'Post one')[0]!.raw;
    await expect(openMessage(profile(B, 'bob@b.example'), aliceCopy, { now: new Date() })).rejects.toThrow();
    await expect(
      openMessage(profile(A, 'alice@a.example'), copiesOf(B, 'bob@b.example', 'Post one')[0]!.raw, { now: new Date() }),
    ).rejects.toThrow();
    for (const [o, who, others] of [
      [A, 'alice@a.example', ['bob@', 'carol@', 'dave@']],
      [B, 'bob@b.example', ['carol@', 'dave@']],
    ] as const) {
      const text = copiesOf(o, who, 'Post one')[0]!.raw.toString('latin1').split('\r\n\r\n')[0]!;
      for (const x of others) expect(text).not.toContain(x);
    }
  });

  test('plain-client members (local dave, remote carol) get the original on the internal hop, with the list fields', () => {
    for (const [o, who] of [
      [A, 'dave@a.example'],
      [B, 'carol@b.example'],
    ] as const) {
      const copies = copiesOf(o, who, 'Post one');
      expect(copies).toHaveLength(1);
      const text = copies[0]!.raw.toString('utf8');
      expect(text).toContain(SECRET);
      expect(text).toMatch(/ssmax-mode=transparent/);
      expect(text).toContain('List-Id: <staff.a.example>');
    }
  });
});

describe('a post from a member in another organisation', () => {
  const SECRET = 'List secret two: Otter-9902';
  beforeAll(async () => {
    const r = await send(B, 'bob@b.example', 'Post two', SECRET);
    expect(r.response).toMatch(/^250 /);
    await waitFor(
      () =>
        copiesOf(A, 'alice@a.example', 'Post two').length +
          copiesOf(A, 'dave@a.example', 'Post two').length +
          copiesOf(B, 'bob@b.example', 'Post two').length +
          copiesOf(B, 'carol@b.example', 'Post two').length >=
        4,
      60000,
    );
  });

  test("reaches every member; seal i=1 stays b.example's, a.example adds its list seal, b.example accepts it for its own users", async () => {
    const alice = copiesOf(A, 'alice@a.example', 'Post two')[0]!.raw;
    const opened = await openMessage(profile(A, 'alice@a.example'), alice, { now: new Date() });
    expect(opened.plaintext.toString()).toContain(SECRET);
    expect(opened.hops.map((h) => [h.instance, h.domain])).toEqual([
      [1, 'b.example'],
      [2, 'a.example'],
    ]);
    expect(alice.toString('latin1')).toMatch(/SSMAX-Seal: v=1; i=2; d=a\.example;[^]*?ls=staff@a\.example/);
    const bob = copiesOf(B, 'bob@b.example', 'Post two')[0]!.raw;
    expect((await openMessage(profile(B, 'bob@b.example'), bob, { now: new Date() })).hops.map((h) => [h.instance, h.domain])).toEqual([
      [1, 'b.example'],
      [2, 'a.example'],
      [3, 'b.example'],
    ]);
    expect(copiesOf(A, 'dave@a.example', 'Post two')[0]!.raw.toString()).toContain(SECRET);
    expect(copiesOf(B, 'carol@b.example', 'Post two')[0]!.raw.toString()).toContain(SECRET);
  });
});

describe('a post from a local plain-client member (transparent mode)', () => {
  test('is encrypted to the organisation key by the gateway, then expanded: SSMAX members open it, plain members read it', async () => {
    const SECRET = 'Plain poster secret: Wren-5150';
    const r = await smtp(A.ports.smtp, 'dave@a.example', ['staff@a.example'], post('dave@a.example', 'Post plain', SECRET), {
      user: 'dave@a.example',
      pass: 'pw-dave',
    });
    expect(r).toMatch(/^250 /);
    await waitFor(
      () =>
        copiesOf(A, 'alice@a.example', 'Post plain').length +
          copiesOf(B, 'bob@b.example', 'Post plain').length +
          copiesOf(B, 'carol@b.example', 'Post plain').length +
          copiesOf(A, 'dave@a.example', 'Post plain').length >=
        4,
      60000,
    );
    for (const [o, who] of [
      [A, 'alice@a.example'],
      [B, 'bob@b.example'],
    ] as const) {
      const raw = copiesOf(o, who, 'Post plain')[0]!.raw;
      expect(raw.toString('latin1')).not.toContain(SECRET);
      expect((await openMessage(profile(o, who), raw, { now: new Date() })).plaintext.toString()).toContain(SECRET);
    }
    expect(copiesOf(B, 'carol@b.example', 'Post plain')[0]!.raw.toString()).toContain(SECRET);
  });
});

describe('posting policy', () => {
  test('list operations need the admin role; the gateway role may only resolve', async () => {
    const gatewayClient = new KeydClient({
      url: `https://127.0.0.1:${A.ports.keyd}`,
      servername: 'keyd.a.example',
      cert: A.fx.clients.gateway.cert,
      key: A.fx.clients.gateway.key,
      ca: A.fx.caPem,
    });
    try {
      await expect(
        gatewayClient.call('POST', '/v1/lists/members', { address: 'staff@a.example', add: ['evil@c.example'] }),
      ).rejects.toMatchObject({ code: 'forbidden', status: 403 });
      await expect(gatewayClient.call('GET', '/v1/lists/nolist%40a.example/resolve')).rejects.toMatchObject({ status: 404 });
      // list targets in a batch (POST /v1/batch, as the gateway's fan-out sends them): each authorised on its own; an outsider and a local
      // user who is no member are refused in their slots, the members are served (a remote member: to its organisation's certificate)
      const { current } = await gatewayClient.call<{ current: string }>('GET', '/v1/public');
      const c = (await listCapsules(copiesOf(A, 'alice@a.example', 'Post one')[0]!.raw))[0]!;
      const blinded = {
        op: 'reencrypt',
        keyId: current,
        e: Buffer.from(c.e).toString('base64url'),
        f: Buffer.from(c.f).toString('base64url'),
      };
      const directory = new Directory({
        roots: [net.root.certificate.pem],
        staticPeers: { 'b.example': B.bundleUrl },
        hosts: { 'ssmax.b.example': '127.0.0.1' },
        resolver: null,
        fetchTimeoutMs: 3000,
        retryMs: 0,
      });
      const bundleB = await directory.lookup('b.example').finally(() => directory.close());
      const batch = await gatewayClient.call<{ results: { targetKeyId?: string; error?: { code: string; status: number } }[] }>(
        'POST',
        '/v1/batch',
        {
          ops: [
            { ...blinded, target: { kind: 'list', list: 'staff@a.example', member: 'alice@a.example' } },
            { ...blinded, target: { kind: 'list', list: 'staff@a.example', member: 'mallory@c.example' } },
            {
              ...blinded,
              target: {
                kind: 'list',
                list: 'staff@a.example',
                member: 'bob@b.example',
                certificate: bundleB.currentKey.certificate,
                chain: bundleB.orgCaChain,
                crls: bundleB.crls,
              },
            },
            { ...blinded, target: { kind: 'list', list: 'staff@a.example', member: 'greg@a.example' } },
          ],
        },
      );
      expect(batch.results[0]).toMatchObject({ targetKeyId: profile(A, 'alice@a.example').encryption.keyId });
      expect(batch.results[1]).toMatchObject({ error: { code: 'target-refused', status: 403 } });
      expect(batch.results[2]).toMatchObject({ targetKeyId: bundleB.currentKey.keyId });
      expect(batch.results[3]).toMatchObject({ error: { code: 'target-refused' } });
      // the endpoint of one capsule to many targets is gone: /v1/batch is the only batch
      await expect(
        gatewayClient.call('POST', '/v1/reencrypt/batch', {
          ...blinded,
          targets: [{ kind: 'list', list: 'staff@a.example', member: 'alice@a.example' }],
        }),
      ).rejects.toMatchObject({ status: 404 });
    } finally {
      gatewayClient.close();
    }
    const admin = A.admin();
    try {
      await expect(admin.call('GET', '/v1/lists/staff%40a.example/resolve')).rejects.toMatchObject({ code: 'forbidden' });
      // an administrator may not re-encrypt, in a batch either: refused in its slot
      const refused = await admin.call<{ results: { error?: { code: string } }[] }>('POST', '/v1/batch', {
        ops: [
          { op: 'reencrypt', keyId: 'x', e: 'x', f: 'x', target: { kind: 'list', list: 'staff@a.example', member: 'alice@a.example' } },
        ],
      });
      expect(refused.results[0]).toMatchObject({ error: { code: 'forbidden' } });
      // every list operation, refusals included, is in keyd's audit chain, which still verifies
      expect(await admin.call('GET', '/v1/audit/verify')).toMatchObject({ ok: true });
    } finally {
      admin.close();
    }
  });

  test("a non-member's post to a members-only list is refused with 5.7.2, nothing delivered", async () => {
    const before = A.mailbox.mails.length;
    const r = await send(A, 'greg@a.example', 'Not a member', 'nope');
    expect(r.response).toMatch(
      /550 5\.7\.2 Posting to this list is restricted to its members: greg@a\.example is not a member of staff@a\.example/,
    );
    await new Promise((res) => setTimeout(res, 1000));
    expect(A.mailbox.mails.length).toBe(before);
  });

  test('a post whose copies (one per member, each the whole post) would pass [main] max_copy_bytes is refused for good before any copy is made: 552 5.3.4 naming the setting', async () => {
    const before = A.mailbox.mails.length + B.mailbox.mails.length;
    const r = await send(A, 'alice@a.example', 'Too many copies', 'x'.repeat(MAX_COPY_BYTES / 2));
    expect(r.response).toMatch(
      /55\d 5\.3\.4 Message too large for its number of recipients: \d+ copies of \d+ bytes for the \d+ members of staff@a\.example would take \d+ bytes, over \[main\] max_copy_bytes \(300000\)/,
    );
    // the same to one user is within it; to two users, each a copy, it is not
    expect((await send(A, 'alice@a.example', 'One copy', 'x'.repeat(MAX_COPY_BYTES / 2), 'hana@a.example')).response).toMatch(/^250 /);
    const alice = profile(A, 'alice@a.example');
    const two = await signAndEncrypt(
      alice,
      post('alice@a.example', 'Two copies', 'x'.repeat(MAX_COPY_BYTES / 2), 'greg@a.example, hana@a.example'),
      {
        now: new Date(),
      },
    );
    const twoReply = await submitMessage(alice, two, { to: ['greg@a.example', 'hana@a.example'] }).then(
      (r) => r.response,
      (err: Error) => err.message,
    );
    expect(twoReply).toMatch(/55\d 5\.3\.4 Message too large for its number of recipients: 2 copies of \d+ bytes for its recipients/);
    await new Promise((res) => setTimeout(res, 1000));
    expect(A.mailbox.mails.length + B.mailbox.mails.length).toBe(before + 1);
  });

  test("a peer's sealed but unencrypted message whose copies (one sealed copy per recipient) would pass max_copy_bytes: 552 5.3.4 before any copy is made", async () => {
    // b.example's sealer alone, for mail sealed but not encrypted (a sender whose policy allowed plaintext)
    const iniB = parseIni(readFileSync(join(B.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    const gwB = setupGateway(iniB, B.harakaDir, () => undefined, 'ssmax-state-lists-sealer');
    try {
      const seal = async (to: string[], size: number) => {
        const lines = `${'x'.repeat(76)}\r\n`.repeat(Math.ceil(size / 78)); // SMTP lines: a 150 KB line would not arrive as sealed
        const message = post('bob@b.example', `Sealed plain ${to.length}`, lines, to.join(', '));
        const chain = await verifyUnsealed(message, {});
        return addSeal(
          gwB.deps,
          message,
          { from: 'own', chain, trackingToken: new Uint8Array(64).fill(7) },
          [{ name: 'e2e', result: 'none' }],
          to,
        );
      };
      const before = A.mailbox.mails.length;
      const two = ['greg@a.example', 'hana@a.example'];
      const refused = await smtp(A.ports.smtp, 'bob@b.example', two, await seal(two, MAX_COPY_BYTES / 2)).then(
        (r) => r,
        (err: Error) => err.message,
      );
      expect(refused).toMatch(
        /55\d 5\.3\.4 Message too large for its number of recipients: 2 copies of \d+ bytes for its recipients .*max_copy_bytes \(300000\)/,
      );
      // the same to one recipient is one copy, within it
      expect(await smtp(A.ports.smtp, 'bob@b.example', ['hana@a.example'], await seal(['hana@a.example'], MAX_COPY_BYTES / 2))).toMatch(
        /^250 /,
      );
      await new Promise((res) => setTimeout(res, 1000));
      expect(A.mailbox.mails.length).toBe(before + 1);
    } finally {
      await gwB.close();
    }
  });

  test('a submission whose copies for other domains (one per domain, each the whole message) would pass max_copy_bytes: 552 5.3.4 before any copy is made', async () => {
    const before = B.mailbox.mails.length;
    const lines = `${'x'.repeat(76)}\r\n`.repeat(Math.ceil(MAX_COPY_BYTES / 2 / 78));
    const dave = { user: 'dave@a.example', pass: 'pw-dave' };
    const refused = await smtp(
      A.ports.smtp,
      'dave@a.example',
      ['bob@b.example', 'someone@c.example'],
      post('dave@a.example', 'Two domains', lines, 'bob@b.example, someone@c.example'),
      dave,
    ).then(
      (r) => r,
      (err: Error) => err.message,
    );
    expect(refused).toMatch(
      /55\d 5\.3\.4 Message too large for its number of recipients: 2 copies of \d+ bytes for its recipients at 2 other domains/,
    );
    // to one other domain it is one copy, within it
    expect(
      await smtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], post('dave@a.example', 'One domain', lines, 'bob@b.example'), dave),
    ).toMatch(/^250 /);
    await waitFor(() => B.mailbox.mails.length === before + 1);
  });

  test('plain Internet mail to a list is no post: 550 5.7.1 naming the list, nothing handed to the mailbox store as if the list were a mailbox', async () => {
    const before = A.mailbox.mails.length;
    const r = await smtp(
      A.ports.smtp,
      'someone@internet.example',
      ['staff@a.example'],
      post('someone@internet.example', 'From the Internet', 'plain words'),
    );
    expect(r).toMatch(/^550 5\.7\.1 Mailing list takes only encrypted SSMAX mail \(.*\): staff@a\.example/);
    await new Promise((res) => setTimeout(res, 500));
    expect(A.mailbox.mails.length).toBe(before);
    expect(A.mailbox.for('staff@a.example')).toEqual([]);
  });

  test('a non-member logged in with his own password cannot post as a member (From and envelope dave): 550 5.7.1, nothing delivered', async () => {
    const before = A.mailbox.mails.length + B.mailbox.mails.length;
    const greg = { user: 'greg@a.example', pass: 'pw-greg' };
    for (const envelope of ['greg@a.example', 'dave@a.example'])
      expect(await smtp(A.ports.smtp, envelope, ['staff@a.example'], post('dave@a.example', 'As a member', 'nope'), greg)).toMatch(
        /^550 5\.7\.1 Sender address not owned by the authenticated user: (From|envelope sender) dave@a\.example, logged in as greg@a\.example/,
      );
    await new Promise((res) => setTimeout(res, 1000));
    expect(A.mailbox.mails.length + B.mailbox.mails.length).toBe(before);
  });

  test("moderated: a post is held encrypted, then a moderator's release reaches the members once", async () => {
    const ini = adminIni(A);
    expect(
      (await cli('list', 'create', '--config', ini, 'board@a.example', '--policy', 'moderated', '--moderator', 'alice@a.example')).code,
    ).toBe(0);
    expect((await cli('list', 'add', '--config', ini, 'board@a.example', 'alice@a.example', 'bob@b.example')).code).toBe(0);
    const SECRET = 'Held secret: Lark-1234';
    const r = await send(A, 'greg@a.example', 'Held post', SECRET, 'board@a.example');
    expect(r.response).toMatch(/^250 /);
    const state = join(A.harakaDir, 'ssmax-state', 'list-moderation');
    const held = await cli('list', 'held', '--state', state);
    const line = held.out.split('\n').find((l) => l.includes('board@a.example'));
    expect(line).toBeDefined();
    const id = line!.split(/\s+/)[0]!;
    // held encrypted: nothing under the gateway's folder holds the post's text
    for (const f of filesUnder(A.harakaDir)) expect(f.bytes.includes(SECRET)).toBe(false);
    await new Promise((res) => setTimeout(res, 1000));
    expect(copiesOf(A, 'alice@a.example', 'Held post')).toHaveLength(0);
    expect(copiesOf(B, 'bob@b.example', 'Held post')).toHaveLength(0);
    const rel = await cli('list', 'release', '--state', state, '--smtp', `127.0.0.1:${A.ports.smtp}`, id);
    expect(rel.out).toMatch(/released .*250 /);
    await waitFor(() => copiesOf(A, 'alice@a.example', 'Held post').length + copiesOf(B, 'bob@b.example', 'Held post').length >= 2, 60000);
    const opened = await openMessage(profile(B, 'bob@b.example'), copiesOf(B, 'bob@b.example', 'Held post')[0]!.raw, { now: new Date() });
    expect(opened.plaintext.toString()).toContain(SECRET);
    // a second release of the same entry is not honoured
    expect((await cli('list', 'release', '--state', state, '--smtp', `127.0.0.1:${A.ports.smtp}`, id)).code).not.toBe(0);
  });

  test("moderated: a peer's post held as it arrived, whose release is then refused (the list made members-only), gets that refusal and stays held", async () => {
    // the hold is in the delivery record under the post's seal identity, which its release shares (the release marker
    // changes no seal): the retry backstop must not take the release for a retry whose copies went ("Already delivered")
    const ini = adminIni(A);
    expect(
      (await cli('list', 'create', '--config', ini, 'board3@a.example', '--policy', 'moderated', '--moderator', 'alice@a.example')).code,
    ).toBe(0);
    expect((await cli('list', 'add', '--config', ini, 'board3@a.example', 'alice@a.example')).code).toBe(0);
    const state = join(A.harakaDir, 'ssmax-state', 'list-moderation');
    expect((await send(B, 'bob@b.example', 'Peer held post', 'Peer secret: Wren-77', 'board3@a.example')).response).toMatch(/^250 /);
    const heldLine = async () => (await cli('list', 'held', '--state', state)).out.split('\n').find((l) => l.includes('board3@a.example'));
    for (let i = 0; i < 120 && (await heldLine()) === undefined; i++) await new Promise((res) => setTimeout(res, 500));
    const id = (await heldLine())!.split(/\s+/)[0]!;
    expect(
      (await cli('list', 'policy', '--config', ini, 'board3@a.example', '--policy', 'members', '--moderator', 'alice@a.example')).code,
    ).toBe(0);
    const rel = await cli('list', 'release', '--state', state, '--smtp', `127.0.0.1:${A.ports.smtp}`, id);
    expect(rel.code).not.toBe(0);
    expect(`${rel.out}\n${rel.err}`).toMatch(/550 5\.7\.2/);
    expect(`${rel.out}\n${rel.err}`).not.toMatch(/Already delivered/);
    expect(await heldLine()).toMatch(/ held /); // kept, to be released (or deleted) by a moderator
    expect(copiesOf(A, 'alice@a.example', 'Peer held post')).toHaveLength(0);
  });

  test('a post to a moderated and a members-only list from a non-member: 550 5.7.2 for the whole, nothing held (no moderator can release it)', async () => {
    const state = join(A.harakaDir, 'ssmax-state', 'list-moderation');
    const heldLines = async () => (await cli('list', 'held', '--state', state)).out.split('\n').filter(Boolean).length;
    const before = await heldLines();
    const p = profile(A, 'greg@a.example');
    const sealed = await signAndEncrypt(p, post('greg@a.example', 'Both lists', 'nope', 'board@a.example, staff@a.example'), {
      now: new Date(),
    });
    const r = await submitMessage(p, sealed, { to: ['board@a.example', 'staff@a.example'] }).then(
      (ok) => ok.response,
      (err: unknown) => String((err as { response?: string }).response ?? (err as Error).message),
    );
    expect(r).toMatch(/550 5\.7\.2 Posting to this list is restricted to its members/);
    expect(await heldLines()).toBe(before);
  });

  // A post that ALONE is over a byte cap can never be held: a 4xx would have the sender's server retry it for ever (this
  // test asserted 4xx before the permanent and the temporary case were told apart); it is refused for good.
  test("moderated, a post that alone is over the queue's byte cap ([lists] moderation_max_bytes): refused for good (5xx 5.3.4 naming the setting), neither held nor sent", async () => {
    const state = join(A.harakaDir, 'ssmax-state', 'list-moderation');
    const heldLines = async () => (await cli('list', 'held', '--state', state)).out.split('\n').filter(Boolean).length;
    const before = await heldLines();
    const iniFile = join(A.harakaDir, 'config', 'ssmax.ini');
    const shipped = readFileSync(iniFile, 'utf8');
    writeFileSync(iniFile, `${shipped}\n[lists]\nmoderation_max_bytes=100\n`);
    await A.restartHaraka();
    try {
      const r = await send(A, 'greg@a.example', 'Over the cap', 'Capped secret', 'board@a.example');
      expect(r.response).toMatch(
        /55\d 5\.3\.4 Message too large to be held: the message takes \d+ bytes held \(message and record\), over \[lists\] moderation_max_bytes=100, the most held in all/,
      );
      expect(await heldLines()).toBe(before);
      await new Promise((res) => setTimeout(res, 1000));
      expect(copiesOf(A, 'alice@a.example', 'Over the cap')).toHaveLength(0);
    } finally {
      writeFileSync(iniFile, shipped);
      await A.restartHaraka();
    }
    expect((await send(A, 'greg@a.example', 'Under the cap', 'held again', 'board@a.example')).response).toMatch(/^250 /);
    expect(await heldLines()).toBe(before + 1);
  });

  test('moderated, the queue at its cap of posts ([lists] moderation_max_entries): a post that would fit once others are released is refused for now (4xx 4.3.1), held after a release', async () => {
    const state = join(A.harakaDir, 'ssmax-state', 'list-moderation');
    const held = async () => (await cli('list', 'held', '--state', state)).out.split('\n').filter(Boolean);
    const before = (await held()).length;
    const iniFile = join(A.harakaDir, 'config', 'ssmax.ini');
    const shipped = readFileSync(iniFile, 'utf8');
    writeFileSync(iniFile, `${shipped}\n[lists]\nmoderation_max_entries=${before + 1}\n`);
    await A.restartHaraka();
    try {
      expect((await send(A, 'greg@a.example', 'Count one', 'first of two', 'board@a.example')).response).toMatch(/^250 /);
      const lines = await held();
      expect(lines).toHaveLength(before + 1);
      const r = await send(A, 'greg@a.example', 'Count two', 'second of two', 'board@a.example');
      expect(r.response).toMatch(
        new RegExp(
          `45\\d 4\\.3\\.1 Storage for held messages is full, retry later: the store holds ${before + 1} messages, its cap \\(\\[lists\\] moderation_max_entries=${before + 1}\\)`,
        ),
      );
      expect(await held()).toHaveLength(before + 1);
      // a release frees its place: the sender's retry is held
      const id = lines[0]!.split(/\s+/)[0]!; // newest first: "Count one"
      expect((await cli('list', 'release', '--state', state, '--smtp', `127.0.0.1:${A.ports.smtp}`, id)).out).toMatch(/released .*250 /);
      await waitFor(() => copiesOf(A, 'alice@a.example', 'Count one').length >= 1, 60000);
      expect((await send(A, 'greg@a.example', 'Count two', 'second of two', 'board@a.example')).response).toMatch(/^250 /);
      expect(await held()).toHaveLength(before + 1);
      expect(copiesOf(A, 'alice@a.example', 'Count two')).toHaveLength(0);
    } finally {
      writeFileSync(iniFile, shipped);
      await A.restartHaraka();
    }
  });
});

describe('membership in time', () => {
  test('a removed member receives nothing of later posts; a member added later cannot open earlier posts', async () => {
    const ini = adminIni(A);
    expect((await cli('list', 'remove', '--config', ini, 'staff@a.example', 'bob@b.example')).code).toBe(0);
    expect((await cli('list', 'add', '--config', ini, 'staff@a.example', 'hana@a.example')).code).toBe(0);
    const r = await send(A, 'alice@a.example', 'Post three', 'After the change');
    expect(r.response).toMatch(/^250 /);
    await waitFor(
      () => copiesOf(B, 'carol@b.example', 'Post three').length >= 1 && copiesOf(A, 'hana@a.example', 'Post three').length >= 1,
      60000,
    );
    await new Promise((res) => setTimeout(res, 2000));
    expect(copiesOf(B, 'bob@b.example', 'Post three')).toHaveLength(0);
    // hana got the new post, none of the earlier ones, and cannot open an earlier copy
    expect(copiesOf(A, 'hana@a.example', 'Post one')).toHaveLength(0);
    await expect(
      openMessage(profile(A, 'hana@a.example'), copiesOf(A, 'alice@a.example', 'Post one')[0]!.raw, { now: new Date() }),
    ).rejects.toThrow();
    expect(
      (
        await openMessage(profile(A, 'hana@a.example'), copiesOf(A, 'hana@a.example', 'Post three')[0]!.raw, { now: new Date() })
      ).plaintext.toString(),
    ).toContain('After the change');
  });

  test("a post from a non-member in another organisation (bob, removed) is refused by the list's gateway with 5.7.2 (checked on the verified sender)", async () => {
    const r = await send(B, 'bob@b.example', 'Removed posts', 'should not pass');
    expect(r.response).toMatch(/^250 /); // b.example accepts its user's mail; a.example refuses the copy
    await waitFor(
      () =>
        /5\.7\.2 Posting to this list is restricted to its members: bob@b\.example is not a member of staff@a\.example/.test(
          A.haraka.logs() + B.haraka.logs(),
        ),
      60000,
      () => 'no 5.7.2 in the logs',
    );
    expect(copiesOf(A, 'alice@a.example', 'Removed posts')).toHaveLength(0);
  });
});

describe('loops', () => {
  test('a list that contains itself through another list: 5.4.6', async () => {
    const ini = adminIni(A);
    expect((await cli('list', 'create', '--config', ini, 'x@a.example', '--policy', 'open')).code).toBe(0);
    expect((await cli('list', 'create', '--config', ini, 'y@a.example', '--policy', 'open')).code).toBe(0);
    expect((await cli('list', 'add', '--config', ini, 'x@a.example', 'alice@a.example', 'y@a.example')).code).toBe(0);
    expect((await cli('list', 'add', '--config', ini, 'y@a.example', 'x@a.example')).code).toBe(0);
    const r = await send(A, 'alice@a.example', 'Loop', 'round and round', 'x@a.example');
    expect(r.response).toMatch(/550 5\.4\.6 Mailing list loop detected: list x@a\.example contains itself/);
  });

  test('an automatic reply (Auto-Submitted) to a list is dropped (RFC 3834): accepted, no copy', async () => {
    const p = profile(A, 'alice@a.example');
    const sealed = await signAndEncrypt(p, post('alice@a.example', 'Auto reply', 'I am away'), { now: new Date() });
    const withAuto = Buffer.concat([Buffer.from('Auto-Submitted: auto-replied\r\n'), sealed]);
    const r = await submitMessage(p, withAuto, { to: ['staff@a.example'] });
    expect(r.response).toMatch(/^250 /);
    await new Promise((res) => setTimeout(res, 2000));
    expect(copiesOf(A, 'dave@a.example', 'Auto reply')).toHaveLength(0);
    expect(copiesOf(B, 'carol@b.example', 'Auto reply')).toHaveLength(0);
  });

  test("two organisations' lists that contain each other: the post coming back to the first organisation is refused (b.example's list seal on a.example's post is a nested list's, which needs [chain] resealers); each member got one copy", async () => {
    const iniA = adminIni(A);
    const iniB = adminIni(B);
    expect((await cli('list', 'create', '--config', iniA, 'ring@a.example', '--policy', 'open')).code).toBe(0);
    expect((await cli('list', 'add', '--config', iniA, 'ring@a.example', 'alice@a.example', 'ring@b.example')).code).toBe(0);
    expect((await cli('list', 'create', '--config', iniB, 'ring@b.example', '--policy', 'open')).code).toBe(0);
    expect((await cli('list', 'add', '--config', iniB, 'ring@b.example', 'bob@b.example', 'ring@a.example')).code).toBe(0);
    const r = await send(A, 'alice@a.example', 'Ring', 'once only', 'ring@a.example');
    expect(r.response).toMatch(/^250 /);
    await waitFor(
      () =>
        /seal i=2 by b\.example re-seals mail of a\.example \(From domain a\.example\) and b\.example is not an allowed resealer/.test(
          A.haraka.logs() + B.haraka.logs(),
        ),
      60000,
      () => 'no refusal of the nested list seal in the logs',
    );
    await waitFor(() => copiesOf(B, 'bob@b.example', 'Ring').length >= 1 && copiesOf(A, 'alice@a.example', 'Ring').length >= 1, 30000);
    await new Promise((res) => setTimeout(res, 3000));
    expect(copiesOf(A, 'alice@a.example', 'Ring')).toHaveLength(1);
    expect(copiesOf(B, 'bob@b.example', 'Ring')).toHaveLength(1);
    // bob's copy went through both lists: seal i=1 a.example (ring@a), i=2 b.example (ring@b, for bob)
    const raw = copiesOf(B, 'bob@b.example', 'Ring')[0]!.raw;
    expect(raw.toString('latin1')).toMatch(/SSMAX-Seal: v=1; i=2; d=b\.example;[^]*?ls=ring@b\.example/);
    const hops = (await openMessage(profile(B, 'bob@b.example'), raw, { now: new Date() })).hops;
    expect(hops.map((h) => [h.instance, h.domain])).toEqual([
      [1, 'a.example'],
      [2, 'b.example'],
    ]);
  });
});

describe('in-organisation forwarding (ssmax user forward, SSMAX §3.4)', () => {
  test('alice forwards her copy inside the organisation (hana) and to another organisation (bob): the content ciphertext never changes', async () => {
    const alice = profile(A, 'alice@a.example');
    const received = copiesOf(A, 'alice@a.example', 'Post one')[0]!.raw;
    const original = (await openMessage(alice, received, { now: new Date() })).plaintext;
    // through the CLI: the received copy in, the message to submit out
    const dir = mkdtempSync(join(tmpdir(), 'ssmax-fwd-'));
    writeFileSync(join(dir, 'in.eml'), received);
    const r = await cli(
      'user',
      'forward',
      '--profile',
      A.profiles['alice@a.example']!,
      '--to',
      'hana@a.example',
      '--in',
      join(dir, 'in.eml'),
      '-o',
      join(dir, 'out.eml'),
    );
    expect(r.code).toBe(0);
    const forward = readFileSync(join(dir, 'out.eml'));
    expect(bodyOf(forward).equals(bodyOf(received))).toBe(true);
    expect((await listCapsules(forward)).map((c) => c.keyId)).toEqual([expect.stringMatching(/^a\.example:v\d+$/)]);
    expect((await submitMessage(alice, forward, { to: ['hana@a.example'] })).response).toMatch(/^250 .*SSMAX client mode/);
    const toBob = await forwardMessage(alice, received, { to: ['bob@b.example'], now: new Date() });
    expect((await submitMessage(alice, toBob, { to: ['bob@b.example'] })).response).toMatch(/^250 /);
    await waitFor(
      () => copiesOf(A, 'hana@a.example', 'Fwd: Post one').length >= 1 && copiesOf(B, 'bob@b.example', 'Fwd: Post one').length >= 1,
      60000,
    );
    for (const [o, who] of [
      [A, 'hana@a.example'],
      [B, 'bob@b.example'],
    ] as const) {
      const copy = copiesOf(o, who, 'Fwd: Post one')[0]!.raw;
      expect(bodyOf(copy).equals(bodyOf(received))).toBe(true); // the same ciphertext, byte for byte
      const p = profile(o, who);
      expect((await listCapsules(copy)).map((c) => c.keyId)).toEqual([p.encryption.keyId]);
      const opened = await openMessage(p, copy, { now: new Date() });
      expect(opened.plaintext).toEqual(original);
      expect(copy.toString('latin1')).toMatch(/^From: alice@a\.example\r$/m);
    }
  });

  test("a forward of bob's post to a plain-client user (dave): alice's sealed header on top, bob's message attached whole", async () => {
    const alice = profile(A, 'alice@a.example');
    const received = copiesOf(A, 'alice@a.example', 'Post two')[0]!.raw;
    const original = (await openMessage(alice, received, { now: new Date() })).plaintext;
    const before = copiesOf(A, 'dave@a.example', 'Fwd: Post two').length;
    const toDave = await forwardMessage(alice, received, { to: ['dave@a.example'], now: new Date() });
    expect((await submitMessage(alice, toDave, { to: ['dave@a.example'] })).response).toMatch(/^250 /);
    await waitFor(() => copiesOf(A, 'dave@a.example', 'Fwd: Post two').length > before, 60000);
    const copy = copiesOf(A, 'dave@a.example', 'Fwd: Post two')[before]!.raw;
    const parsed = await simpleParser(copy);
    expect(parsed.from?.value.map((v) => v.address)).toEqual(['alice@a.example']); // who the seals vouch for, not the post's author (bob)
    const attached = parsed.attachments.find((a) => a.contentType === 'message/rfc822');
    expect(attached?.content.equals(original)).toBe(true);
  });

  test("forwarding needs a capsule for the forwarder's own key", async () => {
    const bobCopy = copiesOf(B, 'bob@b.example', 'Post two')[0]!.raw;
    await expect(forwardMessage(profile(A, 'alice@a.example'), bobCopy, { to: ['hana@a.example'], now: new Date() })).rejects.toThrow(
      /no capsule for your key/,
    );
    expect((await cli('user', 'forward', '--help')).out).toMatch(/^Usage: ssmax user forward/);
  });
});
