/**
 * Which plugins ahead of ssmax in a deciding hook stop Haraka (src/gateway/plugin-order.ts): those that deliver mail
 * in their queue hooks (they would take it before the gateway saw it); others there (karma, dkim, queue/quarantine)
 * only look or refuse, and are a WARNING; plugins after ssmax are never asked.
 */
import { pluginsAhead } from '../../src/gateway/plugin-order';

const hooks = (order: Record<string, string[]>) =>
  Object.fromEntries(Object.entries(order).map(([hook, plugins]) => [hook, plugins.map((plugin) => ({ plugin }))]));

test.each(['queue/smtp_forward', 'queue/lmtp', 'queue/smtp_proxy', 'smtp_forward', 'queue/discard', 'haraka-plugin-qmail-deliverable'])(
  '%s answering the queue hook before ssmax stops the start, naming it',
  (p) => {
    const r = pluginsAhead(hooks({ queue: [p, 'ssmax'], queue_outbound: [p, 'ssmax'] }), 'ssmax');
    expect(r.refuse).toMatch(
      new RegExp(
        `^"${p.replace(/[/.]/g, '\\$&')}" answers the queue hook before ssmax; .* answers the queue_outbound hook before ssmax: mail would leave without SSMAX`,
      ),
    );
  },
);

test('karma, dkim signing and queue/quarantine ahead of ssmax are a warning, not a refusal (they look or refuse, then go on)', () => {
  const r = pluginsAhead(
    hooks({ queue: ['karma', 'queue/quarantine', 'ssmax'], queue_outbound: ['karma', 'dkim', 'ssmax'], get_mx: ['some_router', 'ssmax'] }),
    'ssmax',
  );
  expect(r.refuse).toBeUndefined();
  expect(r.warn.map((w) => w.split(' has ')[0])).toEqual(['"karma"', '"queue/quarantine"', '"karma"', '"dkim"', '"some_router"']);
});

test('plugins after ssmax, and the plugin installed as haraka-plugin-ssmax, are let be', () => {
  expect(pluginsAhead(hooks({ queue: ['ssmax', 'queue/smtp_forward'], get_mx: ['ssmax', 'queue/smtp_forward'] }), 'ssmax')).toEqual({
    warn: [],
  });
  expect(pluginsAhead(hooks({ queue: ['haraka-plugin-ssmax', 'queue/smtp_forward'] }), 'haraka-plugin-ssmax')).toEqual({ warn: [] });
  expect(pluginsAhead(hooks({ queue: ['queue/smtp_forward', 'haraka-plugin-ssmax'] }), 'haraka-plugin-ssmax').refuse).toMatch(
    /"queue\/smtp_forward" answers the queue hook before haraka-plugin-ssmax/,
  );
});
