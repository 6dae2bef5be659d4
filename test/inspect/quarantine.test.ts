import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { freePort } from '../../src/demo/haraka';
import { MailboxStore } from '../../src/demo/mailbox';
import { QuarantineStore } from '../../src/inspect/quarantine';

test('quarantine: hold, list, show, release once into the gateway, delete', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-q-'));
  const store = new QuarantineStore(dir);
  const id = await store.hold({
    direction: 'outbound',
    from: 'a@a.example',
    rcpts: ['b@b.example'],
    rule: 'cards',
    message: Buffer.from('From: a@a.example\r\nSSMAX-Version: 1\r\n\r\nCIPHERTEXT\r\n'),
  });
  await store.close();

  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  expect(await main(['quarantine', 'list', '--state', dir], io)).toBe(0);
  expect(out.join('\n')).toMatch(new RegExp(`${id}  .*  outbound  held  cards  a@a\\.example  b@b\\.example`));
  expect(await main(['quarantine', 'show', id, '--state', dir], io)).toBe(0);
  expect(out.join('\n')).not.toMatch(/CIPHERTEXT/); // show never prints the message

  const sink = new MailboxStore();
  const port = await freePort();
  await sink.listen(port);
  try {
    expect(await main(['quarantine', 'release', id, '--state', dir, '--smtp', `127.0.0.1:${port}`], io)).toBe(0);
    expect(sink.mails).toHaveLength(1);
    expect(sink.mails[0]!.raw.toString()).toMatch(new RegExp(`^SSMAX-Quarantine-Release: ${id}\\r\\n`));
  } finally {
    await sink.close();
  }
  const again = new QuarantineStore(dir);
  expect(await again.consumeRelease(id)).toBe(true);
  expect(await again.consumeRelease(id)).toBe(false); // once
  expect(await again.consumeRelease('q-forged')).toBe(false);
  const id2 = await again.hold({
    direction: 'inbound',
    from: 'x@c.example',
    rcpts: ['b@b.example'],
    rule: 'av:Eicar',
    message: Buffer.from('x'),
  });
  await again.close();
  expect(await main(['quarantine', 'delete', id2, '--state', dir], io)).toBe(0);
  expect(await main(['quarantine', 'delete', id2, '--state', dir], io)).toBe(66);
});
