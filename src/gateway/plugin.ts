/**
 * The Haraka plugin `ssmax` (plugins/ssmax loads this module in Haraka's main
 * realm). Hooks, each through the fail-closed wrapper:
 *  - connect_init: TCP_NODELAY on the client socket (Haraka never sets it); a
 *    connection from a trusted relay ([main] trusted_relays) may relay;
 *  - rcpt: domain encryption policy (relaying) or local recipient check;
 *  - queue_outbound: submission (sending organisation) — copies for peers are
 *    queued for Haraka's outbound, local copies delivered to the mailbox store;
 *  - queue: arrival from another organisation, delivered to the mailbox store;
 *  - get_mx: next hops from [routes];
 *  - capabilities: the X-SSMAX EHLO keyword (current key version, sealing
 *    certificate serial: docs/key-exchange.md);
 *  - delivered: a peer's 250 reply with a refresh hint is noted, so the next
 *    copy for that peer refreshes the bundle first (observation only).
 * Exports are plain functions (Haraka copies enumerable exports onto the plugin).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Copy } from './deps';
import { type Gateway, setupGateway } from './setup';
import { CODES, type Next, answer, failClosed } from './fail-closed';
import { type RetiredUse, arrive, refreshHint } from './reception';
import { GatewayError, REPLIES } from './replies';
import { domainOf } from './message-checks';
import { noDelay, patchOutboundNoDelay } from './nodelay';
import { type Submitter, peerFor, submit } from './submission';
import { TrustedRelays } from './trusted-relays';
import { type HopDirection, type HopLog, instrument, modeOf, startHop } from './message-log';
import { type GatewayOps, startGatewayOps } from '../ops/gateway-ops';

interface HarakaPlugin {
  config: { get(name: string, opts?: unknown, cb?: () => void): unknown };
  loginfo(msg: string): void;
  logerror(msg: string): void;
}
/** Haraka's address objects: `address` is a method on some, a getter on others (@haraka/email-address). */
interface Address { address: string | (() => string); host: string }

function addressOf(a: Address): string {
  return (typeof a.address === 'function' ? a.address() : a.address).toLowerCase();
}
interface Connection {
  relaying: boolean;
  remote?: { ip?: string };
  notes?: { auth_user?: unknown; ssmax_trusted_relay?: boolean };
  capabilities?: string[] | null;
  client: { setNoDelay?: (v: boolean) => void; targetsocket?: { setNoDelay?: (v: boolean) => void } };
  transaction?: { mail_from: Address; rcpt_to: Address[]; message_stream: { get_data(cb: (buf: Buffer) => void): void }; uuid: string };
  logerror(msg: string): void;
}

interface State extends Gateway {
  trusted: TrustedRelays;
  outbound: { send_email(from: string, to: string[], contents: Readable, next: (code: number, msg: string) => void, opts?: unknown): void };
  /** The [ops] listener (health, metrics: src/ops/gateway-ops.ts), when configured. */
  ops: Promise<GatewayOps | undefined>;
}

let state: State | undefined;

function build(plugin: HarakaPlugin): State {
  const haraka = process.env.HARAKA ?? process.cwd();
  const ini = plugin.config.get('ssmax.ini', { booleans: ['+main.tcp_nodelay', '+directory.dns'] }) as Record<string, Record<string, unknown>>;
  const gw = setupGateway(ini, haraka, (l) => plugin.loginfo(l));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const outbound = require('Haraka/outbound') as State['outbound'];
  if (gw.config.tcpNoDelay) patchOutboundNoDelay();
  instrument(gw); // the facts and step times of the per-message log line (message-log.ts)
  const ops = startGatewayOps(gw, ini.ops, (l) => plugin.loginfo(l)).catch((err: unknown) => {
    plugin.logerror(`ssmax: ops listener not started: ${(err as Error).message}`);
    return undefined;
  });
  return { ...gw, outbound, trusted: new TrustedRelays(gw.config.trustedRelays), ops };
}

export function register(this: HarakaPlugin): void {
  state = build(this);
  void state.advertiser?.current(); // primes the EHLO line (never rejects)
  this.loginfo(`ssmax: gateway for ${state.config.domain} (local: ${state.config.localDomains.join(', ')})`);
}

/** The plugin's state, or a 4xx answer if register() never completed (a hook must never throw: Haraka treats that as CONT). */
function ready(next: Next): State | undefined {
  if (!state) answer(next, REPLIES.internal);
  return state;
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
  failClosed('rcpt', s.config.hookTimeoutMs, this, async () => {
    const rcpt = params[0]!;
    const domain = rcpt.host.toLowerCase();
    const local = s.config.localDomains.includes(domain);
    if (local) {
      const user = await s.deps.keyd.user(addressOf(rcpt));
      if (!user || user.status !== 'active') throw new GatewayError('noLocalRecipient', addressOf(rcpt));
      return [CODES.OK];
    }
    if (!connection.relaying) return [CODES.DENY, 'Relaying denied'];
    await peerFor(s.deps, domain); // 5xx when the domain requires encryption and has no bundle; 4xx while unreachable
    return [CODES.OK];
  }, next);
}

function messageOf(connection: Connection): Promise<Buffer> {
  return new Promise((resolve) => connection.transaction!.message_stream.get_data(resolve));
}

async function send(s: State, from: string, arrival: Buffer, copies: readonly Copy[]): Promise<void> {
  await s.delivery.deliver(arrival, from, copies.filter((c) => c.local));
  for (const copy of copies.filter((c) => !c.local)) {
    await new Promise<void>((resolve, reject) => {
      // a stream, not a string: Haraka re-encodes string contents as UTF-8
      s.outbound.send_email(from, [...copy.rcpts], Readable.from([copy.message]), (code, msg) => {
        if (code === CODES.OK) resolve();
        else reject(new GatewayError('internal', `cannot queue the copy for ${copy.rcpts.join(', ')}: ${msg}`));
      }, { dot_stuffed: false });
    });
  }
}

/**
 * Who authenticated this submission: on a connection from a trusted relay,
 * the envelope sender that relay vouches for (it binds senders to its own
 * logins: docs/postfix.md); otherwise the SMTP AUTH user at this gateway.
 */
function submitterOf(s: State, connection: Connection, from: string): Submitter | undefined {
  if (trustedRelay(s, connection)) return from !== '' ? { id: fitted(from), via: 'trusted-relay' } : undefined;
  const user = connection.notes?.auth_user;
  if (typeof user === 'string' && user !== '') return { id: fitted(user), via: 'smtp-auth' };
  return undefined;
}

/** A submitter as a token carries it: itself up to 128 bytes, else `sha256:` and its digest (still matches a candidate). */
function fitted(id: string): string {
  return Buffer.byteLength(id) <= 128 ? id : `sha256:${createHash('sha256').update(id).digest('hex')}`;
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

export function hook_queue_outbound(this: HarakaPlugin, next: Next, connection: Connection): void {
  const s = ready(next);
  if (!s) return;
  const hop = hopOf(this, s, connection, 'outbound', next);
  failClosed('queue_outbound', s.config.hookTimeoutMs, this, () => hop.run(async () => {
    const txn = connection.transaction!;
    const raw = await messageOf(connection);
    const rcpts = txn.rcpt_to.map(addressOf);
    const notice = addressOf(txn.mail_from) === '' && trustedRelay(s, connection);
    hop.set({ mode: notice ? 'notice' : modeOf(raw), submitter: submitterOf(s, connection, addressOf(txn.mail_from))?.via ?? 'none' });
    if (notice) {
      // The organisation's own MTA notifying a local user (a bounce, a delay notice): delivered as it is, on the internal hop.
      const peers = rcpts.filter((r) => !s.config.localDomains.includes(domainOf(r)));
      if (peers.length > 0) throw new GatewayError('nullSenderToPeer', peers.join(', '));
      await s.delivery.deliver(raw, '', [{ rcpts, message: raw, local: true }]);
      return [CODES.OK, `Delivered (notice from a trusted relay, ${rcpts.length} recipient${rcpts.length === 1 ? '' : 's'})`];
    }
    const { copies, mode, notices, quarantined } = await submit(s.deps, raw, rcpts, submitterOf(s, connection, addressOf(txn.mail_from)));
    if (quarantined) return [CODES.OK, `Held for review (quarantine ${quarantined})`];
    await send(s, addressOf(txn.mail_from), raw, copies);
    for (const n of notices) this.loginfo(`ssmax: submission capsule for retired key ${n.keyId} accepted (within grace); client told to refresh to ${n.current}`);
    return [CODES.OK, `Queued (SSMAX ${mode === 'ssmax' ? 'client' : 'transparent'} mode, ${copies.length} cop${copies.length === 1 ? 'y' : 'ies'})${refreshHint(s.config.domain, notices)}`];
  }), hop.next);
}

export function hook_queue(this: HarakaPlugin, next: Next, connection: Connection): void {
  const s = ready(next);
  if (!s) return;
  const hop = hopOf(this, s, connection, 'inbound', next);
  failClosed('queue', s.config.hookTimeoutMs, this, () => hop.run(async () => {
    const txn = connection.transaction!;
    const raw = await messageOf(connection);
    hop.set({ mode: modeOf(raw) });
    const notices: RetiredUse[] = [];
    const held: { quarantined?: string } = {};
    const copies = await arrive(s.deps, raw, txn.rcpt_to.map(addressOf), notices, held);
    if (held.quarantined) return [CODES.OK, `Held for review (quarantine ${held.quarantined})`];
    await send(s, addressOf(txn.mail_from), raw, copies);
    for (const n of notices) this.loginfo(`ssmax: accepted a capsule for retired key ${n.keyId} (within grace); sender told to refresh to ${n.current}`);
    return [CODES.OK, `Delivered (SSMAX, ${copies.length} cop${copies.length === 1 ? 'y' : 'ies'})${refreshHint(s.config.domain, notices)}`];
  }), hop.next);
}

export function hook_capabilities(this: HarakaPlugin, next: Next, connection: Connection): void {
  const s = ready(next);
  if (!s) return;
  const advertiser = s.advertiser;
  if (!advertiser) return next();
  // Haraka answers the EHLO with its list whatever a capabilities hook returns; the body cannot fail (no keyd: the seal serial only).
  failClosed('capabilities', s.config.hookTimeoutMs, this, async () => {
    const line = await advertiser.current();
    if (Array.isArray(connection.capabilities)) connection.capabilities.push(line);
    return [CODES.CONT];
  }, next);
}

/** Haraka's outbound: [host, ip, response, delay, port, mode, ok_recips, secured, authenticated]. */
export function hook_delivered(this: HarakaPlugin, next: Next, _hmail: unknown, params: unknown[]): void {
  const s = ready(next);
  if (!s) return;
  failClosed('delivered', s.config.hookTimeoutMs, this, () => {
    const response = params?.[2];
    const text = Array.isArray(response) ? response.join(' ') : String(response ?? '');
    const before = s.deps.keyWatch?.stats.hints ?? 0;
    s.deps.keyWatch?.noteReply(text);
    if ((s.deps.keyWatch?.stats.hints ?? 0) > before) this.loginfo(`ssmax: refresh hint from a peer: ${text.replace(/[\r\n]/g, ' ').slice(0, 200)}`);
    return Promise.resolve([CODES.CONT]);
  }, next);
}

export function hook_get_mx(this: HarakaPlugin, next: Next, _hmail: unknown, domain: string): void {
  const s = state;
  const route = s?.config.routes[domain.toLowerCase()];
  if (!route) return next();
  next(CODES.OK, { exchange: route.host, port: route.port, priority: 0 });
}

export function shutdown(this: HarakaPlugin): void {
  void state?.ops.then((o) => o?.close());
  void state?.close();
  state = undefined;
}
