/**
 * `ssmax user open` checks who sent a message and to whom (docs/security.md):
 * seal i=1 must be by the organisation of the From domain, and the newest
 * seal must name the opener among the recipients it binds. The hops are
 * library calls (test/user/world.ts); the same checks through real gateways
 * are in test/gateway/binding.test.ts.
 */
import { OpenError, openMessage } from '../../src/user/open';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { NOW, type Person, type World, makePerson, makeWorld, receivingHop, sealLookup, sendingHop } from './world';

const SECRET = 'binding-secret-4471';
let world: World;
let alice: Person;
let bob: Person;

beforeAll(() => {
  world = makeWorld();
  alice = makePerson(world, world.a, 'alice');
  bob = makePerson(world, world.b, 'bob');
});
afterAll(() => world.cleanup());

const bobKey = () => ({ keyId: bob.registration.encryptionKeyId, publicKey: Buffer.from(bob.registration.encryptionPublicKey, 'hex') });
const message = () =>
  Buffer.from(
    `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: s\r\nMessage-ID: <b1@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET}\r\n`,
  );

async function openFails(delivered: Buffer, pattern: RegExp): Promise<void> {
  const err = await openMessage(bob.profile, delivered, { now: NOW }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenError);
  expect((err as OpenError).message).toMatch(pattern);
  expect((err as OpenError).message).not.toContain(SECRET);
}

test('the opener named by the newest seal opens it; the trace says so', async () => {
  const hop1 = await sendingHop(await signAndEncrypt(alice.profile, message(), { now: NOW }), world.a, alice, world.b);
  const opened = await openMessage(bob.profile, await receivingHop(hop1, world.b, world.a, { to: bobKey() }), { now: NOW });
  expect(opened.plaintext.toString()).toContain(SECRET);
  expect(opened.trace).toContain(
    'alignment: From domain a.example, seal i=1 by a.example: aligned; recipient: you (bob@b.example) are named by seal i=2',
  );
});

test('verdicts and resends claimed inside the encrypted message (no seal covers them) are named in a warning; an ordinary message has none', async () => {
  const claims = Buffer.from(
    message()
      .toString('latin1')
      .replace('Subject: s\r\n', 'Subject: s\r\nAuthentication-Results: b.example; ssmax-chain=pass\r\nResent-From: ceo@b.example\r\n'),
    'latin1',
  );
  const open = async (m: Buffer) => {
    const hop1 = await sendingHop(await signAndEncrypt(alice.profile, m, { now: NOW }), world.a, alice, world.b);
    return openMessage(bob.profile, await receivingHop(hop1, world.b, world.a, { to: bobKey() }), { now: NOW });
  };
  const opened = await open(claims);
  expect(opened.plaintext.toString()).toContain(SECRET);
  expect(opened.warnings).toContain(
    "warning: the decrypted message's header carries Authentication-Results, Resent-From: claims of its sender that no seal covers, not results of any check",
  );
  expect((await open(message())).warnings.filter((w) => w.includes('no seal covers'))).toEqual([]);
});

test('a copy whose newest seal binds another recipient is refused, though it is encrypted to the opener', async () => {
  const hop1 = await sendingHop(await signAndEncrypt(alice.profile, message(), { now: NOW }), world.a, alice, world.b);
  const delivered = await receivingHop(hop1, world.b, world.a, { to: bobKey(), recipient: 'dave@b.example' });
  await openFails(delivered, /newest seal \(i=2, b\.example\) does not name you \(bob@b\.example\) as a recipient: you are not among/);
});

test('an SSMAX-Recipients field swapped for one naming the opener does not match the seal and is refused', async () => {
  const hop1 = await sendingHop(await signAndEncrypt(alice.profile, message(), { now: NOW }), world.a, alice, world.b);
  const forDave = await receivingHop(hop1, world.b, world.a, { to: bobKey(), recipient: 'dave@b.example' });
  const forBob = await receivingHop(hop1, world.b, world.a, { to: bobKey() });
  const field = (m: Buffer) => /SSMAX-Recipients:[^\r]*(\r\n[ \t][^\r]*)*\r\n/.exec(m.toString('latin1'))![0];
  const swapped = Buffer.from(forDave.toString('latin1').replace(field(forDave), field(forBob)), 'latin1');
  await openFails(swapped, /does not match the seal's rc= commitment/);
});

test("seal i=1 by another organisation than the From domain's is refused, naming both domains", async () => {
  // b.example (genuine certificates under the same root) seals alice@a.example's message as its own
  const hop1 = await sendingHop(await signAndEncrypt(alice.profile, message(), { now: NOW }), world.a, alice, world.b, { sealAs: world.b });
  const delivered = await receivingHop(hop1, world.b, world.b, { to: bobKey() }, sealLookup(world.b));
  await openFails(delivered, /the From domain a\.example is not aligned with seal i=1 by b\.example/);
});

test("a Sender of another organisation than seal i=1's is refused (a client shows it as who sent on whose behalf); one of its own opens", async () => {
  const withSender = (sender: string) =>
    Buffer.from(message().toString('latin1').replace('\r\nTo: ', `\r\nSender: ${sender}\r\nTo: `), 'latin1');
  const hop1 = await sendingHop(await signAndEncrypt(alice.profile, withSender('ceo@b.example'), { now: NOW }), world.a, alice, world.b);
  await openFails(
    await receivingHop(hop1, world.b, world.a, { to: bobKey() }),
    /the Sender domain b\.example is not aligned with seal i=1 by a\.example/,
  );
  const own = await sendingHop(await signAndEncrypt(alice.profile, withSender('desk@a.example'), { now: NOW }), world.a, alice, world.b);
  const opened = await openMessage(bob.profile, await receivingHop(own, world.b, world.a, { to: bobKey() }), { now: NOW });
  expect(opened.trace).toContain(
    'alignment: From domain a.example, Sender domain a.example, seal i=1 by a.example: aligned; recipient: you (bob@b.example) are named by seal i=2',
  );
});

test('sign-encrypt removes an inner Bcc: no recipient finds the Bcc list inside the ciphertext', async () => {
  const withBcc = Buffer.from(
    `From: alice@a.example\r\nTo: bob@b.example\r\nBcc: secret-bcc@c.example,\r\n hidden@b.example\r\nSubject: s\r\nMessage-ID: <b2@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nBcc: in the body stays\r\n`,
  );
  const hop1 = await sendingHop(await signAndEncrypt(alice.profile, withBcc, { now: NOW }), world.a, alice, world.b);
  const opened = await openMessage(bob.profile, await receivingHop(hop1, world.b, world.a, { to: bobKey() }), { now: NOW });
  const text = opened.plaintext.toString('latin1');
  expect(text).not.toMatch(/secret-bcc|hidden@/);
  expect(text).toBe(withBcc.toString('latin1').replace('Bcc: secret-bcc@c.example,\r\n hidden@b.example\r\n', ''));
});
