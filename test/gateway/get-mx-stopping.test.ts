/**
 * Haraka's queue may still deliver after the plugin's shutdown (a graceful stop, a cluster worker restarting):
 * without the gateway's state, which domains are this organisation's and where their mailbox store is, is not
 * known. A report, delay notice or bounce to a local sender must then wait (DENYSOFT, retried by Haraka), not be
 * handed to Haraka's own MX lookup, which sends it to a gateway that refuses unsealed mail from its own domain.
 */
import { CODES } from '../../src/gateway/fail-closed';
import { hook_get_mx, shutdown } from '../../src/gateway/plugin';

test('after shutdown, get_mx answers DENYSOFT for any domain, once, instead of leaving the route to DNS', () => {
  const plugin = {} as ThisParameterType<typeof hook_get_mx>;
  shutdown.call(plugin);
  for (const domain of ['a.example', 'b.example', 'outside.example']) {
    const calls: unknown[][] = [];
    hook_get_mx.call(plugin, (...args: unknown[]) => void calls.push(args), {}, domain);
    expect(calls).toHaveLength(1);
    expect(calls[0]![0]).toBe(CODES.DENYSOFT);
    expect(String(calls[0]![1])).toMatch(/stopping/);
  }
});
