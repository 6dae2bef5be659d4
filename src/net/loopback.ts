/**
 * Whether a host is this machine's loopback, for the checks that let
 * something secret travel without TLS only to this machine (clamd over TCP,
 * src/inspect/clamd-settings.ts; a release of a held message, src/mail/release.ts).
 */
import { isIP } from 'node:net';

/**
 * Whether `host` (IPv6 with or without brackets) is a loopback address of this machine: 127.0.0.0/8, ::1, or an
 * IPv4-mapped 127.x. Only literal addresses: a name (even "localhost") is resolved by the system, which an
 * /etc/hosts line or a resolver can point elsewhere.
 */
export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) !== 6) return false;
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  if (mapped) return mapped[1]!.startsWith('127.');
  return !h.includes('.') && expandV6(h) === '0:0:0:0:0:0:0:1';
}

/** An IPv6 address (no embedded IPv4) with its groups written out, each without leading zeros. */
function expandV6(h: string): string {
  const [head, tail] = h.includes('::') ? h.split('::') : [h, undefined];
  const a = head ? head.split(':') : [];
  const b = tail === undefined ? [] : tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(8 - a.length - b.length).fill('0');
  return [...a, ...zeros, ...b].map((g) => String(parseInt(g || '0', 16))).join(':');
}

/** How an SMTP client protects its session: `none` (cleartext), `starttls`, or `tls` from the start. */
export type SmtpSecurity = 'none' | 'starttls' | 'tls';

/**
 * Why SMTP with `security` to `host` is refused, or undefined when it is not: in cleartext (`none`) a
 * password and a message would cross the network, so only to a literal loopback address (a name, even
 * `localhost`, is resolved by the system and counts as remote). The one rule of every SMTP client here
 * that may authenticate (`ssmax abuse`'s submission, `ssmax user send`; releases require STARTTLS off
 * loopback the same way).
 */
export function plaintextSmtpRefusal(host: string, security: SmtpSecurity): string | undefined {
  if (security !== 'none' || isLoopbackAddress(host)) return undefined;
  return `security "none" to ${host}, which is not a loopback address: the password and the message would cross the network in cleartext; use starttls or tls, or a loopback address`;
}
