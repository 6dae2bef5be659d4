import { CODES, failClosed, hookLimit } from '../../src/gateway/fail-closed';
import { GatewayError } from '../../src/mail/replies';

/** Runs a hook body through the wrapper and records every call of next. */
function run(
  body: (signal: AbortSignal) => Promise<[number, unknown?]>,
  timeoutMs = 200,
): Promise<{ calls: [number | undefined, unknown][]; errors: string[] }> {
  const calls: [number | undefined, unknown][] = [];
  const errors: string[] = [];
  return new Promise((resolve) => {
    failClosed('test', timeoutMs, { logerror: (m) => errors.push(m) }, body, (code, msg) => calls.push([code, msg]));
    setTimeout(() => resolve({ calls, errors }), timeoutMs + 150);
  });
}
const reply = (m: unknown) => m as { reply: string; code: number };

describe('every hook fails closed and answers exactly once', () => {
  test('a synchronous throw becomes DENYSOFT 451 4.3.0', async () => {
    const r = await run(() => {
      throw new Error('boom');
    });
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]![0]).toBe(CODES.DENYSOFT);
    expect(reply(r.calls[0]![1])).toMatchObject({ code: 451, reply: expect.stringMatching(/^4\.3\.0 /) });
    expect(r.errors.join()).toMatch(/boom/);
  });
  test('a rejected promise becomes DENYSOFT', async () => {
    const r = await run(() => Promise.reject(new TypeError('nope')));
    expect(r.calls.map((c) => c[0])).toEqual([CODES.DENYSOFT]);
  });
  test('a timeout becomes DENYSOFT 4.4.7, and the late answer is dropped', async () => {
    const r = await run(() => new Promise((res) => setTimeout(() => res([CODES.OK]), 300)), 100);
    await new Promise((res) => setTimeout(res, 300));
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]![0]).toBe(CODES.DENYSOFT);
    expect(reply(r.calls[0]![1]).reply).toMatch(/^4\.4\.7 /);
  });
  test('a final decision becomes DENY with its own reply; a temporary one DENYSOFT', async () => {
    const deny = await run(() => Promise.reject(new GatewayError('chainFailed', 'signature-invalid')));
    expect(deny.calls[0]![0]).toBe(CODES.DENY);
    expect(reply(deny.calls[0]![1])).toMatchObject({ code: 550, reply: '5.7.7 SSMAX chain fails: signature-invalid' });
    const soft = await run(() => Promise.reject(new GatewayError('keydUnavailable', 'timeout')));
    expect(soft.calls[0]![0]).toBe(CODES.DENYSOFT);
  });
  test('a 4xx means nothing happened: at the timeout the signal of the body is aborted, so it starts nothing more', async () => {
    let seen: AbortSignal | undefined;
    const effects: string[] = [];
    const r = await run(async (signal) => {
      seen = signal;
      await new Promise((res) => setTimeout(res, 150));
      signal.throwIfAborted();
      effects.push('queued a copy');
      return [CODES.OK];
    }, 100);
    await new Promise((res) => setTimeout(res, 100));
    expect(r.calls.map((c) => c[0])).toEqual([CODES.DENYSOFT]);
    expect(seen?.aborted).toBe(true);
    expect(effects).toEqual([]);
  });
  test('a body that answers in time keeps its signal unaborted', async () => {
    let seen: AbortSignal | undefined;
    await run(async (signal) => {
      seen = signal;
      return [CODES.OK];
    });
    expect(seen?.aborted).toBe(false);
  });
  test('success answers once with the code of the body', async () => {
    const r = await run(() => Promise.resolve([CODES.OK, 'fine']));
    expect(r.calls).toEqual([[CODES.OK, 'fine']]);
  });
  test("what runs after the hook (Haraka's next: later plugins, the reply) throws: logged, not thrown into a promise nobody holds", async () => {
    const errors: string[] = [];
    const calls: number[] = [];
    failClosed(
      'test',
      200,
      { logerror: (m) => errors.push(m) },
      () => Promise.resolve([CODES.OK]),
      (code) => {
        calls.push(code ?? -1);
        throw new TypeError("another plugin's bug");
      },
    );
    await new Promise((res) => setTimeout(res, 50));
    expect(calls).toEqual([CODES.OK]); // once: the throw is not taken for the hook's own failure
    expect(errors).toEqual([expect.stringMatching(/^ssmax: test: what ran after this hook threw: TypeError /) as string]);
  });
});

describe("the hooks' time limit is kept below Haraka's own timeout for the plugin", () => {
  test("hook_timeout_ms above Haraka's (plugin_timeout=10, 2, 1) is lowered with a warning naming both; below it, or no Haraka limit, it stays", () => {
    const warnings: string[] = [];
    const warn = (l: string) => warnings.push(l);
    expect(hookLimit(30, 25000, warn)).toBe(25000);
    expect(hookLimit(undefined, 25000, warn)).toBe(25000);
    expect(hookLimit(0, 25000, warn)).toBe(25000);
    expect(warnings).toEqual([]);
    expect(hookLimit(10, 25000, warn)).toBe(9000);
    expect(warnings[0]).toMatch(
      /hook_timeout_ms=25000 .*Haraka's timeout for this plugin \(10 s: config\/ssmax\.timeout, else plugin_timeout\); hooks answer within 9000 ms/,
    );
    expect(hookLimit(2, 25000, warn)).toBe(1000);
    expect(hookLimit(1, 25000, warn)).toBe(500);
    expect(warnings).toHaveLength(3);
  });

  test("with Haraka's timeout of 2 s, a hook that hangs is answered by the gateway's own 4xx before Haraka's, and its work is told to stop", async () => {
    const limit = hookLimit(2, 25000, () => undefined);
    let aborted = false;
    const r = await run(
      (signal) =>
        new Promise(() => {
          signal.addEventListener('abort', () => (aborted = true));
        }),
      limit,
    );
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]![0]).toBe(CODES.DENYSOFT);
    expect(aborted).toBe(true);
    expect(limit).toBeLessThan(2000);
  });
});
