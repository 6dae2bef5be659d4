/**
 * One structured line per message per hop (docs/operations.md): what the
 * message went through at this gateway — queue id, direction, client mode,
 * peer organisations, chain verdict, key versions, inspection verdicts, the
 * outcome with its reply code, the time spent in each step — as one JSON
 * object on Haraka's log, prefixed `ssmax-message `.
 *
 * The steps record into the hop of the message they run for through an
 * AsyncLocalStorage (no protocol step takes a logging argument); outside a
 * hop (tests calling the steps directly) recording does nothing.
 *
 * Never in a record: message content (body, subject, headers other than the
 * facts above), key material, tokens, capsules. Addresses appear only as
 * domains and counts. The reply text is our own table's (src/mail/replies.ts); its
 * detail part can name an address (a recipient a peer or keyd refused), so
 * every address in it is written as `<redacted>@domain` (redactAddresses),
 * and it is cut to REPLY_TEXT_MAX characters. The SMTP client still gets the
 * whole reply: only the log line is redacted.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import type { ChainVerification } from '../chain/verify-chain';
import type { Verdict } from '../chain/tags';
import { CAPSULE_HEADER } from '../envelope/headers';
import { CODES, type Next } from './fail-closed';
import type { Inspector } from '../inspect/engine';
import type { KeydOps } from '../keyd/client-ops';
import type { LocalDelivery } from './delivery';

export type HopDirection = 'outbound' | 'inbound';
/** ssmax: the message carried an SSMAX capsule (SSMAX client, or sealed mail from a peer); transparent: plaintext from an ordinary client; notice: null-sender notice from a trusted relay. */
export type HopMode = 'ssmax' | 'transparent' | 'notice';
/** duplicate: every copy had been handed over by an earlier attempt of the message (a retry after a lost 250): nothing sent again. */
export type HopOutcome = 'delivered' | 'queued' | 'held' | 'duplicate' | 'refused' | 'deferred';
/** How the 250 of a duplicate starts (plugin.ts), which makes its outcome "duplicate". */
export const ALREADY_DELIVERED = 'Already delivered';
export type Step = 'keyd' | 'inspection' | 'delivery' | 'chain';
export const STEPS: readonly Step[] = ['keyd', 'inspection', 'delivery', 'chain'];

export interface MessageRecord {
  readonly event: 'ssmax-message';
  readonly queueId: string;
  readonly direction: HopDirection;
  readonly mode: HopMode | 'unknown';
  /** How the submitter reached the gateway (outbound): smtp-auth, trusted-relay, or none. */
  readonly submitter?: string;
  readonly peers: readonly string[];
  readonly rcpts: number;
  readonly chain: { readonly result: string; readonly seals: number; readonly reason?: string } | null;
  readonly keyVersions: readonly string[];
  readonly inspection: readonly { readonly name: string; readonly result: string; readonly action: string }[];
  readonly quarantine?: string;
  readonly outcome: HopOutcome;
  readonly reply: { readonly code: number; readonly status: string; readonly text: string };
  /** Milliseconds per step (keyd counts every keyd call, including those inside inspection) and in all. */
  readonly ms: Readonly<Record<Step | 'total', number>>;
}

class Hop {
  readonly started = performance.now();
  mode: HopMode | 'unknown' = 'unknown';
  submitter?: string;
  peers = new Set<string>();
  chain: MessageRecord['chain'] = null;
  keyVersions = new Set<string>();
  inspection: { name: string; result: string; action: string }[] = [];
  quarantine?: string;
  ms: Record<Step, number> = { keyd: 0, inspection: 0, delivery: 0, chain: 0 };
  done = false;
  constructor(
    readonly queueId: string,
    readonly direction: HopDirection,
    readonly rcpts: number,
  ) {}
}

const current = new AsyncLocalStorage<Hop>();

/** The hop of the message this code runs for (undefined outside a hook). */
function hop(): Hop | undefined {
  return current.getStore();
}

/** Runs `fn`, adding its time to `step` of the current hop. */
export async function timed<T>(step: Step, fn: () => Promise<T>): Promise<T> {
  const h = hop();
  if (!h) return fn();
  const t = performance.now();
  try {
    return await fn();
  } finally {
    h.ms[step] += performance.now() - t;
  }
}

/** Notes the verification of the seals the message carried (chain-check.ts). */
export function noteChain(chain: ChainVerification): void {
  const h = hop();
  if (!h) return;
  h.chain = { result: chain.result, seals: chain.instances.length, ...(chain.result === 'fail' ? { reason: chain.reason } : {}) };
  // the peer that handed the message over: the newest sealer
  const newest = chain.instances[chain.instances.length - 1];
  if (h.direction === 'inbound' && newest) h.peers.add(newest.domain);
}

export function noteKeyVersion(keyId: string): void {
  hop()?.keyVersions.add(keyId);
}

export function notePeer(domain: string): void {
  hop()?.peers.add(domain);
}

function noteInspection(verdict: Verdict | undefined, action: string, quarantined?: string): void {
  const h = hop();
  if (!h) return;
  h.inspection.push({ name: verdict?.name ?? 'none', result: verdict?.result ?? 'none', action });
  if (quarantined) h.quarantine = quarantined;
}

/** The client mode as the message shows it: an SSMAX capsule field in the header, or none (a linear scan of the header). */
export function modeOf(raw: Buffer): HopMode {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw
    .subarray(0, end < 0 ? raw.length : end)
    .toString('latin1')
    .toLowerCase();
  const name = `${CAPSULE_HEADER.toLowerCase()}:`;
  return head.startsWith(name) || head.includes(`\n${name}`) ? 'ssmax' : 'transparent';
}

/**
 * Wraps the dependencies whose time and facts a record holds: keyd
 * operations (time, key versions), the inspection step (time, verdicts) and
 * local delivery (time). Done once, at register().
 */
export function instrument(gw: { deps: { keyd: KeydOps; inspection?: Inspector }; delivery: LocalDelivery }): void {
  const k = gw.deps.keyd;
  const reencrypt = k.reencrypt.bind(k);
  k.reencrypt = (capsule, target, ...rest) =>
    timed('keyd', async () => {
      noteKeyVersion(capsule.keyId);
      const r = await reencrypt(capsule, target, ...rest);
      if (target.kind === 'peer') noteKeyVersion(r.capsule.keyId);
      return r;
    });
  const messageKey = k.messageKey.bind(k);
  k.messageKey = (capsule, orgPublicKey) =>
    timed('keyd', () => {
      noteKeyVersion(capsule.keyId);
      return messageKey(capsule, orgPublicKey);
    });
  for (const name of ['mintToken', 'user', 'orgKeys'] as const) {
    const f = (k[name] as (...a: unknown[]) => Promise<unknown>).bind(k);
    (k as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => timed('keyd', () => f(...a));
  }
  const ins = gw.deps.inspection;
  if (ins) {
    const inspect = ins.inspect.bind(ins);
    ins.inspect = (req) =>
      timed('inspection', async () => {
        const answer = await inspect(req);
        noteInspection(answer.verdict, answer.decision.action, answer.quarantined);
        return answer;
      });
  }
  const deliver = gw.delivery.deliver.bind(gw.delivery);
  gw.delivery.deliver = (...args: Parameters<typeof deliver>) => timed('delivery', () => deliver(...args));
}

export interface HopLog {
  /** Runs the hook body inside this hop (its steps record into it). */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** `next`, wrapped: the first answer writes the record, then goes to Haraka. */
  readonly next: Next;
  /** Sets facts known only to the hook. */
  set(facts: { mode?: HopMode; submitter?: string }): void;
}

/**
 * The reply as Haraka sends it after DATA: 250 for OK, 550 for DENY, 450 for
 * DENYSOFT (whatever code the DSN carries; connection.js queue_respond), with
 * the enhanced status code and text of our DSN.
 */
function replyOf(code: number | undefined, msg: unknown): MessageRecord['reply'] {
  const smtp = code === CODES.OK ? 250 : code === CODES.DENY || code === CODES.DENYDISCONNECT ? 550 : 450;
  if (msg && typeof msg === 'object' && 'code' in msg) {
    const d = msg as { sub?: number; det?: number; msg?: unknown };
    return { code: smtp, status: `${String(smtp)[0]}.${d.sub ?? 0}.${d.det ?? 0}`, text: String(d.msg ?? '') };
  }
  return { code: smtp, status: `${String(smtp)[0]}.0.0`, text: typeof msg === 'string' ? msg : '' };
}

/** Longest reply text in a log line (characters, before redaction). */
export const REPLY_TEXT_MAX = 300;
const DELIMS = /([\s<>"'(),;[\]]+)/;

/**
 * Every address-like token (`local@domain`) of `text` as `<redacted>@domain`:
 * the domain stays (it is logged as a peer anyway), the local part goes.
 * Linear: one split on delimiters, one look at each token.
 */
export function redactAddresses(text: string): string {
  const cut = text.length > REPLY_TEXT_MAX ? `${text.slice(0, REPLY_TEXT_MAX)}…` : text;
  return cut
    .split(DELIMS)
    .map((tok) => {
      const at = tok.lastIndexOf('@');
      if (at < 0) return tok;
      const domain = tok.slice(at + 1).replace(/[.:]+$/, '');
      return /^[A-Za-z0-9.-]*$/.test(domain) ? `<redacted>@${domain}${tok.slice(at + 1 + domain.length)}` : '<redacted>';
    })
    .join('');
}

function outcomeOf(code: number | undefined, direction: HopDirection, text: string): HopOutcome {
  if (code === CODES.OK) {
    if (text.startsWith('Held')) return 'held';
    if (text.startsWith(ALREADY_DELIVERED)) return 'duplicate';
    return direction === 'inbound' ? 'delivered' : 'queued';
  }
  if (code === CODES.DENY || code === CODES.DENYDISCONNECT) return 'refused';
  return 'deferred';
}

const round = (n: number) => Math.round(n * 10) / 10;

/** Listeners of every record (the metrics: ops/gateway-metrics.ts). */
const listeners: ((r: MessageRecord) => void)[] = [];
export function onRecord(listener: (r: MessageRecord) => void): () => void {
  listeners.push(listener);
  return () => {
    const i = listeners.indexOf(listener);
    if (i >= 0) listeners.splice(i, 1);
  };
}

/**
 * Starts the record of one message at this hop. `write` gets the line
 * (Haraka's logger); a failure to log never changes the answer.
 */
export function startHop(
  queueId: string,
  direction: HopDirection,
  rcpts: readonly string[],
  localDomains: readonly string[],
  write: (line: string) => void,
  next: Next,
): HopLog {
  const h = new Hop(queueId, direction, rcpts.length);
  if (direction === 'outbound') {
    for (const r of rcpts) {
      const d = r.slice(r.lastIndexOf('@') + 1).toLowerCase();
      if (!localDomains.includes(d)) h.peers.add(d);
    }
  }
  return {
    run: (fn) => current.run(h, fn),
    set(facts) {
      if (facts.mode) h.mode = facts.mode;
      if (facts.submitter) h.submitter = facts.submitter;
    },
    next(code, msg) {
      if (!h.done) {
        h.done = true;
        try {
          const answer = replyOf(code, msg);
          const reply = { ...answer, text: redactAddresses(answer.text) };
          const record: MessageRecord = {
            event: 'ssmax-message',
            queueId: h.queueId,
            direction: h.direction,
            mode: h.mode,
            ...(h.submitter ? { submitter: h.submitter } : {}),
            peers: [...h.peers].sort(),
            rcpts: h.rcpts,
            chain: h.chain,
            keyVersions: [...h.keyVersions].sort(),
            inspection: h.inspection,
            ...(h.quarantine ? { quarantine: h.quarantine } : {}),
            outcome: outcomeOf(code, h.direction, answer.text),
            reply,
            ms: {
              keyd: round(h.ms.keyd),
              inspection: round(h.ms.inspection),
              delivery: round(h.ms.delivery),
              chain: round(h.ms.chain),
              total: round(performance.now() - h.started),
            },
          };
          write(`ssmax-message ${JSON.stringify(record)}`);
          for (const l of listeners) l(record);
        } catch {
          // logging never changes the answer
        }
      }
      next(code, msg);
    },
  };
}
