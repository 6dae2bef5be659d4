/**
 * The gateway's reuse of user facts (src/gateway/keyd-ops.ts), as a unit:
 * keyd is replaced by a counting stand-in here; the real keyd is exercised by
 * the end-to-end tests.
 */
import { groups } from '../../src/crypto';
import { KeydClient, KeydClientError } from '../../src/keyd/client';
import { KeydOps, type UserFacts } from '../../src/gateway/keyd-ops';

const active = (address: string): UserFacts => ({ address, status: 'active', kind: 'organisation', inspectionConsent: false, encryptionKeyId: 'k1', signingCertificate: null });

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
