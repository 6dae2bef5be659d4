/**
 * Handing a message of the gateway (a peer copy, a report, a delay notice) to
 * Haraka's outbound queue, byte for byte.
 *
 * Haraka keeps a message in its SMTP wire form: every line that begins with
 * "." has it doubled (dot-stuffing), and its queue runner sends the queue file
 * to the next hop as it is. Its `send_email` with a stream does not stuff the
 * lines, and decodes and re-encodes them as UTF-8: a line "." would end the
 * DATA at the next hop (what follows it read there as SMTP commands), a line
 * ".x" would lose its dot, and a byte that is not UTF-8 would become U+FFFD.
 * So the gateway builds Haraka's transaction itself: each line as bytes, a
 * leading "." doubled, then `send_trans_email` — the function `send_email`
 * ends in, so everything else (Message-Id and Date when missing, the Received
 * field, the queue file, the hooks) is Haraka's own.
 */
import { createRequire } from 'node:module';
import { CODES } from './fail-closed';
import { checkUtf8Fields } from '../mail/message-checks';
import { findHeaderEnd } from '../mail/header-block';
import { GatewayError } from '../mail/replies';

/** A message line, as Haraka's transaction takes it (its line ending included). */
type Line = Buffer;

/** Haraka's address class (@haraka/email-address, as the running Haraka loads it). */
export type AddressClass = new (text: string) => object;

/** What is used of Haraka's transaction (transaction.js). */
export interface HarakaTransaction {
  mail_from: unknown;
  rcpt_to: unknown[];
  notes: unknown;
  add_data(line: Line): void;
  message_stream: { add_line_end(cb?: () => void): void; on?(event: 'error', listener: (err: Error) => void): unknown };
  header: { header_list?: string[] };
}

/** The Haraka modules a queued message goes through. */
export interface HarakaQueue {
  createTransaction(uuid: null, cfg: unknown): HarakaTransaction;
  /** Haraka's outbound: queues the transaction; `next` gets OK (906) with its text, or a failure. */
  send_trans_email(txn: HarakaTransaction, next: (code: number, msg: unknown) => void): void;
  Address: AddressClass;
  /** smtp.ini, as Haraka's own send_email reads it (header lines kept; its spooling is turned off: neverSpooled). */
  smtpIni: unknown;
}

/**
 * Haraka's queue, from the running Haraka (`harakaRequire` names its own modules: plugins.js haraka_require).
 * The address class is required from beside Haraka's transaction module, so a Haraka installed
 * apart from this package (its own node_modules) gives its own copy.
 */
export function harakaQueue(harakaRequire: (name: string) => unknown, smtpIni: unknown): HarakaQueue {
  const trans = harakaRequire('transaction') as { createTransaction?: unknown };
  const outbound = harakaRequire('outbound') as { send_trans_email?: unknown };
  if (typeof trans.createTransaction !== 'function' || typeof outbound.send_trans_email !== 'function')
    throw new Error('this Haraka has no transaction.createTransaction or outbound.send_trans_email (Haraka 3 is needed)');
  const file = Object.values(loadedModules()).find((m) => m?.exports === trans)?.filename;
  if (!file) throw new Error("cannot find where Haraka's transaction module was loaded from");
  const email = createRequire(file)('@haraka/email-address') as { Address?: unknown };
  if (typeof email.Address !== 'function') throw new Error("Haraka's @haraka/email-address has no Address class");
  const createTransaction = trans.createTransaction as HarakaQueue['createTransaction'];
  return {
    createTransaction: (uuid, cfg) => createTransaction(uuid, cfg),
    // looked up at each call: another plugin may wrap it (as the tests' fault injection does)
    send_trans_email: (txn, next) => (outbound.send_trans_email as HarakaQueue['send_trans_email']).call(outbound, txn, next),
    Address: email.Address as AddressClass,
    smtpIni,
  };
}

function loadedModules(): NodeJS.Dict<NodeModule> {
  return require.cache;
}

/**
 * The lines of `message` in SMTP wire form: split after each LF (a line without one at the end
 * kept as it is), a leading "." doubled. Bytes are never decoded.
 */
export function* wireLines(message: Buffer): Generator<Line> {
  let start = 0;
  while (start < message.length) {
    const lf = message.indexOf(0x0a, start);
    const end = lf < 0 ? message.length : lf + 1;
    const line = message.subarray(start, end);
    yield line[0] === 0x2e ? Buffer.concat([Buffer.from('.'), line]) : line;
    start = end;
  }
}

/** What is queued: envelope, message, the queue notes (read back by the hooks: queue-reconcile.ts, lists). */
export interface Queued {
  readonly from: string;
  readonly to: readonly string[];
  readonly message: Buffer;
  readonly notes?: Record<string, unknown>;
}

/**
 * Queues `q` at Haraka's outbound, the message byte for byte (dot-stuffed here; Haraka's queue
 * runner sends it on as it is). Resolves when Haraka has written the queue file; rejects with
 * Haraka's reason otherwise (a 4xx of the gateway: the sender retries). Haraka writes header
 * fields out as UTF-8: a header block that is not UTF-8 could not leave unchanged, and is refused
 * (GatewayError headerNotUtf8, 550 5.6.0; every message is checked so on arrival already).
 * Haraka keeps only `headers.max_lines` (default 1000) lines of a header and drops every later
 * field without a word: a header of more lines is refused (headerTooManyLines, 552 5.3.4).
 */
export function queueMessage(h: HarakaQueue, q: Queued): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    checkQueueable(h, q.message);
    const txn = h.createTransaction(null, neverSpooled(h.smtpIni));
    txn.message_stream.on?.('error', reject); // an unheard stream error would end Haraka
    if (q.notes) txn.notes = q.notes;
    txn.mail_from = new h.Address(q.from === '' || q.from === '<>' ? '<>' : `<${q.from}>`);
    txn.rcpt_to = q.to.map((r) => new h.Address(`<${r}>`));
    if (txn.rcpt_to.length === 0) throw new Error('queueMessage: no recipients');
    for (const line of wireLines(q.message)) txn.add_data(line);
    stuffHeaderLines(txn);
    txn.message_stream.add_line_end();
    h.send_trans_email(txn, (code, msg) => (code === CODES.OK ? resolve() : reject(new Error(`Haraka's queue: ${String(msg)}`))));
  });
}

/**
 * `cfg` with its message stream never spooled to disk ([main] spool_after=-1). Haraka's message stream
 * writes a message over spool_after (25 MiB when not set) to a file in spool_dir (/tmp), which only
 * the stream's destroy() closes and removes, and Haraka's outbound never calls it for a transaction
 * it was handed: every large peer copy left a file behind until /tmp was full, and then the stream's
 * write error, with no listener, ended Haraka. The copy is in memory already (`Queued.message`).
 */
export function neverSpooled(cfg: unknown): unknown {
  const c = (cfg ?? {}) as { main?: Record<string, unknown> };
  return { ...c, main: { ...(c.main ?? {}), spool_after: -1 } };
}

/**
 * Every check by which `queueMessage` refuses a message for good (a header block that is not UTF-8: 550 5.6.0;
 * more header lines than Haraka keeps: 552 5.3.4). The gateway runs it on every peer copy of a message before it
 * hands the first copy of that message over (plugin.ts `send`), so no copy is refused for good after another went.
 */
export function checkQueueable(h: HarakaQueue, message: Buffer): void {
  const end = findHeaderEnd(message, { bareLf: true });
  checkUtf8Fields(message.subarray(0, end.bodyStart));
  checkHeaderLines(message.subarray(0, end.headEnd), maxHeaderLines(h.smtpIni));
}

/** Haraka's `headers.max_lines` for a transaction made with `cfg` (its own default 1000). */
export function maxHeaderLines(cfg: unknown): number {
  const v = Number((cfg as { headers?: { max_lines?: unknown } } | null | undefined)?.headers?.max_lines);
  return Number.isInteger(v) && v > 0 ? v : 1000;
}

/**
 * Refuses a header (its field lines, without the blank line that ends it) of more than `max`
 * lines, the lines Haraka's transaction keeps (GatewayError headerTooManyLines, 552 5.3.4). One pass.
 */
export function checkHeaderLines(fields: Buffer, max: number): void {
  let lines = fields.length > 0 && fields[fields.length - 1] !== 0x0a ? 1 : 0;
  for (let i = fields.indexOf(0x0a); i >= 0; i = fields.indexOf(0x0a, i + 1)) lines++;
  if (lines > max) throw new GatewayError('headerTooManyLines', `${lines} lines, at most ${max}`);
}

/**
 * Haraka writes the header fields of a queued message from its parsed list (de-stuffed), and
 * its queue file is sent on as it is: a field line beginning with "." is stuffed again here, so
 * the next hop reads it unchanged.
 */
function stuffHeaderLines(txn: HarakaTransaction): void {
  const list = txn.header.header_list;
  if (!Array.isArray(list)) return;
  for (let i = 0; i < list.length; i++) if (list[i]!.startsWith('.')) list[i] = `.${list[i]!}`;
}
