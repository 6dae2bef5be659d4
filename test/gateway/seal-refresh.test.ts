/**
 * The receiving side's rule for a seal by a certificate the cached bundle of
 * the sealer does not hold (src/gateway/chain-check.ts verifySeals): one refresh
 * of that bundle (KeyWatch.refreshForSeal), a second verification, and a 5xx
 * only when the certificate is still unknown after a successful fresh fetch.
 * A refresh skipped by the rate limit or a failed one answers 4xx, so a
 * sealing-certificate renewal race never bounces mail.
 *
 * A unit test of the one module: the directory and the key watch are stand-ins;
 * the seal is a real one (src/chain/seal.ts), verified by the real verifyChain.
 */
import { seal } from '../../src/chain/seal';
import { verifyChain } from '../../src/chain/verify-chain';
import type { GatewayDeps } from '../../src/gateway/deps';
import type { SealRefresh } from '../../src/gateway/key-exchange';
import { GatewayError } from '../../src/mail/replies';
import { verifySeals } from '../../src/gateway/chain-check';
import { TRACKING_TOKEN, makeOrg, now, sampleMessage } from '../chain/fixtures';

const sealer = makeOrg('a.example');

async function sealed(): Promise<Buffer> {
  const message = sampleMessage();
  const chain = await verifyChain(message, { lookup: () => undefined, now });
  const out = await seal(message, {
    domain: 'a.example',
    certRef: sealer.certRef,
    privateKey: sealer.keys.privateKey,
    now,
    verdicts: [],
    chain,
    trackingToken: TRACKING_TOKEN,
  });
  return Buffer.from(out.message);
}

/**
 * deps whose cached bundle of a.example lacks the sealer's certificate; `refresh` is what
 * refreshForSeal answers, and on 'refreshed' the bundle holds the certificate when `afterRefresh`.
 */
function deps(refresh: SealRefresh | undefined, afterRefresh: boolean): { deps: GatewayDeps; refreshes: string[] } {
  let known = false;
  const refreshes: string[] = [];
  const entry = {
    domain: 'a.example',
    sealingCertificate: (certRef: string) =>
      known && certRef === sealer.certRef ? { publicKey: sealer.keys.publicKey, domain: 'a.example' } : undefined,
  };
  const keyWatch =
    refresh === undefined
      ? undefined
      : {
          refreshForSeal: (domain: string): Promise<SealRefresh> => {
            refreshes.push(domain);
            if (refresh === 'refreshed' && afterRefresh) known = true;
            return Promise.resolve(refresh);
          },
        };
  const d = {
    config: { domain: 'b.example', cpuBudgetMs: 1000 },
    directory: { lookup: () => Promise.resolve(entry) },
    clock: () => new Date(now()),
    ...(keyWatch ? { keyWatch } : {}),
  };
  return { deps: d as unknown as GatewayDeps, refreshes };
}

async function reply(d: GatewayDeps): Promise<string> {
  try {
    const chain = await verifySeals(d, await sealed());
    return `pass ${chain.result}`;
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return `${err.reply.code} ${err.reply.status} ${err.message}`;
  }
}

test('the renewed certificate is in the freshly fetched bundle: the chain passes', async () => {
  const { deps: d, refreshes } = deps('refreshed', true);
  expect(await reply(d)).toBe('pass pass');
  expect(refreshes).toEqual(['a.example']);
});

test('still unknown after a successful fresh fetch: permanent, 550 5.7.5', async () => {
  expect(await reply(deps('refreshed', false).deps)).toMatch(/^550 5\.7\.5 .*unknown-certificate/);
});

test('the refresh was skipped (rate limit): temporary, 451 4.7.5, never 5xx', async () => {
  expect(await reply(deps('skipped', false).deps)).toMatch(/^451 4\.7\.5 .*unknown-certificate.*a\.example skipped/);
});

test('the refresh failed (publisher unreachable, timeout): temporary, 451 4.7.5, never 5xx', async () => {
  expect(await reply(deps('failed', false).deps)).toMatch(/^451 4\.7\.5 .*unknown-certificate.*a\.example failed/);
});
