/**
 * Which SSMAX organisation an unsealed message claims to be from (binding.ts claimedOrganisation), the rule the
 * unsealed-arrival check and the trusted-relay notice check share: this organisation's own domains without a
 * lookup; a subdomain of one is an organisation of its own when it publishes a bundle (src/chain/alignment.ts),
 * and this organisation's otherwise. The directory is a stand-in here: the question is the rule, not the fetch.
 */
import { DirectoryError } from '../../src/directory/directory';
import { claimedOrganisation } from '../../src/gateway/binding';
import type { GatewayDeps } from '../../src/gateway/deps';

const published = new Set(['a.example', 'v.a.example', 'b.example']);
const asked: string[] = [];
let dnsDown = false;
const deps = {
  // c.example: a further local domain of this organisation, which publishes no bundle of its own
  config: { domain: 'a.example', localDomains: ['a.example', 'c.example'] },
  directory: {
    lookup: (d: string) => {
      asked.push(d);
      if (dnsDown) return Promise.reject(new DirectoryError('unavailable', d, 'TXT lookup timed out'));
      return published.has(d) ? Promise.resolve({ domain: d }) : Promise.reject(new DirectoryError('none', d, 'no TXT record'));
    },
  },
} as unknown as GatewayDeps;

beforeEach(() => {
  asked.length = 0;
});

test('its own domain: no lookup', async () => {
  expect(await claimedOrganisation(deps, 'a.example')).toBe('a.example');
  expect(asked).toEqual([]);
});

test('a subdomain that publishes a bundle of its own is another organisation (a notice or plain mail in its name is not this one)', async () => {
  expect(await claimedOrganisation(deps, 'v.a.example')).toBe('v.a.example');
  expect(await claimedOrganisation(deps, 'mail.v.a.example')).toBe('v.a.example');
});

test("a subdomain without a bundle of its own is this organisation's, a local domain's included; another domain its own, or none", async () => {
  expect(await claimedOrganisation(deps, 'mta.a.example')).toBe('a.example');
  expect(asked).toEqual(['mta.a.example']); // only the names below the own domain are asked about
  expect(await claimedOrganisation(deps, 'hr.c.example')).toBe('c.example');
  expect(await claimedOrganisation(deps, 'b.example')).toBe('b.example');
  expect(await claimedOrganisation(deps, 'internet.example')).toBeUndefined();
});

test("a subdomain of an own domain whose lookup fails now is this organisation's (the MTA's notices are not deferred by a DNS fault)", async () => {
  dnsDown = true;
  try {
    expect(await claimedOrganisation(deps, 'mta.a.example')).toBe('a.example');
  } finally {
    dnsDown = false;
  }
});
