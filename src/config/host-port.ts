/**
 * The one reader of a `host:port` the project takes in its ini files and on
 * its command lines (docs/configuration.md): a name or an IPv4 address, or an
 * IPv6 address in brackets, then a colon and the port.
 *
 *   mx.example.org:25   127.0.0.1:2525   [::1]:2525   [2001:db8::1]:443
 *
 * The host comes back without the brackets. An IPv6 address without them
 * (`::1:25`) is refused: where it ends and the port begins cannot be told.
 * Each caller wraps the reason in its own error, naming the setting or option.
 */
import { isIP } from 'node:net';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A value that is not host:port; `message` says why (without the value's name: the caller adds it). */
export class HostPortError extends Error {
  override readonly name = 'HostPortError';
}

/** Longer than any host name (253) in brackets with a port: refused before any matching. */
const MAX_LENGTH = 300;

/**
 * `value` as host and port; a HostPortError otherwise. The port is a whole
 * number from `minPort` (default 0: "any free port", for listeners) to 65535.
 */
export function parseHostPort(value: string, minPort = 0): HostPort {
  const v = value.trim();
  if (v.length > MAX_LENGTH) throw new HostPortError(`must be host:port, got a value of ${v.length} characters`);
  let host: string;
  let portText: string;
  if (v.startsWith('[')) {
    const close = v.indexOf(']');
    host = close < 0 ? '' : v.slice(1, close);
    if (close < 0 || isIP(host) !== 6)
      throw new HostPortError(`must be host:port with an IPv6 address in brackets, as [::1]:25, got '${v}'`);
    if (v[close + 1] !== ':') throw new HostPortError(`must be host:port (a port after the brackets, as [::1]:25), got '${v}'`);
    portText = v.slice(close + 2);
  } else {
    const colon = v.lastIndexOf(':');
    if (colon < 0) throw new HostPortError(`must be host:port, got '${v}'`);
    host = v.slice(0, colon);
    portText = v.slice(colon + 1);
    if (host.includes(':')) throw new HostPortError(`must be host:port; an IPv6 address goes in brackets, as [::1]:25, got '${v}'`);
    if (host === '' || /[\s[\]/@]/.test(host)) throw new HostPortError(`must be host:port, got '${v}'`);
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= minPort && port <= 65535)) throw new HostPortError(`must be host:port with a port from ${minPort} to 65535, got '${v}'`);
  return { host, port };
}

/** `host:port` written back, an IPv6 address in brackets (for URLs and messages). */
export function formatHostPort(hp: HostPort): string {
  return `${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
}
