/**
 * The duplicate-delivery Sieve script the docs give (docs/delivery.md,
 * docs/deploy.md) is the one the tests run (test/support/dovecot.ts, where
 * `sievec` must compile it without a warning): the same test and the same
 * period, within Pigeonhole's cap of 2 days.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEDUPE_SIEVE } from '../support/dovecot';

const root = join(__dirname, '..', '..');
const TEST = /if duplicate :header "SSMAX-Delivery-Id" :seconds (\d+) \{/g;

test.each(['docs/delivery.md', 'docs/deploy.md'])('%s gives the script the tests run, its period within 2 days', (doc) => {
  const [tested] = [...DEDUPE_SIEVE.matchAll(TEST)].map((m) => Number(m[1]));
  expect(tested).toBeLessThanOrEqual(2 * 86400);
  const given = [...readFileSync(join(root, doc), 'utf8').matchAll(TEST)].map((m) => Number(m[1]));
  expect(given.length).toBeGreaterThan(0);
  for (const seconds of given) expect(seconds).toBe(tested);
});
