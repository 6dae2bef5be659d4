/**
 * A post to two moderated lists through real processes (a.example's Haraka, keyd, publisher and
 * mailbox store): a held post is as good as a delivered copy, so once one post of a message is
 * held the message is never answered as if nothing had happened. The posts are checked together
 * against the moderation queue's byte caps before any is written (src/gateway/plugin.ts send,
 * src/inspect/quarantine.ts checkFits): two posts that each fit `[lists]
 * moderation_max_bytes_per_sender` but together do not are refused for good (552 5.3.4) and
 * nothing is held — earlier versions held the first and answered the second 451, so the sender's
 * server retried for days while a moderator could already release the first. A hold refused for
 * good after another was written is reported (test/lists/moderation-holds.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import type { Network, OrgNode } from '../../src/demo/network';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { network } from '../gateway/network-fixture';

jest.setTimeout(240000);

/** Each post (about 135 kB held: 100 kB that do not compress, encrypted, base64) fits alone; two do not. */
const PER_SENDER = 160000;
let net: Network;
let A: OrgNode;

beforeAll(async () => {
  net = await network([
    {
      domain: 'a.example',
      users: [
        { address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' },
        { address: 'greg@a.example', client: 'ssmax', password: 'pw-greg' },
      ],
      gatewayIni: ['[lists]', `moderation_max_bytes_per_sender=${PER_SENDER}`],
    },
  ]);
  A = net.org('a.example');
});
afterAll(async () => {
  await net?.stop();
});

async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const code = await main(args, { out: (t) => out.push(t), err: () => undefined });
  return { code, out: out.join('\n') };
}

function adminIni(o: OrgNode): string {
  const file = join(o.fx.dir, 'list-admin.ini');
  const lines = ['[keyd]', `url=https://127.0.0.1:${o.ports.keyd}`, `servername=keyd.${o.domain}`, 'cert=admin.pem', 'key=admin.key'];
  writeFileSync(file, [...lines, 'ca=org-ca.pem,root.pem', ''].join('\n'));
  return file;
}

async function submit(subject: string, to: string[], body: string): Promise<string> {
  const p = loadUserProfile(A.profiles['greg@a.example']!);
  const original = Buffer.from(
    `From: greg@a.example\r\nTo: ${to.join(', ')}\r\nSubject: ${subject}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <${subject.replace(/\W/g, '')}-${Date.now()}@a.example>\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`,
  );
  const sealed = await signAndEncrypt(p, original, { now: new Date() });
  return submitMessage(p, sealed, { to }).then(
    (ok) => ok.response,
    (err: unknown) => String((err as { response?: string }).response ?? (err as Error).message),
  );
}

test('two posts that each fit the per-sender cap but together do not: 552 5.3.4 before anything is held; one list alone is held', async () => {
  const ini = adminIni(A);
  for (const list of ['board@a.example', 'panel@a.example']) {
    expect((await cli('list', 'create', '--config', ini, list, '--policy', 'moderated', '--moderator', 'alice@a.example')).code).toBe(0);
    expect((await cli('list', 'add', '--config', ini, list, 'alice@a.example')).code).toBe(0);
  }
  const state = join(A.harakaDir, 'ssmax-state', 'list-moderation');
  const held = async () => (await cli('list', 'held', '--state', state)).out.split('\n').filter(Boolean);
  const body = randomBytes(75000).toString('base64').replace(/.{76}/g, '$&\r\n');
  const r = await submit('Two moderated', ['board@a.example', 'panel@a.example'], body);
  expect(r).toMatch(
    new RegExp(
      `55\\d 5\\.3\\.4 Message too large to be held: its 2 entries take \\d+ bytes held \\(messages and records\\), over \\[lists\\] moderation_max_bytes_per_sender=${PER_SENDER}, the most held for one sender`,
    ),
  );
  expect(await held()).toHaveLength(0);
  // one of them alone fits: held once
  expect(await submit('One moderated', ['board@a.example'], body)).toMatch(/^250 /);
  expect(await held()).toHaveLength(1);
  await new Promise((res) => setTimeout(res, 1000));
  expect(A.mailbox.for('alice@a.example')).toHaveLength(0);
});
