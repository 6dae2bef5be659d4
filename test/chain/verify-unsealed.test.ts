import { bodyHash } from '../../src/chain/body-hash';
import { seal } from '../../src/chain/seal';
import { parseSeal } from '../../src/chain/tags';
import { verifyChain, verifyUnsealed } from '../../src/chain/verify-chain';
import { TRACKING_TOKEN, directory, makeOrg, now, sampleMessage } from './fixtures';

/**
 * verifyUnsealed: the check of a message of the sealer's own organisation
 * (a submission, a report) before seal i=1, without any certificate lookup.
 */
const org = makeOrg('a.example');
const dir = directory(org);

async function sealedOnce(message: Buffer): Promise<{ message: Buffer; field: string }> {
  const chain = await verifyUnsealed(message, {});
  const out = await seal(message, {
    domain: 'a.example',
    certRef: org.certRef,
    privateKey: org.keys.privateKey,
    now,
    verdicts: [],
    chain,
    trackingToken: TRACKING_TOKEN,
  });
  return { message: Buffer.from(out.message), field: out.field };
}

test('a message without seals: none, with the reading seal i=1 is made over (its bh= is the message body hash)', async () => {
  const message = sampleMessage();
  const chain = await verifyUnsealed(message, {});
  expect(chain.result).toBe('none');
  expect(chain.instances).toEqual([]);
  expect(chain.reading).toBeDefined();
  const { message: sealed, field } = await sealedOnce(message);
  expect(parseSeal(field.slice(field.indexOf(':') + 1)).bodyHash).toBe(await bodyHash(message));
  // and the seal verifies as any chain does
  expect((await verifyChain(sealed, { lookup: dir.lookup, now })).result).toBe('pass');
});

test('a message that carries a seal: fail (malformed) naming the seals, with nothing to seal over', async () => {
  const { message: sealed } = await sealedOnce(sampleMessage());
  const chain = await verifyUnsealed(sealed, {});
  expect(chain).toMatchObject({ result: 'fail', reason: 'malformed' });
  expect(chain.result === 'fail' && chain.detail).toMatch(/1 seal\(s\) where none may be/);
  expect(chain.reading).toBeUndefined();
});

test('a message over the limits of the chain (more MIME parts than allowed): the same failure verifyChain gives', async () => {
  const many = Buffer.concat([
    Buffer.from('MIME-Version: 1.0\r\nFrom: alice@a.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n'),
    ...Array.from({ length: 1100 }, () => Buffer.from('--b\r\nContent-Type: text/plain\r\n\r\nx\r\n')),
    Buffer.from('--b--\r\n'),
  ]);
  const unsealed = await verifyUnsealed(many, {});
  const verified = await verifyChain(many, { lookup: dir.lookup, now });
  expect(unsealed).toMatchObject({ result: 'fail', reason: 'limit-exceeded' }); // more MIME parts than CHAIN_LIMITS.maxParts
  expect(unsealed).toMatchObject({ result: verified.result, reason: (verified as { reason?: string }).reason });
});
