/**
 * A lying key service, through real processes (issue 15, docs/security.md "A
 * lying key service"): real Haraka gateways with the ssmax plugin, real keyd
 * over mutual TLS, bundle publishers and mailbox stores on loopback, and, in
 * b.example's path to its keyd, a TLS proxy that holds keyd's own server
 * certificate and key (as an attacker who took keyd's key, or keyd itself
 * when compromised, would) and rewrites keyd's answers.
 *
 * Why a proxy and not a fault switch inside keyd: the lie then needs no code
 * in the shipped key service at all, so there is no setting that could ever
 * turn it on in production, and the real keyd behind it stays untouched
 * (its audit log, its keys). The proxy authenticates the gateway's client
 * certificate like keyd does, and speaks to the real keyd with the same
 * role's credentials.
 *
 * The gateway answers a lie 451 4.7.5 (key service unavailable: a fault on the
 * receiving side, never the message's; Haraka sends it as 450 after DATA), delivers nothing, and once the key
 * service answers honestly again the same message — retried by the sender —
 * is delivered exactly once.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateRef } from '../../src/chain/certificate-lookup';
import { prependField } from '../../src/chain/message-fields';
import { bindRecipients } from '../../src/chain/recipients';
import { seal } from '../../src/chain/seal';
import { verifyChain } from '../../src/chain/verify-chain';
import { answerBlindedDecryption, generateEncryptionKeyPair, transformBlindedWithProof } from '../../src/crypto';
import { defaultGroup, groups } from '../../src/crypto/backend';
import { systemRng } from '../../src/crypto/random';
import type { Network } from '../../src/demo/network';
import { collect, encryptMessage } from '../../src/envelope';
import { parseCertificate } from '../../src/pki/certificate';
import { privateKeyFromPem } from '../../src/pki/keys';
import { loadUserProfile } from '../../src/user/profile';
import { openMessage } from '../../src/user/open';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { KeydProxy, b64, unb64 } from '../support/keyd-proxy';
import { ORGS, network, smtp, waitFor } from './network-fixture';

jest.setTimeout(240000);

type Mode = 'honest' | 'wrong-key' | 'forged-proof' | 'wrong-target' | 'wrong-reencryption';

/** keyd's answers rewritten per `mode` (the proxy: test/support/keyd-proxy.ts). */
class LyingKeyd extends KeydProxy {
  mode: Mode = 'honest';
  /** The liar's own key pair: a genuine key, just not the one the bundle certifies. */
  private readonly liar = generateEncryptionKeyPair(defaultGroup, systemRng);

  protected lie(path: string, json: Record<string, unknown>, asked: Record<string, unknown>): boolean {
    if (this.mode === 'wrong-key' && path === '/v1/decrypt') {
      // a blinded decryption under the liar's key, with a proof that is consistent — for the liar's key
      const out = answerBlindedDecryption(defaultGroup, this.liar.privateKey, undefined, { e: unb64(asked.e) }, systemRng);
      Object.assign(json, { z: b64(out.z), c: b64(out.proof.c), s: b64(out.proof.s) });
      return true;
    }
    if (this.mode === 'wrong-key' && path === '/v1/public') {
      // and keyd's own report names the liar's key, so a check against /v1/public would pass
      const keys = json.keys as { publicKey: string }[];
      for (const k of keys) k.publicKey = Buffer.from(this.liar.publicKey).toString('hex');
      return true;
    }
    if (this.mode === 'forged-proof' && path === '/v1/decrypt') {
      const s = Buffer.from(String(json.s), 'base64url');
      s[s.length - 1]! ^= 1;
      json.s = s.toString('base64url');
      return true;
    }
    if (this.mode === 'wrong-reencryption' && path === '/v1/reencrypt') {
      // re-encrypted to the right target, under the right key id, but made with the liar's key — and a proof consistent for that key
      const out = transformBlindedWithProof(
        defaultGroup,
        this.liar.privateKey,
        { e: unb64(asked.e), f: unb64(asked.f) },
        new Uint8Array(Buffer.from(String(json.targetPublicKey), 'hex')),
        systemRng,
      );
      Object.assign(json, { u: b64(out.u), v: b64(out.v), c: b64(out.proof.c), s1: b64(out.proof.s1), s2: b64(out.proof.s2) });
      return true;
    }
    if (this.mode === 'wrong-target' && path === '/v1/reencrypt') {
      json.targetKeyId = `${this.node.domain}:v1`; // a real key id, just not the target asked for
      return true;
    }
    return false;
  }
}

let net: Network;
let liar: LyingKeyd;
/** In front of a.example's keyd for its separate inspector process. */
let liarA: LyingKeyd;
const SECRET = 'Lying-keyd secret: Osprey-2207';
const B = () => net.org('b.example');
const toB = (rcpts: string[], raw: Buffer) => smtp(B().ports.smtp, 'peer@x.example', rcpts, raw);
const copies = (rcpt: string, tag: string) =>
  B()
    .mailbox.for(rcpt)
    .filter((m) => m.raw.toString('latin1').includes(`Subject: ${tag}`));

beforeAll(async () => {
  // a.example inspects its outbound mail (DLP) in a separate inspector process, which asks keyd for blinded decryptions itself
  net = await network(
    ORGS.filter((o) => o.domain !== 'c.example').map((o) =>
      o.domain === 'a.example' ? { ...o, inspector: { inspectIni: '[dlp]\nenabled=true\n' } } : o,
    ),
  );
  liarA = new LyingKeyd(net.org('a.example'));
  const inspectorIni = join(net.org('a.example').inspectorDir, 'inspector.ini');
  const insText = readFileSync(inspectorIni, 'utf8');
  const insRewritten = insText.replace(
    `url=https://127.0.0.1:${net.org('a.example').ports.keyd}`,
    `url=https://127.0.0.1:${await liarA.listen()}`,
  );
  expect(insRewritten).not.toBe(insText);
  writeFileSync(inspectorIni, insRewritten, { mode: 0o600 });
  await net.org('a.example').restartInspector();
  liar = new LyingKeyd(B());
  const port = await liar.listen();
  // b.example's gateway speaks to keyd through the liar (gateway and inspector credentials alike)
  const ini = join(B().harakaDir, 'config', 'ssmax.ini');
  const text = readFileSync(ini, 'utf8');
  const rewritten = text.replace(`url=https://127.0.0.1:${B().ports.keyd}`, `url=https://127.0.0.1:${port}`);
  expect(rewritten).not.toBe(text);
  writeFileSync(ini, rewritten, { mode: 0o600 });
  await B().restartHaraka();
});
afterAll(async () => {
  await net?.stop();
  await liar?.close();
  await liarA?.close();
});

/** A message sealed i=1 by a.example with its genuine key, encrypted to b.example's current key, binding `rcpts`. */
async function fromA(tag: string, rcpts: string[]): Promise<Buffer> {
  const A = net.org('a.example');
  const admin = B().admin(); // straight to the real keyd
  const pub = await admin.call<{ current: string; keys: { keyId: string; publicKey: string }[] }>('GET', '/v1/public');
  admin.close();
  const key = pub.keys.find((k) => k.keyId === pub.current)!;
  const plain = Buffer.from(
    `From: alice@a.example\r\nTo: ${rcpts.join(', ')}\r\nSubject: ${tag}\r\nMessage-ID: <${randomBytes(6).toString('hex')}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${SECRET} ${tag}\r\n`,
  );
  const encrypted = await collect(
    encryptMessage(plain, [{ keyId: key.keyId, publicKey: new Uint8Array(Buffer.from(key.publicKey, 'hex')) }], {
      group: groups.libsecp256k1,
      rng: systemRng,
    }),
  );
  const binding = bindRecipients(rcpts);
  const withField = prependField(encrypted, binding.field);
  const chain = await verifyChain(withField, { lookup: () => undefined, now: Date.now });
  const pki = (f: string) => join(A.fx.dir, f);
  const sealed = await seal(withField, {
    domain: 'a.example',
    certRef: certificateRef(parseCertificate(readFileSync(pki('seal.cert.pem'), 'utf8')).der),
    privateKey: privateKeyFromPem(readFileSync(pki('seal.key.pem'), 'utf8')),
    now: Date.now,
    verdicts: [{ name: 'e2e', result: 'pass' }],
    trackingToken: randomBytes(32),
    chain,
    recipientCommitment: binding.commitment,
  });
  return Buffer.from(sealed.message);
}

test('control: with the proxy answering honestly, a plain-client recipient gets the message decrypted', async () => {
  liar.mode = 'honest';
  expect(await toB(['carol@b.example'], await fromA('ly0', ['carol@b.example']))).toMatch(/^250 /);
  expect(copies('carol@b.example', 'ly0')).toHaveLength(1);
  expect(copies('carol@b.example', 'ly0')[0]!.raw.toString()).toContain(`${SECRET} ly0`);
});

describe.each([
  ['wrong-key', 'a blinded decryption under another key, with a proof consistent for that key, and /v1/public reporting that key'],
  ['forged-proof', 'the real blinded decryption with a forged DLEQ proof'],
] as const)('%s: %s', (mode, _what) => {
  test('refused 451 4.7.5 by the bundle-anchored proof check; nothing delivered; once honest, the retry is delivered exactly once', async () => {
    const tag = `ly-${mode}`;
    const raw = await fromA(tag, ['carol@b.example']);
    const lies = () => liar.lies.get('/v1/decrypt') ?? 0;
    const before = lies();
    liar.mode = mode;
    try {
      const reply = await toB(['carol@b.example'], raw);
      expect(reply).toMatch(/^45\d 4\.7\.5 .*key service answer refused: Key service proof does not verify: wrong key or wrong answer/);
      expect(lies()).toBeGreaterThan(before); // the lie was told, and caught
      expect(copies('carol@b.example', tag)).toHaveLength(0);
      expect(B().mailbox.mails.some((m) => m.raw.toString('latin1').includes(`${SECRET} ${tag}`))).toBe(false);
    } finally {
      liar.mode = 'honest';
    }
    // the sending MTA retries the same message: delivered once, and a further retry is not delivered again
    expect(await toB(['carol@b.example'], raw)).toMatch(/^250 /);
    expect(await toB(['carol@b.example'], raw)).toMatch(/^250 /);
    expect(copies('carol@b.example', tag)).toHaveLength(1);
    expect(copies('carol@b.example', tag)[0]!.raw.toString()).toContain(`${SECRET} ${tag}`);
  });
});

test("wrong-target: a re-encryption answer for another key id than the target asked is refused 451 4.7.5; the real sender's queue delivers it exactly once when keyd is honest again", async () => {
  const A = net.org('a.example');
  const alice = loadUserProfile(A.profiles['alice@a.example']!);
  const tag = 'ly-target';
  const original = Buffer.from(
    `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: ${tag}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <${tag}@a.example>\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${SECRET} ${tag}\r\n`,
  );
  const lies = () => liar.lies.get('/v1/reencrypt') ?? 0;
  // first the refusal as a peer sees it: the message a.example would send, straight to b.example
  liar.mode = 'wrong-target';
  try {
    const direct = await fromA('ly-target-direct', ['bob@b.example']);
    expect(await toB(['bob@b.example'], direct)).toMatch(
      /^45\d 4\.7\.5 .*key service answer refused: re-encrypted to "b\.example:v1", asked for "[^"]+"/,
    );
    expect(copies('bob@b.example', 'ly-target-direct')).toHaveLength(0);
    // then the real path: Alice submits at a.example; its gateway relays to b.example, gets 451 and keeps it queued
    const r = await submitMessage(alice, await signAndEncrypt(alice, original, { now: new Date() }), { to: ['bob@b.example'] });
    expect(r.response).toMatch(/^250 /);
    const first = lies();
    await waitFor(
      () => lies() >= first + 2,
      60000,
      () => `re-encryption lies: ${lies()}`,
    ); // refused at least twice: the first try and a retry
    expect(copies('bob@b.example', tag)).toHaveLength(0);
  } finally {
    liar.mode = 'honest';
  }
  await waitFor(() => copies('bob@b.example', tag).length > 0, 60000);
  await new Promise((r) => setTimeout(r, 12000)); // more than two of a.example's retry intervals (5 s): no second copy follows
  expect(copies('bob@b.example', tag)).toHaveLength(1);
  const bob = loadUserProfile(B().profiles['bob@b.example']!);
  const opened = await openMessage(bob, copies('bob@b.example', tag)[0]!.raw, { now: new Date() });
  expect(opened.plaintext.toString()).toContain(`${SECRET} ${tag}`);
});

test('the separate inspector process (a.example, remote inspection) refuses a decryption under another key: the submission is 45x 4.7.5, nothing relayed; resubmitted once honest, delivered once', async () => {
  const A = net.org('a.example');
  const alice = loadUserProfile(A.profiles['alice@a.example']!);
  const tag = 'ly-inspector';
  const original = Buffer.from(
    `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: ${tag}\r\nDate: ${new Date().toUTCString()}\r\nMessage-ID: <${tag}@a.example>\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${SECRET} ${tag}\r\n`,
  );
  const submit = async () => {
    try {
      return (await submitMessage(alice, await signAndEncrypt(alice, original, { now: new Date() }), { to: ['bob@b.example'] })).response;
    } catch (err) {
      return (err as Error).message;
    }
  };
  const lies = () => liarA.lies.get('/v1/decrypt') ?? 0;
  const before = lies();
  liarA.mode = 'wrong-key';
  try {
    expect(await submit()).toMatch(/45\d 4\.7\.5 Inspection unavailable: .*proof does not verify/);
    expect(lies()).toBeGreaterThan(before);
  } finally {
    liarA.mode = 'honest';
  }
  await new Promise((r) => setTimeout(r, 7000)); // longer than a.example's retry interval: nothing was queued
  expect(copies('bob@b.example', tag)).toHaveLength(0);
  expect(await submit()).toMatch(/^250 /);
  await waitFor(() => copies('bob@b.example', tag).length > 0, 60000);
  expect(copies('bob@b.example', tag)).toHaveLength(1);
});

test('wrong-reencryption: re-encrypted for the right target and key id but under another key, with a proof consistent for that key: refused 45x 4.7.5 by the bundle-anchored re-encryption proof; once honest, delivered once and readable', async () => {
  const tag = 'ly-reenc';
  const raw = await fromA(tag, ['bob@b.example']);
  const lies = () => liar.lies.get('/v1/reencrypt') ?? 0;
  const before = lies();
  liar.mode = 'wrong-reencryption';
  try {
    expect(await toB(['bob@b.example'], raw)).toMatch(
      /^45\d 4\.7\.5 .*key service answer refused: re-encryption proof does not verify: wrong key or wrong answer/,
    );
    expect(lies()).toBeGreaterThan(before);
    expect(copies('bob@b.example', tag)).toHaveLength(0);
  } finally {
    liar.mode = 'honest';
  }
  expect(await toB(['bob@b.example'], raw)).toMatch(/^250 /);
  expect(await toB(['bob@b.example'], raw)).toMatch(/^250 /);
  expect(copies('bob@b.example', tag)).toHaveLength(1);
  const bob = loadUserProfile(B().profiles['bob@b.example']!);
  expect((await openMessage(bob, copies('bob@b.example', tag)[0]!.raw, { now: new Date() })).plaintext.toString()).toContain(
    `${SECRET} ${tag}`,
  );
});
