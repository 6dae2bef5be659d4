/**
 * One structured log line per message per hop (docs/operations.md), read from
 * the output of real Haraka processes (two organisations, keyd over mutual
 * TLS, publishers, mailbox stores; loopback): a delivered, a refused and a
 * deferred message, each in the direction it happens; the fields are there,
 * and neither the message's text nor any private key is.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Network } from '../../src/demo/network';
import type { MessageRecord } from '../../src/gateway/message-log';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { network, smtp, waitFor } from './network-fixture';

jest.setTimeout(180000);

let net: Network;
beforeAll(async () => {
  net = await network([
    { domain: 'a.example', users: [{ address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' }, { address: 'dave@a.example', client: 'plain', password: 'pw-dave' }] },
    { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }, { address: 'carol@b.example', client: 'plain', password: 'pw-carol' }] },
  ]);
});
afterAll(async () => {
  await net?.stop();
});

const A = () => net.org('a.example');
const B = () => net.org('b.example');
const dave = { user: 'dave@a.example', pass: 'pw-dave' };
const BODY_MARKER = 'Body-marker Osprey-5531 confidential';
const SUBJECT_MARKER = 'Subject-marker Heron-8812';

function records(org: ReturnType<typeof A>): MessageRecord[] {
  return [...org.haraka.logs().matchAll(/ssmax-message (\{.*\})\s*$/gm)].map((m) => JSON.parse(m[1]!) as MessageRecord);
}
const lines = (org: ReturnType<typeof A>) => org.haraka.logs().split('\n').filter((l) => l.includes('ssmax-message '));
const queueIdIn = (reply: string) => /\(([0-9A-F-]{36}(?:\.\d+)?)\)/i.exec(reply)?.[1];
const plain = (to: string, id: string, extra = '') =>
  `From: dave@a.example\r\nTo: ${to}\r\nSubject: ${SUBJECT_MARKER} ${id}\r\nMessage-ID: <${id}@a.example>\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n${extra}\r\n${BODY_MARKER} ${id}\r\n`;

/** The base64 body of every private key these organisations hold (none may be logged). */
function privateKeys(): string[] {
  const out: string[] = [];
  for (const org of [A(), B()]) {
    for (const f of ['seal.key.pem', 'gateway.key', 'inspector.key', 'signer.key.pem', 'admin.key']) {
      const pem = readFileSync(join(org.fx.dir, f), 'utf8');
      for (const l of pem.split('\n').filter((x) => x !== '' && !x.startsWith('-----'))) out.push(l.trim());
    }
  }
  return out.filter((l) => l.length >= 16);
}

describe('one JSON line per message per hop', () => {
  let delivered: { out: MessageRecord; in: MessageRecord; reply: string };
  let refusedOut: MessageRecord;
  let refusedIn: MessageRecord;
  let deferred: MessageRecord;

  beforeAll(async () => {
    // delivered: alice (SSMAX client) to bob; a.example queues (outbound), b.example delivers (inbound)
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const original = Buffer.from(`From: alice@a.example\r\nTo: bob@b.example\r\nSubject: ${SUBJECT_MARKER}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <log-1@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${BODY_MARKER}\r\n`);
    const r = await submitMessage(alice, await signAndEncrypt(alice, original, { now: new Date() }), { to: ['bob@b.example'] });
    expect(r.response).toMatch(/^250 .*SSMAX client mode/);
    await waitFor(() => B().mailbox.for('bob@b.example').length >= 1 && records(B()).length >= 1);
    const qid = queueIdIn(r.response);
    const out = records(A()).find((x) => x.queueId === qid);
    expect(out).toBeDefined();
    delivered = { out: out!, in: records(B())[0]!, reply: r.response };

    // refused at submission: two From fields (550 5.6.7)
    const dup = await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], plain('carol@b.example', 'log-dup', 'From: eve@a.example\r\n'), dave);
    expect(dup).toMatch(/^550 5\.6\.7/);
    refusedOut = records(A()).find((x) => x.reply.status === '5.6.7')!;

    // refused at arrival: an unsealed message claiming a.example, handed straight to b.example (550 5.7.7)
    const before = records(B()).length;
    const unsealed = await smtp(B().ports.smtp, 'dave@a.example', ['carol@b.example'], plain('carol@b.example', 'log-unsealed'));
    expect(unsealed).toMatch(/^550 5\.7\.7/);
    await waitFor(() => records(B()).length > before);
    refusedIn = records(B()).slice(before).find((x) => x.outcome === 'refused')!;

    // deferred: a.example's keyd is down while dave submits (451 4.7.5), then back
    await A().keyd.stop();
    try {
      const soft = await smtp(A().ports.smtp, 'dave@a.example', ['carol@b.example'], plain('carol@b.example', 'log-soft'), dave);
      expect(soft).toMatch(/^450 4\.7\.5/);
    } finally {
      await A().restartKeyd();
    }
    deferred = records(A()).find((x) => x.outcome === 'deferred')!;
    for (const org of [A(), B()]) for (const l of lines(org)) process.stdout.write(`${org.domain}: ${l}\n`);
  });

  test('delivered: the sending hop names the queue id, mode, peer, key versions, outcome and step times', () => {
    const o = delivered.out;
    expect(o).toMatchObject({ event: 'ssmax-message', direction: 'outbound', mode: 'ssmax', submitter: 'smtp-auth', peers: ['b.example'], rcpts: 1, outcome: 'queued' });
    expect(o.reply).toMatchObject({ code: 250, status: '2.0.0' });
    expect(delivered.reply).toContain(o.queueId);
    // the user's capsule was for an a.example version; the copy went out to a b.example version
    expect(o.keyVersions.some((k) => /^a\.example:v\d+$/.test(k))).toBe(true);
    expect(o.keyVersions.some((k) => /^b\.example:v\d+$/.test(k))).toBe(true);
    expect(o.ms.keyd).toBeGreaterThan(0);
    expect(o.ms.total).toBeGreaterThanOrEqual(o.ms.keyd);
  });

  test('delivered: the receiving hop names the sealing peer, the chain verdict, its key version and the delivery time', () => {
    const i = delivered.in;
    expect(i).toMatchObject({ direction: 'inbound', mode: 'ssmax', peers: ['a.example'], chain: { result: 'pass', seals: 1 }, outcome: 'delivered', reply: { code: 250 } });
    expect(i.keyVersions.every((k) => k.startsWith('b.example:v'))).toBe(true);
    expect(i.keyVersions.length).toBeGreaterThan(0);
    expect(i.ms.delivery).toBeGreaterThan(0);
    expect(i.ms.chain).toBeGreaterThan(0);
    expect(i.queueId).toMatch(/^[0-9A-F-]{36}/i);
  });

  test('refused: the 5xx reply with its enhanced status code, in both directions', () => {
    expect(refusedOut).toMatchObject({ direction: 'outbound', mode: 'transparent', outcome: 'refused', reply: { code: 550, status: '5.6.7' }, peers: ['b.example'] });
    expect(refusedIn).toMatchObject({ direction: 'inbound', mode: 'transparent', outcome: 'refused', chain: { result: 'none', seals: 0 }, reply: { code: 550, status: '5.7.7' } });
  });

  test('deferred: 450 with 4.7.5 (Haraka answers DENYSOFT after DATA with 450)', () => {
    expect(deferred).toMatchObject({ direction: 'outbound', mode: 'transparent', outcome: 'deferred', reply: { code: 450, status: '4.7.5' } });
    expect(deferred.reply.text).toMatch(/Key service unavailable/);
  });

  test('every line is one JSON object; none carries the message text, its subject or a private key', () => {
    const all = [...lines(A()), ...lines(B())];
    expect(all.length).toBeGreaterThanOrEqual(5);
    const keys = privateKeys();
    expect(keys.length).toBeGreaterThan(5);
    for (const l of all) {
      expect(l).not.toContain('Osprey');
      expect(l).not.toContain('Heron');
      expect(l).not.toMatch(/PRIVATE KEY/);
      for (const k of keys) expect(l).not.toContain(k);
    }
  });
});
