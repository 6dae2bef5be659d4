/**
 * The gateway's reuse of user facts (src/keyd/client-ops.ts), as a unit:
 * keyd is replaced by a counting stand-in here; the real keyd is exercised by
 * the end-to-end tests.
 */
import { answerBlindedDecryption, encapsulate, generateEncryptionKeyPair, groups, newMessageKey, systemRng } from '../../src/crypto';
import { GatewayError } from '../../src/mail/replies';
import { KeydClient, KeydClientError } from '../../src/keyd/client';
import { KeydOps, type UserFacts } from '../../src/keyd/client-ops';

const active = (address: string): UserFacts => ({
  address,
  status: 'active',
  kind: 'organisation',
  inspectionConsent: false,
  encryptionKeyId: 'k1',
  signingCertificate: null,
});

function keyd(answer: (address: string) => UserFacts | undefined): { client: KeydClient; calls: string[] } {
  const calls: string[] = [];
  const client = Object.create(KeydClient.prototype) as KeydClient;
  client.call = (async (_method: string, path: string) => {
    const address = decodeURIComponent(path.split('/').pop()!);
    calls.push(address);
    const facts = answer(address);
    if (!facts) throw new KeydClientError('not-found', 'No such user', 404);
    return facts;
  }) as KeydClient['call'];
  return { client, calls };
}

describe('user facts', () => {
  test('an active user is asked once within the reuse period, again after it', async () => {
    let now = 0;
    const { client, calls } = keyd(active);
    const ops = new KeydOps(groups.libsecp256k1, client, undefined, 5000, () => now);
    expect((await ops.user('bob@b.example'))?.status).toBe('active');
    now = 4999;
    await ops.user('Bob@B.example');
    expect(calls).toEqual(['bob@b.example']);
    now = 5000;
    await ops.user('bob@b.example');
    expect(calls).toHaveLength(2);
  });

  test('fresh asks keyd every time, and what it learns replaces what was kept', async () => {
    let status: 'active' | 'suspended' = 'active';
    const { client, calls } = keyd((a) => ({ ...active(a), status }));
    const ops = new KeydOps(groups.libsecp256k1, client, undefined, 5000, () => 0);
    await ops.user('bob@b.example');
    status = 'suspended';
    expect((await ops.user('bob@b.example', true))?.status).toBe('suspended');
    expect((await ops.user('bob@b.example'))?.status).toBe('suspended'); // not the active answer kept before
    expect(calls).toHaveLength(3);
  });

  test('unregistered and suspended answers are never reused', async () => {
    const { client, calls } = keyd((a) => (a.startsWith('sus') ? { ...active(a), status: 'suspended' } : undefined));
    const ops = new KeydOps(groups.libsecp256k1, client, undefined, 5000, () => 0);
    expect(await ops.user('nobody@b.example')).toBeUndefined();
    expect(await ops.user('nobody@b.example')).toBeUndefined();
    expect((await ops.user('sus@b.example'))?.status).toBe('suspended');
    expect((await ops.user('sus@b.example'))?.status).toBe('suspended');
    expect(calls).toHaveLength(4);
  });

  test('a reuse period of 0 asks keyd every time', async () => {
    const { client, calls } = keyd(active);
    const ops = new KeydOps(groups.libsecp256k1, client, undefined, 0, () => 0);
    await ops.user('bob@b.example');
    await ops.user('bob@b.example');
    expect(calls).toHaveLength(2);
  });
});

/**
 * A lying key service (docs/security.md): it answers a blinded decryption with
 * another key than the organisation's, and a valid proof for that other key;
 * and it reports that other key at GET /v1/public. Only a check against the
 * key certified in the organisation's own bundle catches it.
 */
describe('proofs checked against the certified key', () => {
  const group = groups.libsecp256k1;
  const real = generateEncryptionKeyPair(group, systemRng);
  const liar = generateEncryptionKeyPair(group, systemRng);
  const keyId = 'b.example:v1';
  const messageKey = newMessageKey(group, systemRng);
  const capsule = encapsulate(group, messageKey, { keyId, publicKey: real.publicKey }, systemRng);
  const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');

  function lyingKeyd(): KeydClient {
    const client = Object.create(KeydClient.prototype) as KeydClient;
    client.call = (async (_method: string, path: string, body?: { e: string; target?: unknown }) => {
      if (path === '/v1/public')
        return { current: keyId, keys: [{ keyId, publicKey: Buffer.from(liar.publicKey).toString('hex'), state: 'current' }] };
      if (path === '/v1/decrypt') {
        const r = answerBlindedDecryption(
          group,
          liar.privateKey,
          liar.publicKey,
          { e: new Uint8Array(Buffer.from(body!.e, 'base64url')) },
          systemRng,
        );
        return { z: b64(r.z), c: b64(r.proof.c), s: b64(r.proof.s) };
      }
      if (path === '/v1/reencrypt')
        return { u: b64(new Uint8Array(33).fill(2)), v: b64(new Uint8Array(33).fill(2)), targetKeyId: 'b.example:v9' };
      throw new Error(`unexpected ${path}`);
    }) as KeydClient['call'];
    return client;
  }

  test("unanchored (keyd's own report), the lie goes through: a wrong message key", async () => {
    const ops = new KeydOps(group, lyingKeyd(), lyingKeyd());
    const got = await ops.messageKey(capsule, await ops.certifiedKey(keyId));
    expect(Buffer.from(got.messageKey).equals(Buffer.from(messageKey))).toBe(false);
  });

  test('anchored in the bundle, the proof fails and the answer is refused (4xx: the message stays with the sender)', async () => {
    const ops = new KeydOps(group, lyingKeyd(), lyingKeyd());
    ops.anchorProofs((id) => Promise.resolve(id === keyId ? real.publicKey : undefined));
    const err = await ops.messageKey(capsule, await ops.certifiedKey(keyId)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).reply).toMatchObject({ code: 451, status: '4.7.5' });
    expect((err as GatewayError).message).toMatch(/key service answer refused/);
    await expect(ops.certifiedKey('b.example:v7')).rejects.toThrow(/not certified in the organisation's bundle/);
  });

  test('a re-encryption answer for another key than the target asked is refused', async () => {
    const ops = new KeydOps(group, lyingKeyd());
    const err = await ops.reencrypt(capsule, { kind: 'user', address: 'bob@b.example' }, 'bob-key-1').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).message).toMatch(/re-encrypted to "b\.example:v9", asked for "bob-key-1"/);
  });

  test('a key id answered as no string (an object with a "toString" of its own, as JSON can carry) is a refused answer, 451 4.7.5: never a crash, never a 5xx', async () => {
    const odd = Object.create(KeydClient.prototype) as KeydClient;
    odd.call = (async () => ({
      u: b64(new Uint8Array(33).fill(2)),
      v: b64(new Uint8Array(33).fill(2)),
      c: b64(new Uint8Array(32)),
      s1: b64(new Uint8Array(32)),
      s2: b64(new Uint8Array(32)),
      targetKeyId: JSON.parse('{"toString":1}'),
    })) as KeydClient['call'];
    const ops = new KeydOps(group, odd);
    for (const expect_ of ['b.example:v2', undefined]) {
      const err = await ops.reencrypt(capsule, { kind: 'own-newer' }, expect_).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).reply).toMatchObject({ code: 451, status: '4.7.5' });
      expect((err as GatewayError).message).toMatch(/key service answer refused: .*an object/);
    }
  });

  test('a point, a proof value or the target key answered as no string is a refused answer naming it, 451 4.7.5 (it was a TypeError, 4.3.0)', async () => {
    const answers: Record<string, unknown>[] = [
      { u: JSON.parse('{"toString":1}') },
      { c: [1] },
      { targetPublicKey: JSON.parse('{"toString":1}') },
    ];
    for (const [i, odd] of answers.entries()) {
      const client = Object.create(KeydClient.prototype) as KeydClient;
      client.call = (async () => ({
        u: b64(new Uint8Array(33).fill(2)),
        v: b64(new Uint8Array(33).fill(2)),
        c: b64(new Uint8Array(32)),
        s1: b64(new Uint8Array(32)),
        s2: b64(new Uint8Array(32)),
        targetKeyId: 'bob-key-1',
        ...odd,
      })) as KeydClient['call'];
      const err = await new KeydOps(group, client).reencrypt(capsule, { kind: 'user', address: 'bob@b.example' }, 'bob-key-1').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).reply).toMatchObject({ code: 451, status: '4.7.5' });
      expect((err as GatewayError).message).toMatch([/"u" is an object/, /"c" is a list/, /target's public key is an object/][i]!);
    }
  });
});

describe('addresses that no directory entry can have', () => {
  test('a quoted or UTF-8 local part is no user and no list, answered without asking keyd (which answers 400: a 451 for ever before)', async () => {
    const { client, calls } = keyd(active);
    const ops = new KeydOps(groups.libsecp256k1, client, undefined, 5000, () => 0);
    for (const address of ['"a b"@b.example', '\u00e9t\u00e9@b.example', `${'x'.repeat(65)}@b.example`]) {
      expect(await ops.kind(address)).toEqual({ kind: 'none' });
      expect(await ops.user(address)).toBeUndefined();
      expect(await ops.list(address)).toBeUndefined();
      await expect(ops.mintToken(address, '<m@b.example>')).rejects.toMatchObject({ reply: { code: 550, status: '5.7.1' } });
    }
    expect(calls).toEqual([]);
    expect((await ops.user('bob@b.example'))?.status).toBe('active'); // control: a dot-atom address is asked
    expect(calls).toEqual(['bob@b.example']);
  });
});
