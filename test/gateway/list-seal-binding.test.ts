/**
 * Which other organisations' seals an arriving chain may carry (src/gateway/binding.ts checkArrival, with
 * src/lists/chain.ts), as a unit: a verified chain as the chain verifier reports it, the settings stand-ins of this
 * one module, no resealers. A list seal (ls= of the sealer's own domain) is accepted when the list is in To or Cc;
 * an earlier list seal vouches for no later sealer.
 */
import { checkArrival } from '../../src/gateway/binding';
import type { GatewayDeps } from '../../src/gateway/deps';
import type { ChainVerification } from '../../src/chain/verify-chain';
import { GatewayError } from '../../src/mail/replies';

const NOW_S = 1_900_000_000;

const deps = {
  config: { domain: 'b.example', localDomains: ['b.example'], chain: { maxSealAgeMs: 3600 * 1000, resealers: [] } },
  directory: { lookup: (d: string) => Promise.resolve({ domain: d }) },
  clock: () => new Date(NOW_S * 1000),
} as unknown as GatewayDeps;

const chainOf = (seals: readonly { domain: string; ls?: string }[]): ChainVerification =>
  ({
    result: 'pass',
    instances: seals.map((s, i) => ({ instance: i + 1, domain: s.domain, time: NOW_S - 60, ...(s.ls ? { listAddress: s.ls } : {}) })),
  }) as unknown as ChainVerification;

/** The reply checkArrival gives ("binds no recipients": it got past the sealers to recipient binding, which these chains lack). */
async function answer(header: string, seals: readonly { domain: string; ls?: string }[]): Promise<string> {
  try {
    await checkArrival(deps, Buffer.from(`${header}\r\n\r\nx`), 'alice@a.example', chainOf(seals), ['victim@b.example']);
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return `${err.reply.status} ${err.reply.text}`;
  }
  return 'accepted';
}

test('control: a list seal for a list the post is addressed to passes the sealer check', async () => {
  expect(
    await answer('From: alice@a.example\r\nTo: staff@c.example', [{ domain: 'a.example' }, { domain: 'c.example', ls: 'staff@c.example' }]),
  ).toMatch(/binds no recipients/);
});

test("a member's organisation sealing after a list seal i=1 (a local member's post) with a list of its own: refused, not a nested list", async () => {
  expect(
    await answer('From: alice@a.example\r\nTo: staff@a.example', [
      { domain: 'a.example', ls: 'staff@a.example' },
      { domain: 'evil.example', ls: 'x@evil.example' },
    ]),
  ).toMatch(/seal i=2 by evil\.example re-seals mail of a\.example .*evil\.example is not an allowed resealer/);
});

test('nor after a list seal i=2 of another organisation', async () => {
  expect(
    await answer('From: alice@a.example\r\nTo: staff@c.example', [
      { domain: 'a.example' },
      { domain: 'c.example', ls: 'staff@c.example' },
      { domain: 'd.example', ls: 'inner@d.example' },
    ]),
  ).toMatch(/seal i=3 by d\.example re-seals mail of a\.example .*d\.example is not an allowed resealer/);
});
