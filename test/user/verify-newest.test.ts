/**
 * verifyNewestSeal (src/chain/verify-newest.ts) on its own, and the open
 * paths that rest on it: earlier seals checked through peer bundles, chain
 * structure, and the inner-From warning.
 */
import { groups } from '../../src/crypto/backend';
import { systemRng } from '../../src/crypto/random';
import { certificateRef } from '../../src/chain/certificate-lookup';
import { signUser } from '../../src/chain/user-signature';
import { verifyNewestSeal } from '../../src/chain/verify-newest';
import { encryptMessage } from '../../src/envelope/encrypt';
import { collect } from '../../src/envelope/source';
import { OpenError, openMessage, stripLeadingSeals } from '../../src/user/open';
import { ownOrgRecipient, signAndEncrypt } from '../../src/user/sign-encrypt';
import { NOW, type Person, type World, clock, lookupOver, makePerson, makeWorld, receivingHop, sealLookup, sendingHop } from './world';

let world: World;
let alice: Person;
let bob: Person;

beforeAll(() => {
  world = makeWorld();
  alice = makePerson(world, world.a, 'alice');
  bob = makePerson(world, world.b, 'bob');
});
afterAll(() => world.cleanup());

const bobKey = () => ({ keyId: bob.profile.encryption.keyId, publicKey: bob.profile.encryption.publicKey });
const message = Buffer.from('From: alice@a.example\r\nTo: bob@b.example\r\nSubject: x\r\nMessage-ID: <v1@a.example>\r\n\r\nbody\r\n');

async function delivered(rogueHop1 = false): Promise<Buffer> {
  const submitted = await signAndEncrypt(alice.profile, message, { now: NOW });
  const hop1 = await sendingHop(submitted, world.a, alice, world.b, { rogue: rogueHop1 });
  return receivingHop(hop1, world.b, world.a, { to: bobKey() }, lookupOver([world.a, world.b], true));
}

test('none without seals; pass with the own lookup only; the earlier seal vouched for', async () => {
  expect((await verifyNewestSeal(message, { lookup: sealLookup(world.b), now: clock })).result).toBe('none');
  const r = await verifyNewestSeal(await delivered(), { lookup: sealLookup(world.b), now: clock });
  expect(r.result).toBe('pass');
  expect(r.instances.map((i) => [i.instance, i.checked, i.outcome.result, i.matchesMessage])).toEqual([
    [1, 'newest-seal', 'pass', false],
    [2, 'signature', 'pass', true],
  ]);
  expect(r.summary).toBe('ssmax-chain=pass header.d=b.example header.i=2');
});

test('an unknown newest certificate fails; a throwing lookup is a temperror', async () => {
  const msg = await delivered();
  const unknown = await verifyNewestSeal(msg, { lookup: sealLookup(world.a), now: clock });
  expect(unknown.result === 'fail' && unknown.reason).toBe('unknown-certificate');
  const temp = await verifyNewestSeal(msg, {
    lookup: () => {
      throw new Error('directory down');
    },
    now: clock,
  });
  expect(temp.result).toBe('temperror');
  expect(temp.summary).toBe('ssmax-chain=temperror reason="i=2 certificate lookup failed: directory down" header.d=b.example header.i=2');
});

test('a missing seal breaks the instance order', async () => {
  const text = (await delivered()).toString('latin1');
  const withoutFirst = text.replace(/SSMAX-Seal: v=1; i=1;[^]*?\r\n(?=[^ \t])/, '');
  const r = await verifyNewestSeal(Buffer.from(withoutFirst, 'latin1'), { lookup: sealLookup(world.b), now: clock });
  expect(r.result === 'fail' && r.reason).toBe('instance-order');
});

test('a seal from the future fails', async () => {
  const r = await verifyNewestSeal(await delivered(), { lookup: sealLookup(world.b), now: () => NOW.getTime() - 3600_000 });
  expect(r.result === 'fail' && r.reason).toBe('time-in-future');
});

test('an earlier seal by an unpublished certificate: vouched for without the peer bundle, refused with it', async () => {
  const msg = await delivered(true);
  const trusting = await openMessage(bob.profile, msg, { now: NOW });
  expect(trusting.hops[0]!.checked).toBe('newest-seal');
  const err = await openMessage(bob.profile, msg, { now: NOW, peerBundles: [world.a.bundle] }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(OpenError);
  expect((err as OpenError).message).toMatch(
    /^Cannot open the message: seal i=1 \(a\.example\) failed: unknown-certificate: its certificate c=[\w-]+ is not a sealing certificate of the bundle of "a\.example"$/,
  );
  expect((err as OpenError).trace[1]).toMatch(/^seal i=2 {2}b\.example {2}pass/);
});

test('a bad peer bundle is refused by name', async () => {
  const err = await openMessage(bob.profile, await delivered(), { now: NOW, peerBundles: ['{"payload":{"domain":"a.example"}}'] }).catch(
    (e: unknown) => e,
  );
  expect((err as Error).message).toMatch(/^Cannot use the peer bundle of "a\.example": malformed/);
});

test('an inner From unlike the sealed outer From is flagged', async () => {
  // A sender who builds the encrypted message by hand: outer From alice, inner From someone else.
  const inner = Buffer.from(message.toString('latin1').replace('From: alice@a.example', 'From: ceo@a.example'), 'latin1');
  const encrypted = (
    await collect(encryptMessage(inner, [ownOrgRecipient(alice.profile, NOW)], { group: groups.libsecp256k1, rng: systemRng }))
  ).toString('latin1');
  const outer = Buffer.from(encrypted.replace('From: ceo@a.example', 'From: alice@a.example'), 'latin1');
  const { message: signed } = await signUser(outer, {
    signer: 'alice@a.example',
    certRef: certificateRef(alice.profile.signingCertificate.der),
    privateKey: alice.profile.signingKey,
    now: clock,
  });
  const hop1 = await sendingHop(signed, world.a, alice, world.b);
  const opened = await openMessage(bob.profile, await receivingHop(hop1, world.b, world.a, { to: bobKey() }), { now: NOW });
  expect(opened.plaintext.equals(inner)).toBe(true);
  expect(opened.warnings).toEqual(['warning: the From inside the encrypted message is not the sealed outer From']);
  expect(opened.trace[opened.trace.length - 1]).toBe(opened.warnings[0]);
});

test('an inner header with a field hidden behind a bare CR is flagged, naming the line', async () => {
  const inner = Buffer.from(
    message.toString('latin1').replace('From: alice@a.example\r\n', 'From: alice@a.example\r\nX-Pad: x\rReply-To: pay@evil.example\r\n'),
    'latin1',
  );
  expect(inner.toString('latin1')).toContain('x\rReply-To');
  const encrypted = await collect(
    encryptMessage(inner, [ownOrgRecipient(alice.profile, NOW)], { group: groups.libsecp256k1, rng: systemRng }),
  );
  const { message: signed } = await signUser(encrypted, {
    signer: 'alice@a.example',
    certRef: certificateRef(alice.profile.signingCertificate.der),
    privateKey: alice.profile.signingKey,
    now: clock,
  });
  const hop1 = await sendingHop(signed, world.a, alice, world.b);
  const opened = await openMessage(bob.profile, await receivingHop(hop1, world.b, world.a, { to: bobKey() }), { now: NOW });
  expect(opened.warnings).toContainEqual(
    expect.stringMatching(/^warning: the decrypted message holds a bare CR \(one not followed by LF\) at line \d+: what follows it/),
  );
});

test('an inner From that differs from the sealed outer From only in case is no other author: no warning', async () => {
  const inner = Buffer.from(message.toString('latin1').replace('From: alice@a.example', 'From: Alice@A.Example'), 'latin1');
  const encrypted = (
    await collect(encryptMessage(inner, [ownOrgRecipient(alice.profile, NOW)], { group: groups.libsecp256k1, rng: systemRng }))
  ).toString('latin1');
  const outer = Buffer.from(encrypted.replace('From: Alice@A.Example', 'From: alice@a.example'), 'latin1');
  expect(outer.toString('latin1')).toContain('From: alice@a.example');
  const { message: signed } = await signUser(outer, {
    signer: 'alice@a.example',
    certRef: certificateRef(alice.profile.signingCertificate.der),
    privateKey: alice.profile.signingKey,
    now: clock,
  });
  const hop1 = await sendingHop(signed, world.a, alice, world.b);
  const opened = await openMessage(bob.profile, await receivingHop(hop1, world.b, world.a, { to: bobKey() }), { now: NOW });
  expect(opened.plaintext.equals(inner)).toBe(true);
  expect(opened.warnings).toEqual([]);
});

test('an inner Sender, Subject or To unlike the sealed outer ones is flagged too; the opened message is the inner one as written', async () => {
  const inner = Buffer.from(
    message
      .toString('latin1')
      .replace('From: alice@a.example\r\n', 'From: alice@a.example\r\nSender: ceo@a.example\r\n')
      .replace(/Subject: [^\r]*/, 'Subject: urgent wire')
      .replace(/To: [^\r]*/, 'To: all@b.example'),
    'latin1',
  );
  const encrypted = (
    await collect(encryptMessage(inner, [ownOrgRecipient(alice.profile, NOW)], { group: groups.libsecp256k1, rng: systemRng }))
  ).toString('latin1');
  const outer = Buffer.from(
    encrypted
      .replace('Sender: ceo@a.example\r\n', '')
      .replace('Subject: urgent wire', (/Subject: [^\r]*/.exec(message.toString('latin1')) ?? [''])[0])
      .replace('To: all@b.example', (/To: [^\r]*/.exec(message.toString('latin1')) ?? [''])[0]),
    'latin1',
  );
  const { message: signed } = await signUser(outer, {
    signer: 'alice@a.example',
    certRef: certificateRef(alice.profile.signingCertificate.der),
    privateKey: alice.profile.signingKey,
    now: clock,
  });
  const hop1 = await sendingHop(signed, world.a, alice, world.b);
  const opened = await openMessage(bob.profile, await receivingHop(hop1, world.b, world.a, { to: bobKey() }), { now: NOW });
  expect(opened.plaintext.equals(inner)).toBe(true);
  expect(opened.warnings).toEqual([
    'warning: the Sender inside the encrypted message is not the sealed outer Sender',
    'warning: the To, Subject inside the encrypted message are not the sealed outer ones',
  ]);
});

test('stripLeadingSeals removes only the seal fields on top, folded lines included', () => {
  const body = Buffer.from('From: a@a.example\r\nSSMAX-Seal: v=1; i=9\r\n\r\nx\r\n');
  const sealed = Buffer.concat([Buffer.from('SSMAX-Seal: v=1; i=2;\r\n d=b.example\r\nssmax-seal: v=1;\r\n\ti=1\r\n'), body]);
  expect(stripLeadingSeals(sealed).equals(body)).toBe(true);
  expect(stripLeadingSeals(body).equals(body)).toBe(true);
  const lf = Buffer.from('SSMAX-Seal: v=1;\n i=1\nFrom: a\n\nx\n');
  expect(stripLeadingSeals(lf).toString()).toBe('From: a\n\nx\n');
});
