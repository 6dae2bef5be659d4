/**
 * The Haraka plugin `ssmax` (plugins/ssmax loads this module in Haraka's main
 * realm). Hooks, each through the fail-closed wrapper:
 *  - connect_init: TCP_NODELAY on the client socket (Haraka never sets it); a
 *    connection from a trusted relay ([main] trusted_relays) may relay;
 *  - mail: an envelope sender whose domain is no domain name is refused (every
 *    domain is compared in one spelling: src/chain/alignment.ts canonicalDomain);
 *  - rcpt: domain encryption policy (relaying) or local recipient check;
 *  - queue_outbound: submission (sending organisation: submission.ts) — copies
 *    for peers are queued for Haraka's outbound, local copies delivered to the
 *    mailbox store; a trusted relay's null-sender delivery status report to
 *    local users delivered as it is (relay-notice.ts);
 *  - queue: reception of a message from another organisation (reception.ts),
 *    delivered to the mailbox store;
 *   both through one body (`queueHook`): Authentication-Results in our name
 *   dropped (src/mail/auth-results.ts), the protocol step's result, then `send`;
 *   a final refusal on a retry of a message an earlier attempt delivered or
 *   held copies of is a 250 with a failure report (`refusedAfterEarlier`);
 *  - get_mx: next hops from [routes]; mail queued for a local domain (a
 *    delivery status notification to a local sender) to the mailbox store;
 *  - deferred: one delay notice to the local sender of a peer copy still
 *    queued after [delivery] delay_notice_seconds (docs/delivery.md); for a
 *    list's copy a log line instead (docs/lists.md, "Notices about members");
 *  - bounce: a list's copy is never bounced (the member and the reply are
 *    logged); any other copy is Haraka's to report;
 *  - capabilities: the X-SSMAX EHLO keyword (current key version, sealing
 *    certificate serial: docs/key-exchange.md);
 *  - delivered: a peer's 250 reply with a refresh hint for the domain the copy
 *    went to is noted, so the next copy for that peer refreshes the bundle
 *    first (observation only; a hint naming another domain is ignored).
 * Exports are plain functions (Haraka copies enumerable exports onto the plugin).
 */
import cluster from 'node:cluster';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Copy, HeldPost, HopResult, Unsendable } from './deps';
import { type Gateway, setupGateway } from './setup';
import { GATEWAY_INI, type HarakaConfigLoader, HarakaIniFiles, siteLoader } from './ini-files';
import { checkHarakaVersion } from './haraka-version';
import { CODES, type Next, answer, failClosed, hookLimit } from './fail-closed';
import { type RetiredUse, refreshHint } from './key-exchange';
import { receive } from './reception';
import { reportableSender } from './binding';
import { isRelease } from './inspection';
import { GatewayError, REPLIES, type ReplyName, replyFor, sanitize } from '../mail/replies';
import { fieldOf, writeHolds } from '../lists/expand';
import { canonicalAddress, domainOf } from '../mail/message-checks';
import { canonicalDomain } from '../chain/alignment';
import { MAX_RECIPIENTS } from '../chain/recipients';
import { noDelay, patchOutboundNoDelay } from './nodelay';
import { type Submitter, peerFor, reportToPeer, submit } from './submission';
import { TrustedRelays } from './trusted-relays';
import { withoutOwnResults } from '../mail/auth-results';
import { checkRelayNotice } from './relay-notice';
import { type HarakaQueue, checkQueueable, harakaQueue, maxHeaderLines, queueMessage } from './outbound-queue';
import { type EarlierAttempts, type Refusal, attemptId } from './delivery';
import { type QueueFileTest, copyNotes, copyOf, harakaQueueFile, queuedCopies } from './queue-reconcile';
import { failureNotice, headerBlock, notifyDelay, statusOf, streamedHeader } from './dsn';
import { ALREADY_DELIVERED, type HopDirection, type HopLog, instrument, modeOf, startHop } from './message-log';
import { LIST_NOTE, bounceCandidate, envelopeSenderOf, listOf } from '../lists/bounces';
import { type GatewayOps, startGatewayOps } from '../ops/gateway-ops';
import { probeKeyd } from './keyd-probe';
import { type RegisteredHooks, pluginsAhead } from './plugin-order';

interface HarakaPlugin {
  /** The plugin's name as config/plugins lists it (ssmax, or haraka-plugin-ssmax). */
  name: string;
  config: HarakaConfigLoader;
  /** Haraka's own time limit for this plugin's hooks, in seconds (config/ssmax.timeout, else plugin_timeout, else 30; 0: none). */
  timeout?: number;
  /** Haraka's own modules, from the running server (plugins.js): never require('Haraka/…'), which finds some other copy or none. */
  haraka_require(name: string): unknown;
  loginfo(msg: string): void;
  logwarn(msg: string): void;
  logerror(msg: string): void;
}
/** Haraka's address objects: `address` is a method on some, a getter on others (@haraka/email-address). */
interface Address {
  address: string | (() => string);
  host: string;
}

/**
 * An envelope address in the one spelling every comparison uses (canonicalAddress: its domain in its ASCII form);
 * '' for the null sender. An address whose domain is no domain name is refused at MAIL or RCPT (hook_mail, hook_rcpt)
 * before anything reads it here; lowercased as it is otherwise.
 */
function addressOf(a: Address): string {
  const spelt = typeof a.address === 'function' ? a.address() : a.address;
  return canonicalAddress(spelt) ?? spelt.toLowerCase();
}
/**
 * An envelope address as it came, for the envelope of a copy handed on: its local part's case kept (RFC 5321 §2.4:
 * only the host it belongs to may read it case-insensitively), its domain in the ASCII form `addressOf` gives.
 * Comparisons and the delivery record use `addressOf`.
 */
function envelopeSpelling(a: Address): string {
  const spelt = typeof a.address === 'function' ? a.address() : a.address;
  const canonical = canonicalAddress(spelt);
  if (!canonical) return addressOf(a);
  return `${spelt.slice(0, spelt.lastIndexOf('@'))}@${canonical.slice(canonical.lastIndexOf('@') + 1)}`;
}

interface Connection {
  relaying: boolean;
  remote?: { ip?: string };
  notes?: { auth_user?: unknown; ssmax_trusted_relay?: boolean };
  capabilities?: string[] | null;
  client: { setNoDelay?: (v: boolean) => void; targetsocket?: { setNoDelay?: (v: boolean) => void } };
  transaction?: {
    mail_from: Address;
    rcpt_to: Address[];
    message_stream: { get_data(options: { skip_headers?: boolean }, cb: (buf: Buffer) => void): void };
    uuid: string;
    /** How Haraka decodes header lines into `header.header_list` ('binary': one character per byte; set by hook_mail). */
    encoding?: string;
    header?: { header_list?: unknown };
    /** 0 while the header is being read (transaction.js). */
    header_pos?: number;
    /** Takes one line of DATA (transaction.js); wrapped by hook_mail to count the header's lines (`countHeaderLines`). */
    add_data?: (line: Buffer) => void;
    /** The smtp.ini the transaction was made with (its `headers.max_lines`). */
    cfg?: unknown;
  };
  logerror(msg: string): void;
}

/** What the plugin reads of Haraka's queued mail (HMailItem) in hook_deferred. */
interface QueuedMail {
  todo?: {
    uuid: string;
    /** The domain the copy is for (Haraka queues one file per domain). */
    domain?: string;
    queue_time: number;
    notes?: unknown;
    mail_from?: { user?: string | null; host?: string | null };
    rcpt_to: { user: string; host: string; reason?: string }[];
  };
  data_stream(): NodeJS.ReadableStream & { destroy?: () => void };
}

interface State extends Gateway {
  trusted: TrustedRelays;
  /** Haraka's outbound queue, which peer copies and reports are handed to byte for byte (outbound-queue.ts). */
  queue: HarakaQueue;
  /** The [ops] listener (health, metrics: src/ops/gateway-ops.ts), when configured. */
  ops: Promise<GatewayOps | undefined>;
  /** Haraka's error log. */
  logerror(line: string): void;
  /** This server's name (Haraka's `me`): an authserv-id of ours besides the local domains (src/mail/auth-results.ts). */
  serverName: string;
  /** The time every hook answers within (fail-closed.ts `hookLimit`): [main] hook_timeout_ms, kept below Haraka's timeout for the plugin. */
  hookMs: number;
}

let state: State | undefined;

function build(plugin: HarakaPlugin): State {
  const haraka = process.env.HARAKA ?? process.cwd();
  // through Haraka's config loader, watched: settings that can change at run time are reloaded (ini-files.ts)
  checkHarakaVersion(plugin.haraka_require('package.json'));
  const files = new HarakaIniFiles(
    plugin.config,
    siteLoader(plugin.config, haraka),
    join(haraka, 'config'),
    (l) => plugin.loginfo(l),
    (l) => plugin.logerror(l),
  );
  const ini = files.read(GATEWAY_INI) as Record<string, Record<string, unknown>>;
  const gw = setupGateway(ini, haraka, (l) => plugin.loginfo(l), undefined, { readIni: (name) => files.read(name) });
  const queue = harakaQueue((name) => plugin.haraka_require(name), plugin.config.get('smtp.ini', { booleans: ['+headers.add_received'] }));
  if (gw.config.tcpNoDelay) patchOutboundNoDelay((name) => plugin.haraka_require(name));
  instrument(gw); // the facts and step times of the per-message log line (message-log.ts)
  const ops = startGatewayOps(gw, ini.ops, (l) => plugin.loginfo(l), { unknownNames: () => files.unknownNames(GATEWAY_INI) }).catch(
    (err: unknown) => {
      plugin.logerror(`ssmax: ops listener not started: ${(err as Error).message}`);
      return undefined;
    },
  );
  const s: State = {
    ...gw,
    queue,
    trusted: new TrustedRelays(gw.config.trustedRelays),
    ops,
    logerror: (l) => plugin.logerror(l),
    serverName: serverNameOf(plugin),
    hookMs: hookLimit(plugin.timeout, gw.config.hookTimeoutMs, (l) => plugin.logwarn(l)),
  };
  files.applyTo(gw.config);
  files.onApplied = () => {
    s.trusted = new TrustedRelays(gw.config.trustedRelays);
    s.hookMs = hookLimit(plugin.timeout, gw.config.hookTimeoutMs, (l) => plugin.logwarn(l));
  };
  return s;
}

/** Haraka's `me` (its server name, in its greeting and Received fields), else the host name as Haraka takes it then. */
function serverNameOf(plugin: HarakaPlugin): string {
  const me = plugin.config.get('me');
  return (typeof me === 'string' && me.trim() !== '' ? me : hostname()).trim().toLowerCase();
}

export function register(this: HarakaPlugin): void {
  try {
    state = build(this);
  } catch (err) {
    // A bad setting or file is the operator's to fix: one line in Haraka's log (which prints a stack
    // line by line), then Haraka stops; no mail is accepted by a gateway that cannot do its work.
    const message = `ssmax: cannot start: ${err instanceof Error ? err.message : String(err)}`;
    throw Object.assign(new Error(message), { stack: message });
  }
  void state.advertiser?.current(); // primes the EHLO line (never rejects)
  // one word about keyd at start, in the background (keyd-probe.ts): by the master (or the single process), not each worker
  if (!cluster.isWorker)
    void probeKeyd(state.keydHealth, state.config.keyd.url, { info: (l) => this.loginfo(l), warn: (l) => this.logwarn(l) });
  state.delivery.onRedeliver = (what) =>
    this.logerror(`ssmax: an earlier attempt stopped while handing a copy over; handed over again (possible duplicate): ${what}`);
  // reconciliation after a crash (queue-reconcile.ts): peer copies Haraka holds in its queue are recorded as handed over
  // before any claim; the intents still open are handed over again at the sender's retry, with the same delivery id
  const s = state;
  const queued = queuedCopies(queueDirOf(this), queueFileTestOf(this));
  void s.delivery
    .reconcile(queued)
    .then(
      (settled) => {
        if (settled > 0)
          this.loginfo(
            `ssmax: ${settled} cop${settled === 1 ? 'y' : 'ies'} found in Haraka's queue recorded as handed over (the gateway stopped before recording them)`,
          );
      },
      (err: unknown) => this.logerror(`ssmax: cannot reconcile the delivery record with Haraka's queue: ${(err as Error).message}`),
    )
    .then(() => {
      const pending = s.delivery.stats.pendingAtStart;
      if (pending > 0)
        this.logerror(
          `ssmax: ${pending} cop${pending === 1 ? 'y was' : 'ies were'} being handed over when the gateway stopped; the sender's retry hands them over again (SSMAX-Delivery-Id: a store with the duplicate check keeps one)`,
        );
    });
  this.loginfo(`ssmax: gateway for ${state.config.domain} (local: ${state.config.localDomains.join(', ')})`);
}

/** Haraka's outbound queue directory (outbound.ini queue_dir, else <haraka>/queue), as the running Haraka resolved it. */
function queueDirOf(plugin: HarakaPlugin): string {
  try {
    const dir = (plugin.haraka_require('outbound/queue') as { queue_dir?: unknown }).queue_dir;
    if (typeof dir === 'string' && dir !== '') return dir;
  } catch {
    // an older Haraka layout: its default place
  }
  return join(process.env.HARAKA ?? process.cwd(), 'queue');
}

/** Which queue files the running Haraka loads (its own outbound/qfile rules), or the rule of Haraka 3. */
function queueFileTestOf(plugin: HarakaPlugin): QueueFileTest {
  try {
    const q = plugin.haraka_require('outbound/qfile') as { platformDOT?: unknown; parts?: (name: string) => unknown };
    const dot = q.platformDOT;
    const parts = q.parts;
    if (typeof dot === 'string' && dot !== '' && typeof parts === 'function') {
      return (name) => !name.startsWith(dot) && !name.startsWith('.') && !name.startsWith('error.') && Boolean(parts(name));
    }
  } catch {
    // another Haraka layout: its documented rule
  }
  return harakaQueueFile;
}

/** The plugin's state, or a 4xx answer if register() never completed (a hook must never throw: Haraka treats that as CONT). */
function ready(next: Next): State | undefined {
  if (!state) answer(next, REPLIES.internal);
  return state;
}

/**
 * Before any mail: no plugin that delivers mail may answer the hooks where this one decides where it goes before
 * this one does (plugin-order.ts). In the master (or the single process) and in each worker; DENY stops Haraka.
 */
function checkPluginOrder(plugin: HarakaPlugin, next: Next): void {
  let answer: [number?, string?] = [];
  const log = (say: () => void) => {
    try {
      say();
    } catch {
      // a log that throws changes no answer
    }
  };
  try {
    const hooks = (plugin.haraka_require('plugins') as { registered_hooks?: RegisteredHooks }).registered_hooks ?? {};
    const { refuse, warn } = pluginsAhead(hooks, plugin.name);
    for (const w of warn) log(() => plugin.logwarn(`ssmax: WARNING: ${w}`));
    if (refuse !== undefined) {
      log(() => plugin.logerror(`ssmax: cannot start: ${refuse}`));
      answer = [CODES.DENY, `ssmax: ${refuse}`];
    }
  } catch (err) {
    log(() => plugin.logerror(`ssmax: cannot start: cannot read Haraka's plugin order: ${(err as Error).message}`));
    answer = [CODES.DENY, "ssmax: cannot read Haraka's plugin order"];
  }
  // once, outside the try: CONT (never OK, which would end the hook and keep the plugins after this one from their
  // own init), or DENY, which stops Haraka
  next(...answer);
}

export function hook_init_master(this: HarakaPlugin, next: Next): void {
  checkPluginOrder(this, next);
}

export function hook_init_child(this: HarakaPlugin, next: Next): void {
  checkPluginOrder(this, next);
}

export function hook_connect_init(this: HarakaPlugin, next: Next, connection: Connection): void {
  if (state?.config.tcpNoDelay) noDelay(connection.client);
  if (state?.trusted.has(connection.remote?.ip) && connection.notes) {
    connection.notes.ssmax_trusted_relay = true;
    connection.relaying = true; // the organisation's own MTA authenticated its users itself
  }
  next();
}

export function hook_rcpt(this: HarakaPlugin, next: Next, connection: Connection, params: Address[]): void {
  const s = ready(next);
  if (!s) return;
  failClosed(
    'rcpt',
    s.hookMs,
    this,
    async () => {
      // the recipients one message may have (one copy binds at most that many; the inspector takes at most that many):
      // beyond them, 452 4.5.3, and the sender sends the rest in another transaction (RFC 5321 4.5.3.1.10).
      // Haraka has put this recipient on rcpt_to before the hook (and takes it off on a refusal).
      if ((connection.transaction?.rcpt_to.length ?? 0) > MAX_RECIPIENTS)
        throw new GatewayError('tooManyRecipients', `at most ${MAX_RECIPIENTS} in one message; send the rest in another`);
      const rcpt = params[0]!;
      // one spelling for every comparison and lookup: an internationalised domain in its ASCII form (canonicalDomain)
      const domain = canonicalDomain(rcpt.host ?? '');
      if (!domain) throw new GatewayError('recipientDomainInvalid', `"${String(rcpt.host).slice(0, 80)}"`);
      const local = s.config.localDomains.includes(domain);
      if (local) {
        // a notice (null sender) to a list's bounce address: taken, then logged and settled by the queue hook (bounceNotices)
        if (nullSender(connection) && (await bounceList(s, addressOf(rcpt)))) return [CODES.OK];
        // one small question to keyd: a user, a list, or neither — never a list's members (asked once per post, after DATA)
        const found = await s.deps.keyd.kind(addressOf(rcpt));
        if (found.kind === 'list') return [CODES.OK]; // a list of this organisation (src/lists/)
        if (found.kind !== 'user' || found.status !== 'active') throw new GatewayError('noLocalRecipient', addressOf(rcpt));
        return [CODES.OK];
      }
      if (!connection.relaying) return [CODES.DENY, 'Relaying denied'];
      await peerFor(s.deps, domain); // 5xx when the domain requires encryption and has no bundle; 4xx while unreachable
      return [CODES.OK];
    },
    next,
  );
}

/** Whether the transaction's envelope sender is the null sender `<>` (a notice). */
function nullSender(connection: Connection): boolean {
  const from = connection.transaction?.mail_from;
  return from !== undefined && addressOf(from) === '';
}

/** The list of this organisation whose bounce address `rcpt` is (src/lists/bounces.ts), or undefined. */
async function bounceList(s: State, rcpt: string): Promise<string | undefined> {
  const list = bounceCandidate(rcpt);
  if (!list || !s.config.localDomains.includes(domainOf(list))) return undefined;
  if ((await s.deps.keyd.kind(list)).kind !== 'list') return undefined;
  // an address registered in its own right (a user named like <list>-bounces@) is that user's: its notices are delivered
  return (await s.deps.keyd.kind(rcpt)).kind === 'none' ? list : undefined;
}

/**
 * The recipients of a notice (null sender) that are lists' bounce addresses:
 * each is written to the log (the list, the notice's From as it came,
 * unverified) and settled — never delivered, so no notice about a member
 * reaches anyone but the log (docs/lists.md, "Notices about members").
 * Returns the other recipients.
 */
async function bounceNotices(s: State, m: Incoming): Promise<string[]> {
  if (m.from !== '') return [...m.rcpts];
  const rest: string[] = [];
  for (const r of m.rcpts) {
    const list = await bounceList(s, r);
    if (!list) {
      rest.push(r);
      continue;
    }
    const from = sanitize(fieldOf(m.raw, 'from') ?? '?').slice(0, 200);
    s.logerror(`ssmax lists: ${list}: a notice to ${r} (From: ${from}) logged and settled, not delivered`);
  }
  return rest;
}

/**
 * The message as it came, byte for byte. Haraka keeps the header fields as strings (its parsed list,
 * with the fields it added itself) and writes them out as UTF-8: read in 'binary' (hook_mail), each
 * field that came from the wire is turned back into its own bytes here, so a byte that is not
 * UTF-8 is seen (and refused: message-checks.ts) instead of becoming U+FFFD. A field holding a
 * character above U+00FF was added as text by Haraka (its Received field): written as UTF-8.
 */
function messageOf(connection: Connection): Promise<Buffer> {
  const txn = connection.transaction!;
  checkArrivedHeader(txn);
  const fields = txn.header?.header_list;
  if (txn.encoding !== 'binary' || !Array.isArray(fields) || fields.length === 0 || !fields.every((f) => typeof f === 'string'))
    return new Promise((resolve) => txn.message_stream.get_data({}, resolve));
  const head = (fields as string[]).map((f) => {
    const line = f.replace(/\r?\n/g, '\r\n');
    return Buffer.from(line, /[\u0100-\u{10ffff}]/u.test(line) ? 'utf8' : 'latin1');
  });
  return new Promise((resolve) =>
    txn.message_stream.get_data({ skip_headers: true }, (body) => resolve(Buffer.concat([...head, CRLF, body]))),
  );
}

const CRLF = Buffer.from('\r\n');

/** The header lines each transaction has received so far (`countHeaderLines`). */
const headerLines = new WeakMap<object, { n: number }>();

/**
 * Counts the header lines of a transaction as they come: Haraka's transaction keeps at most `[headers] max_lines`
 * of them (smtp.ini, 1,000 unless set) and drops every later one without a word, mid-field too — neither its
 * parsed list nor its message stream's header holds them — and the list it keeps grows by the fields Haraka adds
 * later, so only a count taken as the lines arrive tells. Its own `add_data` is wrapped, nothing else changed. The
 * count is Haraka's: each line it is given while the header is read, its own Received field (given as one) included.
 */
function countHeaderLines(txn: NonNullable<Connection['transaction']>): void {
  const add = txn.add_data;
  if (typeof add !== 'function' || headerLines.has(txn)) return;
  const count = { n: 0 };
  headerLines.set(txn, count);
  txn.add_data = function (this: unknown, line: Buffer) {
    const blank = line[0] === 0x0a || (line[0] === 0x0d && line[1] === 0x0a);
    if (txn.header_pos === 0 && !blank) count.n++;
    return add.call(this, line);
  };
}

/**
 * A header of more lines than Haraka keeps (`countHeaderLines`) is refused (552 5.3.4, the reply for a queued
 * copy of too many lines: outbound-queue.ts) before anything reads the message — never delivered or sealed cut.
 */
function checkArrivedHeader(txn: NonNullable<Connection['transaction']>): void {
  const came = headerLines.get(txn)?.n ?? 0;
  const max = maxHeaderLines(txn.cfg);
  if (came > max) throw new GatewayError('headerTooManyLines', `${came} lines, at most ${max} (smtp.ini [headers] max_lines)`);
}

/**
 * A new transaction: Haraka is told to read its header lines one character per byte ('binary',
 * as it does itself after HELO), so `messageOf` can give the gateway the bytes that came, and its
 * header lines are counted as they come (`countHeaderLines`: more than Haraka keeps is refused). An
 * envelope sender whose domain is no domain name (canonicalDomain: an internationalised name that
 * maps to none, an empty label, a trailing dot) is refused, 550 5.1.7; the null sender passes.
 */
export function hook_mail(this: HarakaPlugin, next: Next, connection: Connection, params: Address[]): void {
  try {
    if (connection.transaction) {
      connection.transaction.encoding = 'binary';
      countHeaderLines(connection.transaction);
    }
  } catch (err) {
    this.logerror(`ssmax: mail hook: ${err instanceof Error ? err.message : String(err)}`);
  }
  const s = ready(next);
  if (!s) return;
  failClosed(
    'mail',
    s.hookMs,
    this,
    () => {
      const from = params?.[0];
      const spelt = from ? (typeof from.address === 'function' ? from.address() : from.address) : '';
      if (spelt && !canonicalAddress(spelt)) throw new GatewayError('senderDomainInvalid', `"${String(from?.host).slice(0, 80)}"`);
      return Promise.resolve([CODES.CONT]);
    },
    next,
  );
}

/** What `send` did: recipients the mailbox store refused for good while the others were taken (their sender was sent a report). */
interface Sent {
  readonly failed: readonly Refusal[];
  /** Recipients whose peer copy could not be queued for good after other copies went (in the same report). */
  readonly unqueued: readonly Refusal[];
  /**
   * Recipients no copy or hold could be made for, for good, after another copy of the message went (in the same
   * report): their domain's keys refused for good, a post the moderation store can never hold, a copy the queue
   * can never take (`Unsendable`, checked before anything is handed over).
   */
  readonly unsent: readonly Refusal[];
  /** Recipients an earlier attempt of this message settled (handed their copy over, or had it refused for good): not sent again. */
  readonly already: readonly string[];
  /** Recipients of all copies (each once). */
  readonly all: number;
  /** Whether the failure report could not be queued for good (logged; the reply says so). */
  readonly unreported?: boolean;
  /** The envelope sender was the null sender: a report itself, never reported on (RFC 3461 §6.1). */
  readonly nullSender?: boolean;
}

/** The final refusal `check` throws (a 5xx GatewayError), or undefined when it passes; anything else is thrown on. */
function finalOf(check: () => void): GatewayError | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    if (err instanceof GatewayError && !err.temporary) return err;
    throw err;
  }
}

/** A final GatewayError as the refusal of `rcpt` (reported like the mailbox store's). */
function refusalOf(rcpt: string, err: GatewayError, list?: string): Refusal {
  return { rcpt, code: err.reply.code, reply: `${err.reply.code} ${err.reply.status} ${err.reply.text}`, ...(list ? { list } : {}) };
}

/**
 * Local copies to the mailbox store, peer copies to Haraka's outbound queue:
 * each exactly once per recipient (delivery.ts), none after a 4xx (`signal`).
 *
 * Before anything is handed over, every refusal for good that can be known
 * is gathered (`Unsendable`): those the protocol step found (`unsendable`:
 * a peer domain whose keys are refused for good, one that requires
 * encryption and publishes no bundle), every check by which the queue would
 * refuse a peer copy (`checkQueueable`), and whether the posts to hold fit
 * the moderation store's byte caps together (`checkHolds`). When there is
 * one and no copy of the message has gone (the delivery record holds nothing
 * of an earlier attempt: `earlier`), the answer is its 5xx and nothing is
 * handed over or held; when an earlier attempt's copy went, its recipients
 * are reported instead (below) and the others go.
 *
 * Posts a moderated list holds (`holds`) are written first, once per arrival
 * and list (src/lists/expand.ts writeHolds): never for a message refused or
 * deferred before this point, and not again at the sender's retry.
 * Recipients the store refuses for good (a 5xx): when that is every
 * recipient of the message, the answer is that 5xx (the sending MTA reports
 * it); when others were taken, the answer stays 250 and the sender gets one
 * failure report naming them (dsn.ts), after which they are recorded as done.
 * Once any copy has gone or a post is held, the answer is never a 5xx: a
 * hold or a peer copy refused for good after that is reported like a store
 * refusal, and a report that cannot be queued for good is logged and said in
 * the 250.
 */
async function send(
  s: State,
  from: string,
  inbound: boolean,
  arrival: Buffer,
  copies: readonly Copy[],
  signal: AbortSignal,
  spelling: ReadonlyMap<string, string>,
  holds: readonly HeldPost[] = [],
  refusedBefore: readonly Unsendable[] = [],
): Promise<Sent> {
  // once per message: a reading of its seals, or a hash of its bytes when it names itself (Message-ID); else once per attempt
  const id = attemptId(arrival);
  const already: EarlierAttempts = { since: Date.now(), rcpts: [], marked: [] };
  try {
    return await sendMarked(s, from, inbound, arrival, copies, signal, spelling, holds, refusedBefore, id, already);
  } catch (err) {
    // refusals for good this attempt marked and did not report (it failed, or answered the sender 5xx itself): a retry
    // must not wait for a report that never comes
    await s.delivery.unmark(id, already.marked ?? []).catch(() => undefined);
    throw err;
  }
}

async function sendMarked(
  s: State,
  from: string,
  inbound: boolean,
  arrival: Buffer,
  copies: readonly Copy[],
  signal: AbortSignal,
  spelling: ReadonlyMap<string, string>,
  holds: readonly HeldPost[],
  refusedBefore: readonly Unsendable[],
  id: string,
  already: EarlierAttempts,
): Promise<Sent> {
  // the envelope of a copy handed on spells each address as it came (envelopeSpelling); the record keys stay canonical
  const spelt = (address: string) => spelling.get(address) ?? address;
  // what an earlier attempt of this message settled (a copy handed over, a post held, a recipient reported): read only
  const earlier = await s.delivery.earlier(id, already.since);
  // settled by an earlier attempt (handed over, held, or refused and reported): nothing more to do for it; an
  // intent only (a stop midway) may have gone, so no 5xx for the whole, but it is not taken for delivered
  const isEarlier = (r: string) => earlier.get(r.toLowerCase()) === true;
  // every refusal for good that can be known before anything is handed over
  const unsendable: Unsendable[] = [...refusedBefore];
  const peerCopies: Copy[] = [];
  for (const copy of copies.filter((c) => !c.local)) {
    const refused = finalOf(() => checkQueueable(s.queue, copy.message));
    if (refused) unsendable.push({ rcpts: copy.rcpts, error: refused, ...(copy.list ? { list: copy.list } : {}) });
    else peerCopies.push(copy);
  }
  let toHold = holds;
  const pending = holds.filter((h) => !isEarlier(h.list)); // a post an earlier attempt held takes its place already
  const tooLarge = pending.length > 0 ? finalOf(() => s.deps.lists?.checkHolds?.(pending)) : undefined;
  if (tooLarge) {
    unsendable.push({ rcpts: pending.map((h) => h.list), error: tooLarge });
    toHold = holds.filter((h) => isEarlier(h.list));
  }
  if (unsendable.length > 0 && earlier.size === 0) throw unsendable[0]!.error; // nothing of the message has gone: its 5xx
  const unsent: Refusal[] = [];
  for (const u of unsendable)
    for (const r of u.rcpts) {
      if (isEarlier(r))
        already.rcpts.push(r); // its copy went (or it was reported) at an earlier attempt
      else unsent.push(refusalOf(r, u.error, u.list));
    }
  for (const f of unsent)
    s.logerror(
      `ssmax: nothing sent to ${f.list ? `a member of ${f.list}` : f.rcpt}, after other copies went (reported to the sender): ${f.reply}`,
    );
  // posts held for a moderated list, now that every copy was worked out: once per arrival and list (src/lists/expand.ts)
  const unheld = await writeHolds(s.deps.lists, s.delivery, id, toHold, signal, already, earlier.size > 0);
  for (const f of unheld)
    s.logerror(`ssmax lists: the post to ${f.rcpt} cannot be held, after other copies went (reported to the sender): ${f.reply}`);
  unsent.push(...unheld);
  const failed = await s.delivery.deliver(
    arrival,
    from,
    copies.filter((c) => c.local),
    signal,
    id,
    already,
  );
  const all = copies.reduce((n, c) => n + c.rcpts.length, holds.length); // a held post's list is a recipient taken
  if (failed.length > 0 && failed.length >= all && unsent.length === 0) throw storeRefusal(failed);
  // whether a copy of this message has gone (by this attempt or an earlier one): from then on, never a 5xx for the whole message
  const failedRcpts = new Set(failed.map((f) => f.rcpt)); // a set: 10,000 list copies against as many refusals
  let gone =
    earlier.size > 0 ||
    toHold.length > unheld.length ||
    already.rcpts.length > 0 ||
    copies.some((c) => c.local && c.rcpts.some((r) => !failedRcpts.has(r)));
  const unqueued: Refusal[] = [];
  for (const copy of peerCopies) {
    const refused = await s.delivery.once(
      id,
      copy.rcpts,
      signal,
      async (todo) => {
        // a list's copy leaves with the list's bounce address (src/lists/bounces.ts): a notice about the member never reaches the poster;
        // the queue file names its copy (queue-reconcile.ts) and the list it was expanded from
        try {
          await queueMessage(s.queue, {
            from: spelt(envelopeSenderOf(copy, from)),
            to: todo.map(spelt),
            message: copy.message,
            notes: { ...copyNotes({ id, rcpts: todo }), ...(copy.list ? { [LIST_NOTE]: copy.list } : {}) },
          });
        } catch (err) {
          // refused for good after another copy went (checkQueueable passed it, so only a check added later): reported, not answered
          if (err instanceof GatewayError && !err.temporary && (gone || already.rcpts.length > 0)) {
            const reply = `${err.reply.code} ${err.reply.status} ${err.reply.text}`;
            s.logerror(
              `ssmax: the copy for ${todo.join(', ')} cannot be queued, after other copies went (reported to the sender): ${reply}`,
            );
            return { refused: todo.map((rcpt) => refusalOf(rcpt, err, copy.list)) };
          }
          if (err instanceof GatewayError) throw err;
          throw new GatewayError(
            'internal',
            `cannot queue the copy for ${todo.join(', ')}: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        return { refused: [] };
      },
      (err) => (err instanceof GatewayError ? err : new GatewayError('internal', String(err))),
      already,
    );
    unqueued.push(...refused);
    if (copy.rcpts.some((r) => !refused.some((f) => f.rcpt === r))) gone = true;
  }
  const notTaken = [...failed, ...unqueued, ...unsent];
  // a list member the store refuses: the sender addressed the list, and is not told who its members are (logged, settled below)
  for (const f of failed) if (f.list) s.logerror(`ssmax lists: ${f.list}: the mailbox store refused member ${f.rcpt} for good: ${f.reply}`);
  for (const f of unqueued) if (f.list) s.logerror(`ssmax lists: ${f.list}: the copy for member ${f.rcpt} cannot be queued: ${f.reply}`);
  for (const f of unsent) if (f.list) s.logerror(`ssmax lists: ${f.list}: no copy for member ${f.rcpt}, refused for good: ${f.reply}`);
  const toReport = notTaken.filter((f) => !f.list);
  const unreported = await reportAndSettle(s, { from, inbound, arrival, id }, toReport, notTaken, signal);
  const lower = (rs: readonly string[]) => new Set(rs.map((r) => r.toLowerCase()));
  return {
    failed: failed.filter((f) => !f.list),
    unqueued: unqueued.filter((f) => !f.list),
    unsent: unsent.filter((f) => !f.list),
    already: [...lower(already.rcpts)],
    all: lower([...copies.flatMap((c) => c.rcpts), ...holds.map((h) => h.list), ...refusedBefore.flatMap((u) => u.rcpts)]).size,
    unreported,
    nullSender: from === '',
  };
}

/**
 * Final refusals of an intact message that can change between two attempts (time, revocations, policy, registry,
 * limits), after which `refusedAfterEarlier` answers a retry 250: never one that says the message is not the one
 * it claims to be (chain, seal or user signature failures, malformed input), whose identity cannot be trusted.
 */
const CHANGED_SINCE: ReadonlySet<ReplyName> = new Set<ReplyName>([
  'listNeedsSsmax',
  'dlpRejected',
  'virusFound',
  'encryptionRequired',
  'encryptedNoPeer',
  'peerRefused',
  'sealTooOld',
  'sealHopTooLong',
  'sealCertificateRefused',
  'userCertificateRevoked',
  'userCertificateExpired',
  'userSignatureTooOld',
  'senderNotRegistered',
  'noLocalRecipient',
  'listNotMember',
  'mailboxRefused',
  'tooLarge',
  'heldTooLarge',
  'tooLargeToScan',
  'formatLimit',
  'keyDestroyed',
]);

/**
 * The backstop of "never a 5xx for a message after a copy of it went", for the refusals `send` cannot see: a final
 * refusal (a 5xx) of the protocol step itself — submission, reception, the chain checks — or of `send`, on a retry
 * of a message an earlier attempt already delivered or held copies of (a sending MTA retries after a 4xx): its seal
 * or user signature grew too old between the attempts, a DLP rule was added, a list's members changed, a peer is
 * now refused for good. When the delivery record holds anything of the message (the identity `send` uses:
 * `attemptId`) from before this attempt (`since`), the answer is 250 naming what happened: each recipient not yet
 * served gets nothing, its sender one failure report with the refusal (as `send` reports a recipient refused for good
 * after others went), and it is recorded as done, so a further retry sends and reports nothing again. Undefined when
 * nothing of the message went earlier: the 5xx stands. A failure while doing this is a 4xx, never the 5xx.
 */
async function refusedAfterEarlier(
  s: State,
  m: Incoming,
  err: unknown,
  since: number,
  signal: AbortSignal,
): Promise<[number, string] | undefined> {
  try {
    // only a refusal of the same, intact message whose circumstances changed: a forged or altered copy keeps the
    // identity of the message it imitates (a seal's signed tags), and gets its own 5xx (chain, signature, format)
    if (!(err instanceof GatewayError) || !CHANGED_SINCE.has(err.kind)) return undefined;
    // a release of a held message gets its real answer: its releaser keeps the entry held on a refusal (src/mail/release.ts),
    // and a post held as it arrived has the identity of its release (the release marker changes no seal), so the hold
    // itself would look like an earlier copy and a refused release like a delivered one
    if (isRelease(m.raw)) return undefined;
    const id = attemptId(m.raw);
    const earlier = await s.delivery.earlier(id, since);
    if (earlier.size === 0) return undefined;
    const reply = replyFor(err);
    const line = `${reply.code} ${reply.status} ${reply.text}`;
    // a recipient whose copy was only begun (an intent: the gateway stopped midway) is not taken for delivered: reported
    const isEarlier = (r: string) => earlier.get(r.toLowerCase()) === true;
    const unsent: Refusal[] = m.rcpts.filter((r) => !isEarlier(r)).map((rcpt) => ({ rcpt, code: reply.code, reply: line }));
    for (const f of unsent)
      s.logerror(`ssmax: nothing sent to ${f.rcpt} at a retry, after an earlier attempt's copies went (reported to the sender): ${line}`);
    const unreported = await reportAndSettle(s, { from: m.from, inbound: m.inbound, arrival: m.raw, id }, unsent, unsent, signal);
    const sent: Sent = {
      failed: [],
      unqueued: [],
      unsent,
      already: m.rcpts.filter(isEarlier),
      all: m.rcpts.length,
      unreported,
      nullSender: m.from === '',
    };
    const done = `Accepted (an earlier attempt of this message delivered or held copies; this retry was refused for good, ${reply.code} ${reply.status})`;
    return [CODES.OK, `${doneText(done, sent)}${failedNote(sent)}`];
  } catch (e) {
    // never the 5xx once a copy may have gone: whatever fails here is retried
    if (replyFor(e).code >= 500) throw new GatewayError('internal', `after an earlier attempt's copies went: ${replyFor(e).text}`);
    throw e;
  }
}

/**
 * Queues the failure report of a message some of whose copies went: true when it was queued. A report refused
 * for good (our own report, malformed: a fault of ours that a retry would meet again) is logged as an error and
 * false — the copies that went stay answered 250, never turned into a 5xx; a temporary failure rejects (the
 * sender's retry sends no copy again, the delivery record has them, and reports then).
 */
async function queueReport(s: State, to: string, report: Buffer): Promise<boolean> {
  try {
    await queue(s, to, report);
    return true;
  } catch (err) {
    if (!(err instanceof GatewayError) || err.temporary) throw err;
    s.logerror(`ssmax: the failure report to ${to} cannot be queued (the message's other copies went; 250 kept): ${err.reply.text}`);
    return false;
  }
}

/**
 * The 5xx for a message the mailbox store refused for every recipient: the store's own status code, naming each
 * recipient the sender addressed (a list, not its members).
 */
function storeRefusal(failed: readonly Refusal[]): GatewayError {
  const own = failed.find((f) => !f.list); // a reply naming a list member is never quoted
  const status = statusOf((own ?? failed[0]!).reply, '5.0.0');
  const named = [...new Set(failed.map((f) => f.list ?? f.rcpt))];
  const reply = own?.reply ?? `${status} the mailbox store refused the copies for the list's members`;
  return GatewayError.withStatus('mailboxRefused', status, `${reply} (${named.join(', ')})`);
}

/**
 * The recipients of message `id` that got no copy, for good: one failure report to the sender naming `toReport`
 * (none for the null sender: a report itself, RFC 3461 §6.1, only logged), then every one of `settled` recorded as
 * done, so a retry sends them nothing. Returns whether a report was due and could not be queued (a report that can
 * never go, or that our queue refuses for good, was not sent). Used by `send` and by the retry backstop.
 */
async function reportAndSettle(
  s: State,
  message: { readonly from: string; readonly inbound: boolean; readonly arrival: Buffer; readonly id: string },
  toReport: readonly Refusal[],
  settled: readonly Refusal[],
  signal: AbortSignal,
): Promise<boolean> {
  if (settled.length === 0) return false;
  signal.throwIfAborted();
  let unreported = false;
  if (message.from === '' || toReport.length === 0) {
    // the null sender gets no report (RFC 5321 §4.5.5), and nothing is due without a refusal to report
  } else if (message.inbound && !(await reportableSender(s.deps, message.from, message.arrival))) {
    // an arrival's envelope sender is only what its sending host claimed: the report, in this organisation's name
    // (sealed to a peer) and quoting the arrival's header, goes only to a sender the message vouches for (reportableSender)
    s.logerror(
      `ssmax: no failure report to ${message.from}: the envelope sender is not of the organisation that sealed the message (or is an SSMAX domain's on unsealed mail); the refusal is logged only`,
    );
    unreported = true;
  } else {
    const notice = failureNotice({
      me: s.config.domain,
      to: message.from,
      failed: toReport.map((f) => ({ rcpt: f.rcpt, reply: f.reply })),
      queuedAt: new Date(),
      headers: headerBlock(message.arrival),
      now: new Date(),
    });
    const out = await outgoingReport(s, message.from, notice);
    unreported = !out || !(await queueReport(s, message.from, out));
  }
  await s.delivery.settle(
    message.id,
    settled.map((f) => f.rcpt),
  );
  return unreported;
}

/**
 * A report as it leaves: for a local sender as it is (into the own mailbox
 * store); for a sender at an SSMAX peer sealed by this organisation like a
 * plain client's submission (submission.ts `reportToPeer`), since the peer
 * refuses unsealed mail from an SSMAX domain; for a sender elsewhere as it is.
 */
async function outgoingReport(s: State, to: string, notice: Buffer): Promise<Buffer | undefined> {
  if (s.config.localDomains.includes(domainOf(to))) return notice;
  try {
    return await reportToPeer(s.deps, notice, to);
  } catch (err) {
    // permanent (e.g. the sender's domain requires encryption and publishes no bundle): the report can never go
    // there, like a report whose delivery fails for good (a double bounce, logged); a 4xx is retried by the sender
    if (err instanceof GatewayError && err.reply.code >= 500) {
      s.logerror(`ssmax: failure report to ${to} cannot be sent: ${err.reply.text}`);
      return undefined;
    }
    throw err;
  }
}

/** A report from the null sender into Haraka's queue (for a local sender: routed to the mailbox store by hook_get_mx). */
function queue(s: State, to: string, notice: Buffer): Promise<void> {
  return queueMessage(s.queue, { from: '', to: [to], message: notice });
}

/**
 * The 250's text: what was done, or — when an earlier attempt (a retry after a lost 250, or the same
 * message sent again) had settled every recipient — that nothing was sent again.
 */
function doneText(done: string, sent: Sent): string {
  if (sent.all > 0 && sent.already.length >= sent.all)
    return `${ALREADY_DELIVERED} (an earlier attempt of this message handed every copy over; nothing sent again)`;
  const n = sent.already.length;
  return n > 0 ? `${done}; settled by an earlier attempt for ${n} recipient${n === 1 ? '' : 's'}, not sent again` : done;
}

/** The tail of a 250 reply naming recipients refused for good (their sender was sent a report, unless it could not be queued). */
function failedNote(sent: Sent): string {
  const told = sent.nullSender ? 'no report: the sender is the null sender' : sent.unreported ? 'report could not be sent' : 'report sent';
  const store = sent.failed.length > 0 ? `; refused by the mailbox store for ${sent.failed.map((f) => f.rcpt).join(', ')} (${told})` : '';
  const queue =
    sent.unqueued.length > 0 ? `; not sent to ${sent.unqueued.map((f) => f.rcpt).join(', ')}, refused by the queue (${told})` : '';
  // each with its reply's code and status (the report has the whole reply)
  const unsent = sent.unsent.map((f) => `${f.rcpt} (${f.reply.split(' ').slice(0, 2).join(' ')})`);
  const refused = unsent.length > 0 ? `; not sent to ${unsent.join(', ')}, refused for good (${told})` : '';
  return store + queue + refused;
}

/**
 * Who authenticated this submission: on a connection from a trusted relay,
 * the envelope sender that relay vouches for (it binds senders to its own
 * logins: docs/postfix.md); otherwise the SMTP AUTH user at this gateway.
 */
function submitterOf(s: State, connection: Connection, from: string): Submitter | undefined {
  if (trustedRelay(s, connection)) return from !== '' ? { id: from, via: 'trusted-relay' } : undefined;
  const user = connection.notes?.auth_user;
  if (typeof user === 'string' && user !== '') return { id: user, via: 'smtp-auth' };
  return undefined;
}

/** A connection from one of the organisation's own MTAs: by address ([main] trusted_relays) or by its SMTP AUTH login ([main] trusted_relay_logins). */
function trustedRelay(s: State, connection: Connection): boolean {
  if (connection.notes?.ssmax_trusted_relay) return true;
  const user = connection.notes?.auth_user;
  return typeof user === 'string' && s.config.trustedRelayLogins.includes(user);
}

/** The per-message log line of this hop (message-log.ts): written when `next` is answered. */
function hopOf(plugin: HarakaPlugin, s: State, connection: Connection, direction: HopDirection, next: Next): HopLog {
  const txn = connection.transaction;
  return startHop(txn?.uuid ?? '', direction, txn?.rcpt_to.map(addressOf) ?? [], s.config.localDomains, (l) => plugin.loginfo(l), next);
}

/** The message of a queue hook, as Haraka's transaction holds it. */
interface Incoming {
  readonly raw: Buffer;
  readonly rcpts: readonly string[];
  readonly from: string;
  /** Each envelope address (`addressOf`, the envelope sender included) as it came (`envelopeSpelling`): what a copy handed on carries. */
  readonly spelling: ReadonlyMap<string, string>;
  /** An arrival from a peer or the Internet (its envelope sender unverified), not a submission. */
  readonly inbound: boolean;
}

/** What a queue hook's protocol step gives the one body: its result, the reply's words for it, the log line for a capsule under a retired key. */
interface Stepped {
  readonly result: HopResult;
  readonly done: string;
  readonly retired?: (n: RetiredUse) => string;
}

function copiesText(result: HopResult): string {
  return `${result.copies.length} cop${result.copies.length === 1 ? 'y' : 'ies'}`;
}

/**
 * The one body of both queue hooks: read the message, run the direction's
 * protocol step, hand the copies over (`send`), answer 250 with what was done
 * (a refresh hint for a retired key, recipients the store refused for good).
 * A final refusal (5xx) of either, on a retry of a message an earlier attempt
 * already delivered or held copies of, is answered 250 with a failure report
 * instead (`refusedAfterEarlier`); with nothing gone earlier, the 5xx.
 */
function queueHook(
  plugin: HarakaPlugin,
  next: Next,
  connection: Connection,
  direction: HopDirection,
  step: (s: State, m: Incoming, hop: HopLog) => Promise<Stepped>,
): void {
  const s = ready(next);
  if (!s) return;
  const hop = hopOf(plugin, s, connection, direction, next);
  failClosed(
    direction === 'outbound' ? 'queue_outbound' : 'queue',
    s.hookMs,
    plugin,
    (signal) =>
      hop.run(async () => {
        const since = Date.now(); // this attempt's start: what the delivery record holds from before it is an earlier attempt's
        const txn = connection.transaction!;
        // Authentication-Results in our name that we did not write go before anything reads the message (RFC 8601 §5)
        const raw = withoutOwnResults(await messageOf(connection), [...s.config.localDomains, s.serverName]);
        const spelling = new Map([txn.mail_from, ...txn.rcpt_to].map((a) => [addressOf(a), envelopeSpelling(a)]));
        // each recipient once, however often RCPT TO named it (Haraka keeps repeats): a copy, a re-encryption and a
        // list expansion per repeat would multiply one message's cost by the recipient limit
        const all: Incoming = {
          raw,
          rcpts: [...new Set(txn.rcpt_to.map(addressOf))],
          from: addressOf(txn.mail_from),
          spelling,
          inbound: direction === 'inbound',
        };
        const rcpts = await bounceNotices(s, all);
        if (rcpts.length === 0) return [CODES.OK, "Settled (a notice to a list's bounce address, logged)"];
        const m: Incoming = { ...all, rcpts };
        try {
          const { result, done, retired } = await step(s, m, hop);
          if (result.quarantined) return [CODES.OK, `Held for review (quarantine ${result.quarantined})`];
          const sent = await send(s, m.from, m.inbound, raw, result.copies, signal, m.spelling, result.holds, result.unsendable);
          if (retired) for (const n of result.notices) plugin.loginfo(`ssmax: ${retired(n)}`);
          return [CODES.OK, `${doneText(done, sent)}${refreshHint(s.config.domain, result.notices)}${failedNote(sent)}`];
        } catch (err) {
          // a final refusal (5xx) on a retry of a message an earlier attempt already delivered or held copies of: 250 instead
          const settled = replyFor(err).code >= 500 ? await refusedAfterEarlier(s, m, err, since, signal) : undefined;
          if (settled) return settled;
          throw err;
        }
      }),
    hop.next,
  );
}

export function hook_queue_outbound(this: HarakaPlugin, next: Next, connection: Connection): void {
  queueHook(this, next, connection, 'outbound', async (s, m, hop) => {
    const notice = m.from === '' && trustedRelay(s, connection);
    const submitter = submitterOf(s, connection, m.from);
    hop.set({ mode: notice ? 'notice' : modeOf(m.raw), submitter: submitter?.via ?? 'none' });
    if (notice) {
      // The organisation's own MTA notifying a local user (a bounce, a delay notice): delivered as it is, on the internal hop;
      // only a delivery status report whose From is no user or list of this organisation (relay-notice.ts)
      const peers = m.rcpts.filter((r) => !s.config.localDomains.includes(domainOf(r)));
      if (peers.length > 0) throw new GatewayError('nullSenderToPeer', peers.join(', '));
      await checkRelayNotice(s.deps, m.raw);
      return {
        result: { copies: [{ rcpts: m.rcpts, message: m.raw, local: true }], notices: [] },
        done: `Delivered (notice from a trusted relay, ${m.rcpts.length} recipient${m.rcpts.length === 1 ? '' : 's'})`,
      };
    }
    const result = await submit(s.deps, m.raw, m.rcpts, submitter, m.from);
    return {
      result,
      done: `Queued (SSMAX ${result.mode === 'ssmax' ? 'client' : 'transparent'} mode, ${copiesText(result)})`,
      retired: (n) => `submission capsule for retired key ${n.keyId} accepted (within grace); client told to refresh to ${n.current}`,
    };
  });
}

export function hook_queue(this: HarakaPlugin, next: Next, connection: Connection): void {
  queueHook(this, next, connection, 'inbound', async (s, m, hop) => {
    hop.set({ mode: modeOf(m.raw) });
    const result = await receive(s.deps, m.raw, m.rcpts);
    return {
      result,
      done: `Delivered (SSMAX, ${copiesText(result)})`,
      retired: (n) => `accepted a capsule for retired key ${n.keyId} (within grace); sender told to refresh to ${n.current}`,
    };
  });
}

export function hook_capabilities(this: HarakaPlugin, next: Next, connection: Connection): void {
  const s = ready(next);
  if (!s) return;
  const advertiser = s.advertiser;
  if (!advertiser) return next();
  // Haraka answers the EHLO with its list whatever a capabilities hook returns; the body cannot fail (no keyd: the seal serial only).
  failClosed(
    'capabilities',
    s.hookMs,
    this,
    async () => {
      const line = await advertiser.current();
      if (Array.isArray(connection.capabilities)) connection.capabilities.push(line);
      return [CODES.CONT];
    },
    next,
  );
}

/** Haraka's outbound: [host, ip, response, delay, port, mode, ok_recips, secured, authenticated]. */
export function hook_delivered(this: HarakaPlugin, next: Next, hmail: QueuedMail | undefined, params: unknown[]): void {
  const s = ready(next);
  if (!s) return;
  failClosed(
    'delivered',
    s.hookMs,
    this,
    async () => {
      // a queued peer copy delivered: recorded before Haraka removes its file (queue-reconcile.ts)
      const copy = copyOf(hmail?.todo?.notes);
      if (copy) await s.delivery.markQueued([copy]);
      const response = params?.[2];
      const text = Array.isArray(response) ? response.join(' ') : String(response ?? '');
      // a hint counts only for the domain this copy went to: a peer cannot name another domain's keys
      if (s.deps.keyWatch?.noteReply(text, hmail?.todo?.domain))
        this.loginfo(`ssmax: refresh hint from a peer (${hmail?.todo?.domain}): ${text.replace(/[\r\n]/g, ' ').slice(0, 200)}`);
      return [CODES.CONT];
    },
    next,
  );
}

/**
 * Haraka is about to bounce a queued copy (a peer refused a recipient for
 * good, the copy expired). A list's copy (its queue notes name the list):
 * the bounce would name the member, so it is never sent — each recipient is
 * written to the log with the reason, and the copy is discarded (Haraka sends
 * no bounce for an answer other than CONT). Any other copy: CONT, Haraka's
 * bounce to its sender as ever. Answered here, never through the fail-closed
 * wrapper: its 4xx would drop the bounce of an ordinary copy.
 */
export function hook_bounce(this: HarakaPlugin, next: Next, hmail: QueuedMail | undefined, err: unknown): void {
  let list: string | undefined;
  try {
    list = listOf(hmail?.todo?.notes);
    if (list) {
      const reason = err instanceof Error ? err.message : String(err);
      for (const r of hmail?.todo?.rcpt_to ?? [])
        this.logerror(`ssmax lists: ${list}: the copy for member ${r.user}@${r.host} failed for good: ${sanitize(r.reason ?? reason)}`);
      this.logerror(`ssmax lists: ${list}: no bounce sent for its copy (${sanitize(reason)})`);
    }
  } catch (e) {
    // a list's copy is never bounced to the poster, even when logging fails
    this.logerror(`ssmax: bounce hook failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  next(list ? CODES.OK : undefined); // once, outside the try: a throwing next is not called again
}

export function hook_get_mx(this: HarakaPlugin, next: Next, _hmail: unknown, domain: string): void {
  const s = state;
  // stopping (after shutdown, while Haraka's queue still runs): which domains are local, and their route, is not known
  // now; left to Haraka, a report to a local sender would go by DNS to a gateway that refuses it and be lost. Later.
  if (!s) return next(CODES.DENYSOFT, 'ssmax: the gateway is stopping; routing is not known now');
  // wrapped as every hook is: a fault here must defer the copy, never leave its route to Haraka's MX lookup
  failClosed(
    'get_mx',
    s.hookMs,
    this,
    async () => {
      // mail for a local domain in Haraka's queue is a delivery status notification to a local sender: into the mailbox store
      const spelt = canonicalDomain(domain) || String(domain).toLowerCase();
      const local = s.config.localDomains.includes(spelt) ? s.config.delivery : undefined;
      // an own property only: a domain named "constructor" is no route
      const route = local ?? (Object.hasOwn(s.config.routes, spelt) ? s.config.routes[spelt] : undefined);
      if (!route) return [CODES.CONT];
      return [
        CODES.OK,
        { exchange: route.host, port: route.port, priority: 0, ...(local?.protocol === 'lmtp' ? { using_lmtp: true } : {}) },
      ];
    },
    next,
  );
}

/**
 * A queued peer copy was deferred: once it has waited [delivery]
 * delay_notice_seconds, its local sender gets one delay notice (dsn.ts).
 * Observation only: whatever happens here, the copy stays queued (any other
 * answer than CONT would make Haraka drop it), so this hook answers CONT
 * itself and never goes through the fail-closed wrapper.
 */
export function hook_deferred(this: HarakaPlugin, next: Next, hmail: QueuedMail, params: { err?: unknown } | undefined): void {
  const s = state;
  if (!s) return next();
  // bounded like every other hook: a notice that hangs must not hold Haraka's queue runner
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${s.hookMs} ms`)), s.hookMs);
  });
  Promise.race([delayed(s, hmail, params?.err), timeout])
    .catch((err: unknown) => this.logerror(`ssmax: delay notice failed: ${err instanceof Error ? err.message : String(err)}`))
    .finally(() => {
      clearTimeout(timer);
      next();
    });
}

async function delayed(s: State, hmail: QueuedMail, err: unknown): Promise<void> {
  const todo = hmail.todo;
  const sender = todo?.mail_from;
  if (!todo || !sender?.user) return; // a notice itself (null sender)
  const list = listOf(todo.notes);
  if (list) {
    // a list's copy: no delay notice (it would name the member; its sender is the list's bounce address), a log line instead
    const members = todo.rcpt_to.map((r) => `${r.user}@${r.host}`).join(', ');
    const reason = todo.rcpt_to.find((r) => r.reason)?.reason ?? (err instanceof Error ? err.message : String(err ?? 'temporary failure'));
    s.logerror(`ssmax lists: ${list}: the copy for member ${members} is delayed: ${sanitize(reason)}`);
    return;
  }
  await notifyDelay(
    {
      me: s.config.domain,
      localDomains: s.config.localDomains,
      delayNoticeMs: s.config.delivery.delayNoticeMs,
      marks: s.delivery,
      send: (to, notice) => queue(s, to, notice),
    },
    {
      id: todo.uuid,
      queuedAt: new Date(todo.queue_time),
      sender: `${sender.user}@${String(sender.host)}`,
      rcpts: todo.rcpt_to.map((r) => `${r.user}@${r.host}`),
      // the peer's own reply for a recipient when Haraka kept it, else the queue's summary
      reason: todo.rcpt_to.find((r) => r.reason)?.reason ?? (err instanceof Error ? err.message : String(err ?? 'temporary failure')),
    },
    () => streamedHeader(() => hmail.data_stream()),
  );
}

export function shutdown(this: HarakaPlugin): void {
  void state?.ops.then((o) => o?.close()).catch(() => undefined);
  state?.close().catch(() => undefined); // Haraka is stopping: nothing to tell, and an unhandled rejection would be noise at exit
  state = undefined;
}
