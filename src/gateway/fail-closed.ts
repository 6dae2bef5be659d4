/**
 * The fail-closed wrapper every Haraka hook of ours goes through. Haraka
 * itself fails open (a throw counts as CONT; an error given to next() at
 * queue_outbound relays the message unchanged; an unhandled rejection kills
 * the process — docs/protocol.md, "Fault model"). Here:
 *  - `next` is called exactly once, whatever happens (a late answer after a
 *    timeout is dropped);
 *  - a throw, a rejection or a timeout becomes DENYSOFT (4xx);
 *  - a GatewayError becomes its own reply (DENY for 5xx, DENYSOFT for 4xx);
 *  - a 4xx means nothing happened: the body gets an AbortSignal that is
 *    aborted when the wrapper answers without it (timeout); the body checks
 *    it before every step with an effect outside (a copy handed to the
 *    mailbox store or queued for a peer: delivery.ts), so after the 4xx no
 *    new copy goes out. A copy already being handed over when the timeout
 *    fires finishes and is recorded in the exactly-once record, so the
 *    sender's retry skips it (docs/delivery.md).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS module with `export =` types
import DSN = require('haraka-dsn');
import { GatewayError, type Reply, replyFor, REPLIES } from '../mail/replies';
import { faultWhere } from '../net/https-server';

/** Haraka's return codes (haraka-constants). */
export const CODES = { CONT: 900, STOP: 901, DENY: 902, DENYSOFT: 903, DENYDISCONNECT: 904, DISCONNECT: 905, OK: 906 } as const;

export type Next = (code?: number, msg?: unknown) => void;

export interface HookLogger {
  logerror(msg: string): void;
}

export function dsnOf(reply: Reply): unknown {
  const [, subject, detail] = reply.status.split('.').map(Number);
  return DSN.create(reply.code, reply.text, subject, detail);
}

/** Answers `next` with a reply. */
export function answer(next: Next, reply: Reply): void {
  next(reply.code >= 500 ? CODES.DENY : CODES.DENYSOFT, dsnOf(reply));
}

/**
 * Wraps an async hook body. The body resolves to a Haraka code (and message)
 * or throws; the wrapper guarantees one call of `next`, within `timeoutMs`.
 */
export function failClosed(
  name: string,
  timeoutMs: number,
  log: HookLogger,
  body: (signal: AbortSignal) => Promise<[number, unknown?]>,
  next: Next,
): void {
  let answered = false;
  const cancel = new AbortController();
  const once: Next = (code, msg) => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    // Haraka's next runs the later hooks and its reply at once, here in a timer or a promise's callback, outside
    // Haraka's own try/catch: a throw there (another plugin's) would be an uncaught exception that ends Haraka
    try {
      next(code, msg);
    } catch (err) {
      log.logerror(`ssmax: ${name}: what ran after this hook threw: ${faultWhere(err)}`);
    }
  };
  const timer = setTimeout(() => {
    log.logerror(`ssmax: ${name} timed out after ${timeoutMs} ms`);
    cancel.abort(new GatewayError('timeout', `${name} answered 4xx at ${timeoutMs} ms`));
    answer(once, REPLIES.timeout);
  }, timeoutMs);
  let running: Promise<[number, unknown?]>;
  try {
    running = body(cancel.signal);
  } catch (err) {
    running = Promise.reject(err);
  }
  running.then(
    ([code, msg]) => once(code, msg),
    (err: unknown) => {
      const reply = replyFor(err);
      if (reply === REPLIES.internal) log.logerror(`ssmax: ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
      answer(once, reply);
    },
  );
}

/**
 * The time every hook answers within: [main] hook_timeout_ms (`configured`), but always before Haraka's own
 * timeout for the plugin (`harakaSeconds`, the plugin's `timeout`: config/ssmax.timeout, else plugin_timeout, else
 * 30; 0 or none: Haraka sets no limit). Past Haraka's, Haraka answers the sender 4xx "plugin timeout" itself while
 * the hook's work goes on (copies handed over after the sender was told to retry), and in hook_deferred its answer
 * would reschedule the copy at once. So the limit is lowered to one second before Haraka's (half of it when that is
 * under two seconds), with a warning naming both settings (`warn`).
 */
export function hookLimit(harakaSeconds: number | undefined, configured: number, warn: (line: string) => void): number {
  const haraka = typeof harakaSeconds === 'number' && Number.isFinite(harakaSeconds) && harakaSeconds > 0 ? harakaSeconds * 1000 : 0;
  if (haraka === 0) return configured;
  const bound = Math.floor(haraka >= 2000 ? haraka - 1000 : haraka / 2);
  if (configured <= bound) return configured;
  warn(
    `ssmax: [main] hook_timeout_ms=${configured} is not below Haraka's timeout for this plugin (${haraka / 1000} s: config/ssmax.timeout, else plugin_timeout); hooks answer within ${bound} ms instead`,
  );
  return bound;
}
