/**
 * A lying key service, through real processes (issue 15, docs/security.md "A
 * lying key service"; docs/keyd-api.md, "Batches"): real Haraka gateways with
 * the ssmax plugin, real keyd over mutual TLS, bundle publishers and mailbox
 * stores on loopback, and, in b.example's path to its keyd, the TLS proxy of
 * test/support/keyd-proxy.ts, which holds keyd's own server certificate and
 * key (as an attacker who took keyd's key, or keyd itself when compromised,
 * would) and rewrites keyd's answers. The same proxy stands in front of
 * a.example's keyd for its separate inspector process.
 *
 * Why a proxy and not a fault switch inside keyd: the lie then needs no code
 * in the shipped key service at all, so there is no setting that could ever
 * turn it on in production, and the real keyd behind it stays untouched
 * (its audit log, its keys). The proxy authenticates the gateway's client
 * certificate like keyd does, and speaks to the real keyd with the same
 * role's credentials.
 *
 * One network for both parts (the start of a second one cost about as much
 * as the tests of either part):
 *
 * "single answers": lies in answers to /v1/decrypt, /v1/public and
 * /v1/reencrypt. The gateway answers a lie 451 4.7.5 (key service
 * unavailable: a fault on the receiving side, never the message's; Haraka
 * sends it as 450 after DATA), delivers nothing, and once the key service
 * answers honestly again the same message — retried by the sender — is
 * delivered exactly once.
 *
 * "batched answers": lies in slots of answers to POST /v1/batch. b.example's
 * gateway then waits `[keyd] batch_window_ms` for other re-encryptions, so
 * three messages arriving together (one each for bob, erin and gina) travel in
 * one batch. The proxy lies only in a batch that holds all three, and the test
 * checks it did: a lying slot's message is answered 45x 4.7.5 as a single
 * lying answer is, while the honest slots' messages of the very same batch are
 * delivered (250) and open for their recipients; once keyd is honest again,
 * the refused message, retried, is delivered exactly once. A list's fan-out
 * (src/keyd/client-batch.ts `many`): the member re-encryptions of one post
 * travel in one batch; a lie in any slot refuses the post as a whole (one SMTP
 * answer for the post, docs/lists.md), nothing is delivered, and the retry
 * delivers each member exactly once.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateRef } from '../../src/chain/certificate-lookup';
import { prependField } from '../../src/chain/message-fields';
import { bindRecipients } from '../../src/chain/recipients';
import { seal } from '../../src/chain/seal';
import { verifyChain } from '../../src/chain/verify-chain';
import { main } from '../../src/cli/main';
import { answerBlindedDecryption, generateEncryptionKeyPair, transformBlindedWithProof } from '../../src/crypto';
import { defaultGroup, groups } from '../../src/crypto/backend';
import { systemRng } from '../../src/crypto/random';
import type { Network } from '../../src/demo/network';
import { collect, encryptMessage } from '../../src/envelope';
import { queuedCopies } from '../../src/gateway/queue-reconcile';
import { parseCertificate } from '../../src/pki/certificate';
import { privateKeyFromPem } from '../../src/pki/keys';
import { openMessage } from '../../src/user/open';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { KeydProxy, b64, unb64 } from '../support/keyd-proxy';
import { ORGS, network, smtp, waitFor, withUsers } from './network-fixture';

jest.setTimeout(300000);

/** Lies in single answers. */
type SingleMode = 'wrong-key' | 'forged-proof' | 'wrong-target' | 'wrong-reencryption';
/** Lies in slots of a batch answer. */
type BatchMode = 'decrypt-z' | 'decrypt-proof' | 'slot-v' | 'slot-u' | 'slot-proof' | 'swap' | 'other-target' | 'other-target-key';
type Mode = 'honest' | SingleMode | BatchMode;

type Slot = Record<string, unknown>;
type Op = { op?: string; target?: { kind?: string; address?: string; member?: string } };

/** Whom a re-encryption operation is for: a user, or a list's member. */
const whom = (op: Op): string | undefined => op.target?.address ?? op.target?.member;

const plusG = (point: unknown): string =>
  b64(defaultGroup.encodeUncompressed(defaultGroup.add(defaultGroup.decode(unb64(point), 'point'), defaultGroup.mulBase(1n))));

/**
 * keyd's answers rewritten per `mode`: single answers (/v1/decrypt, /v1/public, /v1/reencrypt), or one
 * or two slots of a /v1/batch answer, only in a batch re-encrypting for all of `expect`.
 */
class LyingKeyd extends KeydProxy {
  mode: Mode = 'honest';
  /** The liar's own key pair: a genuine key, just not the one the bundle certifies. */
  private readonly liar = generateEncryptionKeyPair(defaultGroup, systemRng);
  /** Batches: the slot(s) to lie in, by recipient: the first; `swap` and `other-target` take the second as the other slot. */
  victims: string[] = [];
  /** Batches: the recipients a batch must hold, all of them, for the proxy to lie in it. */
  expect: string[] = [];
  /** Sizes of the re-encryption batches seen. */
  readonly batches: number[] = [];

  protected lie(path: string, json: Record<string, unknown>, asked: Record<string, unknown>): boolean {
    return path === '/v1/batch' ? this.lieInBatch(json, asked) : this.lieAlone(path, json, asked);
  }

  private lieAlone(path: string, json: Record<string, unknown>, asked: Record<string, unknown>): boolean {
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

  private lieInBatch(json: Record<string, unknown>, asked: Record<string, unknown>): boolean {
    if (!Array.isArray(asked.ops) || !Array.isArray(json.results)) return false;
    const ops = asked.ops as Op[];
    const results = json.results as Slot[];
    if (ops.every((o) => o.op === 'decrypt')) {
      // blinded decryptions name no recipient: the first slot of a batch of `expect.length` lies
      if (ops.length !== this.expect.length || results[0]?.error) return false;
      if (this.mode === 'decrypt-z') results[0]!.z = plusG(results[0]!.z);
      else if (this.mode === 'decrypt-proof') results[0]!.c = results[1]!.c;
      else return false;
      return true;
    }
    if (!ops.every((o) => o.op === 'reencrypt')) return false;
    this.batches.push(ops.length);
    if (this.mode === 'honest' || !this.expect.every((a) => ops.some((o) => whom(o) === a))) return false;
    const at = (who: string | undefined): number => ops.findIndex((o) => whom(o) === who);
    const [i, j] = [at(this.victims[0]), at(this.victims[1])];
    const slot = results[i]!;
    if (i < 0 || slot.error) return false;
    switch (this.mode) {
      case 'slot-v':
        slot.v = plusG(slot.v); // a valid point, just another one
        return true;
      case 'slot-u':
        slot.u = plusG(slot.u);
        return true;
      case 'slot-proof': {
        const s1 = Buffer.from(unb64(slot.s1));
        s1[s1.length - 1]! ^= 1;
        slot.s1 = b64(s1);
        return true;
      }
      case 'swap': {
        // the blinded results and proofs of two operations exchanged, each slot still naming its own target
        const other = results[j]!;
        for (const k of ['u', 'v', 'c', 's1', 's2']) [slot[k], other[k]] = [other[k], slot[k]];
        return true;
      }
      case 'other-target':
        // the victim's slot is the other operation's answer: a genuine re-encryption, for another target
        results[i] = { ...results[j]! };
        return true;
      case 'other-target-key':
        // the victim's slot claims to be for its own key id, but names another user's key as the target key
        slot.targetPublicKey = results[j]!.targetPublicKey;
        return true;
    }
    return false;
  }
}

let net: Network;
/** In b.example's path to its keyd (gateway and inspector credentials alike). */
let liar: LyingKeyd;
let liarPort: number;
/** In front of a.example's keyd for its separate inspector process. */
let liarA: LyingKeyd;
const B = () => net.org('b.example');
const toB = (rcpts: string[], raw: Buffer) => smtp(B().ports.smtp, 'peer@x.example', rcpts, raw);
const ssmaxIni = () => join(B().harakaDir, 'config', 'ssmax.ini');

beforeAll(async () => {
  // a.example inspects its outbound mail (DLP) in a separate inspector process, which asks keyd for blinded decryptions itself;
  // b.example has gina (SSMAX client) and hal (plain client) too, for the batches
  net = await network(
    withUsers(
      ORGS.filter((o) => o.domain !== 'c.example').map((o) =>
        o.domain === 'a.example' ? { ...o, inspector: { inspectIni: '[dlp]\nenabled=true\n' } } : o,
      ),
      {
        'b.example': [
          { address: 'gina@b.example', client: 'ssmax', password: 'pw-gina' },
          { address: 'hal@b.example', client: 'plain', password: 'pw-hal' },
        ],
      },
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
  liarPort = await liar.listen();
  // b.example's gateway speaks to keyd through the liar (gateway and inspector credentials alike)
  const text = readFileSync(ssmaxIni(), 'utf8');
  const rewritten = text.replace(`url=https://127.0.0.1:${B().ports.keyd}`, `url=https://127.0.0.1:${liarPort}`);
  expect(rewritten).not.toBe(text);
  writeFileSync(ssmaxIni(), rewritten, { mode: 0o600 });
  await B().restartHaraka();
});
afterAll(async () => {
  await net?.stop();
  await liar?.close();
  await liarA?.close();
});

/** A message sealed i=1 by a.example with its genuine key, encrypted to b.example's current key, binding `rcpts`. */
async function fromA(tag: string, rcpts: string[], secret: string): Promise<Buffer> {
  const A = net.org('a.example');
  const admin = B().admin(); // straight to the real keyd
  const pub = await admin.call<{ current: string; keys: { keyId: string; publicKey: string }[] }>('GET', '/v1/public');
  admin.close();
  const key = pub.keys.find((k) => k.keyId === pub.current)!;
  const plain = Buffer.from(
    `From: alice@a.example\r\nTo: ${rcpts.join(', ')}\r\nSubject: ${tag}\r\nMessage-ID: <${randomBytes(6).toString('hex')}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${secret} ${tag}\r\n`,
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

describe('single answers', () => {
  const SECRET = 'Lying-keyd secret: Osprey-2207';
  const sealedFromA = (tag: string, rcpts: string[]) => fromA(tag, rcpts, SECRET);
  const copies = (rcpt: string, tag: string) =>
    B()
      .mailbox.for(rcpt)
      .filter((m) => m.raw.toString('latin1').includes(`Subject: ${tag}`));
  /** Whether a.example's Haraka queue holds a copy for bob@b.example (a file it will load and deliver). */
  const queuedForBob = () => queuedCopies(join(net.org('a.example').harakaDir, 'queue')).some((c) => c.rcpts.includes('bob@b.example'));

  test('control: with the proxy answering honestly, a plain-client recipient gets the message decrypted', async () => {
    liar.mode = 'honest';
    expect(await toB(['carol@b.example'], await sealedFromA('ly0', ['carol@b.example']))).toMatch(/^250 /);
    expect(copies('carol@b.example', 'ly0')).toHaveLength(1);
    expect(copies('carol@b.example', 'ly0')[0]!.raw.toString()).toContain(`${SECRET} ly0`);
  });

  describe.each([
    ['wrong-key', 'a blinded decryption under another key, with a proof consistent for that key, and /v1/public reporting that key'],
    ['forged-proof', 'the real blinded decryption with a forged DLEQ proof'],
  ] as const)('%s: %s', (mode, _what) => {
    test('refused 451 4.7.5 by the bundle-anchored proof check; nothing delivered; once honest, the retry is delivered exactly once', async () => {
      const tag = `ly-${mode}`;
      const raw = await sealedFromA(tag, ['carol@b.example']);
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
      const direct = await sealedFromA('ly-target-direct', ['bob@b.example']);
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
      expect(queuedForBob()).toBe(true); // a.example keeps it queued
    } finally {
      liar.mode = 'honest';
    }
    await waitFor(() => copies('bob@b.example', tag).length > 0, 60000);
    // delivered: a.example's queue lets it go, so no retry can bring a second copy
    await waitFor(() => !queuedForBob(), 30000);
    await new Promise((r) => setTimeout(r, 1000));
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
    // nothing was queued: Haraka queues before it answers 250, and this submission was answered 45x
    expect(queuedForBob()).toBe(false);
    expect(copies('bob@b.example', tag)).toHaveLength(0);
    expect(await submit()).toMatch(/^250 /);
    await waitFor(() => copies('bob@b.example', tag).length > 0, 60000);
    expect(copies('bob@b.example', tag)).toHaveLength(1);
  });

  test('wrong-reencryption: re-encrypted for the right target and key id but under another key, with a proof consistent for that key: refused 45x 4.7.5 by the bundle-anchored re-encryption proof; once honest, delivered once and readable', async () => {
    const tag = 'ly-reenc';
    const raw = await sealedFromA(tag, ['bob@b.example']);
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
});

describe('batched answers', () => {
  const SECRET = 'Batch-lie secret: Plover-5813';
  const USERS = ['bob@b.example', 'erin@b.example', 'gina@b.example'];
  const LIST = 'team@b.example';
  const sealedFromA = (tag: string, rcpts: string[]) => fromA(tag, rcpts, SECRET);
  const copies = (rcpt: string, tag: string) =>
    B()
      .mailbox.for(rcpt)
      .filter((m) => m.raw.toString('latin1').includes(`Subject: ${tag}\r\n`));
  const profile = (who: string) => loadUserProfile(B().profiles[who]!);

  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  async function opens(who: string, tag: string): Promise<boolean> {
    const got = copies(who, tag);
    if (got.length !== 1) return false;
    return (await openMessage(profile(who), got[0]!.raw, { now: new Date() })).plaintext.toString().includes(`${SECRET} ${tag}`);
  }

  const REFUSED =
    /^45\d 4\.7\.5 .*key service answer refused: (re-encryption proof does not verify: wrong key or wrong answer|re-encrypted to "[^"]+", asked for "[^"]+")/;

  beforeAll(async () => {
    // the list, made straight at the real keyd with the admin role; open, so that a peer's sender may post
    const adminIni = join(B().fx.dir, 'list-admin.ini');
    writeFileSync(
      adminIni,
      [
        '[keyd]',
        `url=https://127.0.0.1:${B().ports.keyd}`,
        'servername=keyd.b.example',
        'cert=admin.pem',
        'key=admin.key',
        'ca=org-ca.pem,root.pem',
        '',
      ].join('\n'),
    );
    expect((await cli('list', 'create', '--config', adminIni, LIST, '--policy', 'open')).code).toBe(0);
    expect((await cli('list', 'add', '--config', adminIni, LIST, ...USERS)).code).toBe(0);
    // b.example's gateway, still through the liar, now waits up to 1 s for operations to coalesce
    const text = readFileSync(ssmaxIni(), 'utf8');
    const rewritten = text.replace(`url=https://127.0.0.1:${liarPort}`, `url=https://127.0.0.1:${liarPort}\nbatch_window_ms=1000`);
    expect(rewritten).not.toBe(text);
    writeFileSync(ssmaxIni(), rewritten, { mode: 0o600 });
    await B().restartHaraka();
  });

  test('control: three messages arriving together travel in one batch through the proxy and are all delivered', async () => {
    liar.mode = 'honest';
    const tag = (u: string) => `bl0-${u.split('@')[0]}`;
    const raws = await Promise.all(USERS.map((u) => sealedFromA(tag(u), [u])));
    const seen = liar.batches.length;
    const replies = await Promise.all(USERS.map((u, k) => toB([u], raws[k]!)));
    for (const r of replies) expect(r).toMatch(/^250 /);
    expect(liar.batches.slice(seen)).toContain(3);
    for (const u of USERS) expect(await opens(u, tag(u))).toBe(true);
  });

  describe.each([
    ['slot-v', "one slot's V replaced by another valid point", ['erin@b.example'], 'proof'],
    ['slot-u', "one slot's U replaced by another valid point", ['gina@b.example'], 'proof'],
    ['slot-proof', "one slot's proof altered (s1)", ['bob@b.example'], 'proof'],
    ['swap', 'the results and proofs of two slots swapped', ['bob@b.example', 'gina@b.example'], 'proof'],
    [
      'other-target',
      "one slot answered with the other operation's genuine answer, for another target",
      ['erin@b.example', 'bob@b.example'],
      'target',
    ],
    ['other-target-key', "one slot naming another user's key as its target key", ['gina@b.example', 'erin@b.example'], 'proof'],
  ] as const)('%s: %s', (mode, _what, victims, caught) => {
    test('the lying slots refused 45x 4.7.5, nothing delivered for them; the honest slots of the same batch delivered; once honest, the retry delivered exactly once', async () => {
      const tag = (u: string) => `bl-${mode}-${u.split('@')[0]}`;
      // a swap lies in both slots it exchanges; the other modes only in the first
      const lying: readonly string[] = mode === 'swap' ? victims : victims.slice(0, 1);
      const raws = await Promise.all(USERS.map((u) => sealedFromA(tag(u), [u])));
      const before = liar.lies.get('/v1/batch') ?? 0;
      liar.mode = mode;
      liar.victims = [...victims];
      liar.expect = USERS;
      let replies: string[];
      try {
        replies = await Promise.all(USERS.map((u, k) => toB([u], raws[k]!)));
      } finally {
        liar.mode = 'honest';
      }
      expect(liar.lies.get('/v1/batch') ?? 0).toBe(before + 1); // one batch held all three, and was lied in
      for (const [k, u] of USERS.entries()) {
        if (lying.includes(u)) {
          expect(replies[k]).toMatch(REFUSED);
          expect(replies[k]).toMatch(caught === 'target' ? /re-encrypted to "/ : /re-encryption proof does not verify/);
          expect(copies(u, tag(u))).toHaveLength(0);
        } else {
          expect(replies[k]).toMatch(/^250 /);
          expect(await opens(u, tag(u))).toBe(true);
        }
      }
      expect(B().mailbox.mails.some((m) => lying.some((u) => m.raw.toString('latin1').includes(`${SECRET} ${tag(u)}`)))).toBe(false);
      // the sending MTA retries the refused messages: delivered once, and a further retry is not delivered again
      for (const u of lying) {
        const k = USERS.indexOf(u);
        expect(await toB([u], raws[k]!)).toMatch(/^250 /);
        expect(await toB([u], raws[k]!)).toMatch(/^250 /);
        expect(await opens(u, tag(u))).toBe(true);
      }
    });
  });

  describe.each([
    ['slot-v', ['erin@b.example']],
    ['swap', ['bob@b.example', 'gina@b.example']],
    ['other-target', ['gina@b.example', 'bob@b.example']],
  ] as const)("a list post's fan-out, lied in by %s", (mode, victims) => {
    test('the post is refused as a whole 45x 4.7.5, no member gets a copy; once honest, the retry reaches every member exactly once', async () => {
      const tag = `bl-list-${mode}`;
      const raw = await sealedFromA(tag, [LIST]);
      const before = liar.lies.get('/v1/batch') ?? 0;
      liar.mode = mode;
      liar.victims = [...victims];
      liar.expect = USERS;
      try {
        expect(await toB([LIST], raw)).toMatch(REFUSED);
      } finally {
        liar.mode = 'honest';
      }
      expect(liar.lies.get('/v1/batch') ?? 0).toBe(before + 1);
      for (const u of USERS) expect(copies(u, tag)).toHaveLength(0);
      expect(await toB([LIST], raw)).toMatch(/^250 /);
      expect(await toB([LIST], raw)).toMatch(/^250 /);
      for (const u of USERS) expect(await opens(u, tag)).toBe(true);
    });
  });

  describe.each([
    ['decrypt-z', "one slot's Z′ replaced by another valid point"],
    ['decrypt-proof', "one slot's DLEQ challenge taken from the other slot"],
  ] as const)('blinded decryptions for plain-client recipients, lied in by %s: %s', (mode, _what) => {
    test("the lying slot's message refused 45x 4.7.5, the other message of the same batch delivered; once honest, the retry delivered exactly once", async () => {
      const PLAIN = ['carol@b.example', 'hal@b.example'];
      const tag = (u: string) => `bl-${mode}-${u.split('@')[0]}`;
      const raws = await Promise.all(PLAIN.map((u) => sealedFromA(tag(u), [u])));
      const before = liar.lies.get('/v1/batch') ?? 0;
      liar.mode = mode;
      liar.expect = PLAIN;
      let replies: string[];
      try {
        replies = await Promise.all(PLAIN.map((u, k) => toB([u], raws[k]!)));
      } finally {
        liar.mode = 'honest';
      }
      expect(liar.lies.get('/v1/batch') ?? 0).toBe(before + 1); // one batch held both, and was lied in
      const refused = PLAIN.filter((_, k) => !/^250 /.test(replies[k]!));
      expect(refused).toHaveLength(1); // the slot lied in, whichever message it was
      for (const [k, u] of PLAIN.entries()) {
        if (refused.includes(u)) {
          expect(replies[k]).toMatch(
            /^45\d 4\.7\.5 .*key service answer refused: Key service proof does not verify: wrong key or wrong answer/,
          );
          expect(copies(u, tag(u))).toHaveLength(0);
        } else {
          expect(copies(u, tag(u))).toHaveLength(1);
          expect(copies(u, tag(u))[0]!.raw.toString()).toContain(`${SECRET} ${tag(u)}`);
        }
      }
      const u = refused[0]!;
      const raw = raws[PLAIN.indexOf(u)]!;
      expect(await toB([u], raw)).toMatch(/^250 /);
      expect(await toB([u], raw)).toMatch(/^250 /);
      expect(copies(u, tag(u))).toHaveLength(1);
      expect(copies(u, tag(u))[0]!.raw.toString()).toContain(`${SECRET} ${tag(u)}`);
    });
  });
});
