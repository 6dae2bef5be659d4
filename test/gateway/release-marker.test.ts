/**
 * A release marker on encrypted mail without seals (src/gateway/inspection.ts
 * releasedArrival): anyone can encrypt to the published key and add
 * `SSMAX-Quarantine-Release`, so no key operation and no decryption is spent
 * on a marker that does not name a release under way in this gateway's own
 * quarantine (its id releasing, with that token): 550 5.7.1 at once. With a
 * remote inspector (no quarantine here) such a release is refused the same way,
 * final, never the 4xx a missing inspector role at keyd would give. Unit test of
 * the one module: keyd is a stub that counts what it is asked.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Capsule } from '../../src/crypto';
import { groups } from '../../src/crypto/backend';
import type { GatewayDeps } from '../../src/gateway/deps';
import { releasedArrival } from '../../src/gateway/inspection';
import { type Inspector, LocalInspector } from '../../src/inspect/engine';
import { QuarantineStore, RELEASE_HEADER, releaseMarker } from '../../src/inspect/quarantine';
import { GatewayError } from '../../src/mail/replies';

const asked: string[] = [];
const keyd = {
  messageKey: () => {
    asked.push('messageKey');
    return Promise.reject(new Error('keyd was asked for a decryption'));
  },
  certifiedKey: () => {
    asked.push('certifiedKey');
    return Promise.resolve(new Uint8Array(33));
  },
  user: () => Promise.resolve(undefined),
  orgKeys: () => Promise.resolve({ current: 'b.example:v1', keys: [] }),
};
const capsule = { keyId: 'b.example:v1' } as unknown as Capsule;
const ciphertext = Buffer.from('From: mallory@outside.example\r\nTo: carol@b.example\r\nSubject: x\r\n\r\nciphertext\r\n');
const marked = (value: string) => Buffer.concat([Buffer.from(`${RELEASE_HEADER}: ${value}\r\n`), ciphertext]);

let store: QuarantineStore;
let inline: LocalInspector;
const deps = (inspection: Inspector) => ({ inspection, keyd, group: groups.noble }) as unknown as GatewayDeps;

async function refusal(p: Promise<unknown>): Promise<GatewayError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  return err as GatewayError;
}

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-release-marker-'));
  store = new QuarantineStore(join(dir, 'q'));
  inline = new LocalInspector({ config: { quarantineDir: join(dir, 'q') }, quarantine: store, keyd, group: groups.noble });
});
afterAll(async () => {
  await store.close();
});
beforeEach(() => {
  asked.length = 0;
});

test('a forged marker (a made-up token for a releasing entry, an entry only held, an unknown id, no token, not a marker): 550 5.7.1, keyd never asked', async () => {
  const held = await store.hold({
    direction: 'inbound',
    from: 'm@outside.example',
    rcpts: ['carol@b.example'],
    rule: 'av:x',
    message: ciphertext,
  });
  const releasing = await store.hold({
    direction: 'inbound',
    from: 'm@outside.example',
    rcpts: ['carol@b.example'],
    rule: 'av:x',
    message: ciphertext,
  });
  const entry = (await store.release(releasing))!;
  const token = entry.release!.token;
  const other = token.replace(/^./, (c) => (c === '0' ? '1' : '0'));
  for (const value of [`${releasing} ${other}`, `${held} ${token}`, `q-forged-000000000000 ${token}`, releasing, 'not a marker']) {
    const e = await refusal(releasedArrival(deps(inline), marked(value), capsule));
    expect(e.reply).toMatchObject({ code: 550, status: '5.7.1' });
    expect(e.reply.text).toMatch(/^Release field not honoured/);
  }
  expect(asked).toEqual([]);
  expect(store.get(releasing)!.state).toBe('releasing'); // only looked at: the release is still the gateway's to take once
});

test("the release under way (its id releasing, its token): the gateway goes on to keyd's decryption", async () => {
  const id = await store.hold({
    direction: 'inbound',
    from: 'm@outside.example',
    rcpts: ['carol@b.example'],
    rule: 'av:x',
    message: ciphertext,
  });
  const entry = (await store.release(id))!;
  await expect(releasedArrival(deps(inline), marked(releaseMarker(entry)), capsule)).rejects.toThrow('keyd was asked for a decryption');
  expect(asked).toContain('messageKey');
});

test('with a remote inspector (no quarantine in the gateway): 550 5.7.1 for any marker, keyd never asked', async () => {
  const id = await store.hold({
    direction: 'inbound',
    from: 'm@outside.example',
    rcpts: ['carol@b.example'],
    rule: 'av:x',
    message: ciphertext,
  });
  const entry = (await store.release(id))!;
  const remote: Inspector = { inspect: () => Promise.reject(new Error('not asked')), close: () => Promise.resolve() };
  const e = await refusal(releasedArrival(deps(remote), marked(releaseMarker(entry)), capsule));
  expect(e.reply).toMatchObject({ code: 550, status: '5.7.1' });
  expect(e.reply.text).toMatch(
    /cannot be released through a remote inspector \(only with inline inspection\); delete it and ask the sender/,
  );
  expect(asked).toEqual([]);
});

test('a message without a marker is not a release: nothing asked', async () => {
  expect(await releasedArrival(deps(inline), ciphertext, capsule)).toBeUndefined();
  expect(asked).toEqual([]);
});
