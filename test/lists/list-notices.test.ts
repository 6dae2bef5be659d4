/**
 * Notices about a list's members never reach the poster (docs/lists.md,
 * "Notices about members"), through real processes: Haraka gateways with the
 * ssmax plugin, keyd, publishers and mailbox stores of two organisations.
 * staff@a.example has members at a.example (alice, dave) and at b.example
 * (bob, erin, and ghost, whom b.example does not know). Every copy leaves
 * with the list's bounce address staff-bounces@a.example as envelope sender:
 * b.example's refusal of ghost's copy is logged at a.example and not bounced
 * to alice; a copy delayed at b.example gets no delay notice to alice; a
 * notice that reaches the bounce address is logged and settled.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import type { Network, OrgNode } from '../../src/demo/network';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { network, rawSmtp, waitFor, expectLogged } from '../gateway/network-fixture';

jest.setTimeout(240000);

let net: Network;
let A: OrgNode;
let B: OrgNode;

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
      ],
      // a delay notice would go after one second
      gatewayIni: ['[delivery]', 'delay_notice_seconds=1'],
    },
    {
      domain: 'b.example',
      users: [
        { address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' },
        { address: 'erin@b.example', client: 'ssmax', password: 'pw-erin' },
      ],
    },
  ]);
  A = net.org('a.example');
  B = net.org('b.example');
  const ini = join(A.fx.dir, 'list-admin.ini');
  writeFileSync(
    ini,
    [
      '[keyd]',
      `url=https://127.0.0.1:${A.ports.keyd}`,
      'servername=keyd.a.example',
      'cert=admin.pem',
      'key=admin.key',
      'ca=org-ca.pem,root.pem',
      '',
    ].join('\n'),
  );
  expect((await cli('list', 'create', '--config', ini, 'staff@a.example')).code).toBe(0);
  const members = ['alice@a.example', 'dave@a.example', 'bob@b.example', 'erin@b.example', 'ghost@b.example'];
  expect((await cli('list', 'add', '--config', ini, 'staff@a.example', ...members)).code).toBe(0);
});
afterAll(async () => {
  await net?.stop();
});

async function post(subject: string): Promise<string> {
  const p = loadUserProfile(A.profiles['alice@a.example']!);
  const raw = Buffer.from(
    `From: alice@a.example\r\nTo: staff@a.example\r\nSubject: ${subject}\r\nDate: ${new Date().toUTCString()}\r\n` +
      `Message-ID: <${subject.replace(/\W/g, '')}-${Date.now()}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello list\r\n`,
  );
  return (await submitMessage(p, await signAndEncrypt(p, raw, { now: new Date() }), { to: ['staff@a.example'] })).response;
}

const copies = (o: OrgNode, who: string, subject: string) =>
  o.mailbox.for(who).filter((m) => m.raw.toString('latin1').includes(`Subject: ${subject}`));
/** Everything a.example's mailbox store holds that names `member` (a bounce, a delay notice). */
const naming = (member: string) => A.mailbox.mails.filter((m) => m.raw.toString('latin1').toLowerCase().includes(member));

test('b.example refuses a member for good: alice gets no notice naming it, a.example logs it, the other members get their copies', async () => {
  expect(await post('Notice post')).toMatch(/^250 /);
  const members: [OrgNode, string][] = [
    [A, 'alice@a.example'],
    [A, 'dave@a.example'],
    [B, 'bob@b.example'],
    [B, 'erin@b.example'],
  ];
  // Haraka's queue at a.example decides to bounce ghost's copy (b.example refused it at RCPT)
  await waitFor(
    () => members.every(([o, who]) => copies(o, who, 'Notice post').length >= 1) && /bouncing mail: /.test(A.haraka.logs()),
    90000,
    () => A.haraka.logs().slice(-3000),
  );
  await new Promise((res) => setTimeout(res, 3000)); // room for a bounce to arrive
  expect(naming('ghost@b.example')).toHaveLength(0);
  expect(A.mailbox.for('alice@a.example')).toHaveLength(1); // her own copy of the post, nothing else
  await expectLogged(
    () => A.haraka.logs(),
    /ssmax lists: staff@a\.example: the copy for member ghost@b\.example failed for good: .*5\.1\.1/,
  );
  await expectLogged(() => A.haraka.logs(), /Not sending bounce/);
  // one copy each, and every copy went with the list's bounce address as envelope sender, the local ones and the peer's
  for (const [o, who] of members) expect(copies(o, who, 'Notice post').map((m) => m.from)).toEqual(['staff-bounces@a.example']);
});

test('a member whose organisation defers its copy: no delay notice to alice; a.example logs the delay', async () => {
  const deferrals = () => (A.haraka.logs().match(/Temp failing /g) ?? []).length;
  const before = deferrals();
  B.mailbox.refuse = '4.2.1 Mailbox busy';
  B.mailbox.refuseFor = 'erin@b.example';
  B.mailbox.delayMs = 1500; // the deferral comes after delay_notice_seconds: a delay notice is due at once
  try {
    expect(await post('Delayed post')).toMatch(/^250 /);
    await waitFor(
      () => deferrals() > before && copies(B, 'bob@b.example', 'Delayed post').length === 1,
      90000,
      () => A.haraka.logs().slice(-3000),
    );
    await new Promise((res) => setTimeout(res, 3000)); // room for a delay notice to arrive
    expect(naming('erin@b.example')).toHaveLength(0);
    expect(A.mailbox.mails.filter((m) => /Delayed Mail/.test(m.raw.toString('latin1')))).toHaveLength(0);
    await expectLogged(
      () => A.haraka.logs(),
      /ssmax lists: staff@a\.example: the copy for member erin@b\.example is delayed: .*4\.2\.1 Mailbox busy/,
    );
  } finally {
    B.mailbox.refuse = undefined;
    B.mailbox.refuseFor = undefined;
    B.mailbox.delayMs = 0;
  }
});

test("a notice that reaches the list's bounce address is logged and settled, delivered to nobody; the address takes nothing else", async () => {
  const before = A.mailbox.mails.length;
  const notice = Buffer.from(
    'From: MAILER-DAEMON@b.example\r\nTo: staff-bounces@a.example\r\nSubject: Undelivered Mail\r\n' +
      `Date: ${new Date().toUTCString()}\r\nMessage-ID: <notice-${Date.now()}@b.example>\r\n\r\nghost@b.example: 550 5.1.1 unknown\r\n`,
  );
  expect(await rawSmtp(A.ports.smtp, '', ['staff-bounces@a.example'], notice)).toMatch(/^250 .*Settled/);
  await expectLogged(
    () => A.haraka.logs(),
    /ssmax lists: staff@a\.example: a notice to staff-bounces@a\.example \(From: MAILER-DAEMON@b\.example\) logged and settled, not delivered/,
  );
  // only notices (the null sender) are taken, and only for a list's bounce address
  expect(await rawSmtp(A.ports.smtp, 'mallory@b.example', ['staff-bounces@a.example'], notice)).toMatch(/^550 5\.1\.1/);
  expect(await rawSmtp(A.ports.smtp, '', ['nolist-bounces@a.example'], notice)).toMatch(/^550 5\.1\.1/);
  await new Promise((res) => setTimeout(res, 1000));
  expect(A.mailbox.mails.length).toBe(before);
  expect(naming('ghost@b.example')).toHaveLength(0);
});

test("a user registered at an address shaped like a list's bounce address gets its notices: the address is the user's", async () => {
  const admin = A.admin();
  try {
    await admin.call('POST', '/v1/registry/users', { address: 'team-bounces@a.example', code: 'U-TB1', identityRef: 'EMP-TB1' });
    await admin.call('POST', '/v1/lists', { address: 'team@a.example', policy: 'open', members: ['dave@a.example'] });
  } finally {
    admin.close();
  }
  const before = A.mailbox.for('team-bounces@a.example').length;
  const notice = Buffer.from(
    'From: MAILER-DAEMON@mx.plain.example\r\nTo: team-bounces@a.example\r\nSubject: Undelivered Mail\r\n' +
      `Date: ${new Date().toUTCString()}\r\nMessage-ID: <notice-tb-${Date.now()}@mx.plain.example>\r\n\r\nyour message could not be delivered\r\n`,
  );
  const reply = await rawSmtp(A.ports.smtp, '', ['team-bounces@a.example'], notice);
  expect(reply).toMatch(/^250 /);
  expect(reply).not.toMatch(/Settled/);
  expect(A.mailbox.for('team-bounces@a.example')).toHaveLength(before + 1);
});
