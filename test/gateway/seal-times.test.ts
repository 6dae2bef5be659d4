/**
 * Freshness of an arriving chain (src/gateway/binding.ts checkArrival), as a
 * unit: the seals' times as a verified chain reports them, the directory and
 * the settings stand-ins of this one module. Seal times must never decrease
 * and the newest seal must be at most [chain] max_seal_age_seconds after seal
 * i=1, so a list re-sealing an old seal i=1 hop by hop (each gap within the
 * limit, or a backdated seal) is refused.
 */
import { checkArrival } from '../../src/gateway/binding';
import type { GatewayDeps } from '../../src/gateway/deps';
import type { ChainVerification } from '../../src/chain/verify-chain';
import { GatewayError } from '../../src/mail/replies';

const DAY = 86400;
const LIMIT_S = 6 * DAY;
const NOW_S = 1_900_000_000;

const deps = {
  config: { domain: 'b.example', localDomains: ['b.example'], chain: { maxSealAgeMs: LIMIT_S * 1000, resealers: ['list.example'] } },
  directory: { lookup: (d: string) => Promise.resolve({ domain: d }) },
  clock: () => new Date(NOW_S * 1000),
} as unknown as GatewayDeps;

/** A verified chain of seals made at `times` (seconds), i=1 by a.example, the later ones by list.example. */
function chainAt(times: readonly number[]): ChainVerification {
  return {
    result: 'pass',
    instances: times.map((time, i) => ({ instance: i + 1, domain: i === 0 ? 'a.example' : 'list.example', time })),
  } as unknown as ChainVerification;
}

/** The reply checkArrival gives (none reached: it got past freshness to recipient binding, which these chains lack). */
async function answer(times: readonly number[]): Promise<string> {
  try {
    await checkArrival(deps, Buffer.from('From: alice@a.example\r\n\r\nx'), 'alice@a.example', chainAt(times), ['bob@b.example']);
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return `${err.reply.status} ${err.reply.text}`;
  }
  return 'accepted';
}

describe('seal times along a chain', () => {
  test('control: seals a day apart, the newest an hour old, pass freshness (refused only later, for binding no recipients)', async () => {
    expect(await answer([NOW_S - DAY - 3600, NOW_S - 3600])).toMatch(/^5\.7\.\d+ .*binds no recipients/);
  });

  test('a list re-sealing an old seal i=1 hop by hop, every gap within the limit: 5.4.7 naming the span from seal i=1', async () => {
    const t0 = NOW_S - 15 * DAY;
    expect(await answer([t0, t0 + 5 * DAY, t0 + 10 * DAY, t0 + 15 * DAY - 60])).toMatch(
      /^5\.4\.7 .*seal i=4 by list\.example was made \d+ s after seal i=1 by a\.example, the limit is 518400 s/,
    );
  });

  test('a backdated seal (dated before the seal it re-seals): 5.4.7, even within the limit', async () => {
    expect(await answer([NOW_S - 3600, NOW_S - 7200, NOW_S - 60])).toMatch(
      /^5\.4\.7 .*seal i=2 by list\.example is dated 3600 s before seal i=1 by a\.example/,
    );
  });

  test('seals made in the same second pass', async () => {
    expect(await answer([NOW_S - 60, NOW_S - 60, NOW_S - 60])).toMatch(/binds no recipients/);
  });
});
