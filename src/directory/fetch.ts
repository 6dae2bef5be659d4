/**
 * Fetches a bundle over HTTPS: one GET, bounded in time and size, the server
 * certificate checked against the configured CAs and the URL's host name.
 * The bundle authenticates itself (its signature, up to an SSMAX root); TLS
 * adds confidentiality of who asks for whom and keeps an on-path attacker from
 * serving an old bundle without being noticed by the TLS layer first.
 *
 * Errors are `FetchError` with a one-line message; every one is temporary
 * from the caller's point of view (SMTP 4xx).
 */
import { Resolver } from 'node:dns/promises';
import { BlockList, type LookupFunction, type Socket, isIP } from 'node:net';
import { request } from 'node:https';
import { MAX_BUNDLE_BYTES } from '../pki/bundle';

export class FetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FetchError';
  }
}

export interface FetchOptions {
  readonly timeoutMs: number;
  /** CA certificates (PEM) for the publisher's TLS certificate; undefined = Node's default store. */
  readonly ca?: readonly string[];
  /** Fixed addresses for host names (like curl --resolve): closed networks and tests. */
  readonly hosts?: ReadonlyMap<string, string>;
  /**
   * Addresses of a host name not in `hosts` (the directory's resolver: the configured DNS servers, else the
   * system's); default a resolver of the system's servers. Never the operating system's getaddrinfo, which
   * runs on libuv's few shared threads and cannot be abandoned: a publisher's name servers that never answer
   * would hold them, and every file operation of the process would wait behind them.
   */
  readonly resolveHost?: HostResolver;
  readonly maxBytes?: number;
  /**
   * Connect to internal addresses (loopback, private, link-local, CGNAT, ULA, multicast, unspecified: `internalRange`)
   * as well. Default false: the URL comes from a DNS record anyone can publish for a domain of their own, and must
   * not make the gateway connect into its own network. Addresses pinned in `hosts` are always allowed.
   */
  readonly allowPrivate?: boolean;
}

/** Address ranges a bundle URL named by someone else must not reach. */
const INTERNAL_RANGES: readonly [string, number, 'ipv4' | 'ipv6', string][] = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'shared (CGNAT)'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.0.0.0', 24, 'ipv4', 'IETF protocol assignments'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['198.18.0.0', 15, 'ipv4', 'benchmarking'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['fc00::', 7, 'ipv6', 'unique local'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'site-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];
const INTERNAL = INTERNAL_RANGES.map(([net, prefix, type, name]) => {
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return { list, type, name };
});

/** The kind of internal range `address` lies in ("loopback", "private", …), or undefined for a public address. */
export function internalRange(address: string): string | undefined {
  const a = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(a);
  if (family === 0) return 'not an IP address';
  if (family === 4) return INTERNAL.find((r) => r.type === 'ipv4' && r.list.check(a, 'ipv4'))?.name;
  const own = INTERNAL.find((r) => r.type === 'ipv6' && r.list.check(a, 'ipv6'))?.name;
  if (own) return own;
  const g = ipv6Groups(a);
  const zero = (from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);
  // the local-use NAT64 prefix (64:ff9b:1::/48) is some network's own translator, wherever it puts the IPv4 address
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return 'local-use NAT64';
  // addresses that reach the IPv4 address in their last 32 bits: IPv4-mapped (::ffff:0:0/96), IPv4-translated
  // (::ffff:0:0:0/96), well-known NAT64 (64:ff9b::/96) and IPv4-compatible (::/96; :: and ::1 are answered above)
  const carries =
    (zero(0, 5) && g[5] === 0xffff) ||
    (zero(0, 4) && g[4] === 0xffff && g[5] === 0) ||
    (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) ||
    zero(0, 6);
  if (!carries) return undefined;
  const v4 = [g[6]! >> 8, g[6]! & 255, g[7]! >> 8, g[7]! & 255].join('.');
  return INTERNAL.find((r) => r.type === 'ipv4' && r.list.check(v4, 'ipv4'))?.name;
}

/** The eight 16-bit groups of a valid IPv6 address (a dotted IPv4 tail included). */
function ipv6Groups(address: string): number[] {
  let a = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (dotted) {
    const [b0, b1, b2, b3] = dotted.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, dotted.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = a.split('::') as [string, string | undefined];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((x) => parseInt(x, 16)));
  const h = parse(head);
  if (tail === undefined) return h;
  const t = parse(tail);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

function refusedAddress(hostname: string, address: string, range: string): Error {
  return Object.assign(new Error(`"${hostname}" resolves to ${address}, a ${range} address (not allowed for a bundle URL)`), {
    code: 'EADDRNOTALLOWED',
    hostname,
  });
}

/** The addresses of a host name, as `dns.lookup` with `all: true` gives them. */
export type HostResolver = (hostname: string) => Promise<{ address: string; family: 4 | 6 }[]>;

/** A and AAAA records of a host name through `dns` (IPv4 first); NXDOMAIN for both is ENOTFOUND. */
export function hostResolverOf(dns: Resolver): HostResolver {
  return async (hostname) => {
    if (isIP(hostname)) return [{ address: hostname, family: isIP(hostname) as 4 | 6 }];
    const [v4, v6] = await Promise.allSettled([dns.resolve4(hostname), dns.resolve6(hostname)]);
    const out = [
      ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 as const })) : []),
      ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 as const })) : []),
    ];
    if (out.length > 0) return out;
    // Neither: the IPv4 answer's error says why (ENOTFOUND, ENODATA, a time-out).
    throw v4.status === 'rejected' ? v4.reason : new Error(`No address for "${hostname}"`);
  };
}

/** A c-ares resolver (no thread of libuv's pool) of the system's DNS servers, each query bounded by `timeoutMs` (at most 5 s a try, 2 tries). */
export function boundedResolver(timeoutMs: number): Resolver {
  return new Resolver({ timeout: Math.max(1, Math.min(timeoutMs, 5000)), tries: 2 });
}

/** A host resolver of the system's DNS servers, each query bounded by `timeoutMs`. */
function systemHostResolver(timeoutMs: number): HostResolver {
  return hostResolverOf(boundedResolver(timeoutMs));
}

/**
 * A `lookup` for sockets that connect to a host name someone else chose (a peer's MX, for the EHLO probe): the
 * system's DNS servers through c-ares, each query bounded by `timeoutMs`, never getaddrinfo on libuv's shared
 * threads (as for the bundle fetch above). Any address is allowed: the probe goes where mail would go.
 */
export function boundedLookup(timeoutMs: number): LookupFunction {
  return fixedLookup(new Map(), systemHostResolver(timeoutMs), true);
}

function fixedLookup(hosts: ReadonlyMap<string, string>, resolveHost: HostResolver, allowPrivate: boolean): LookupFunction {
  const fn = (hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void): void => {
    const address = hosts.get(hostname.toLowerCase());
    if (address === undefined) {
      // Not pinned: the directory's resolver; only public addresses unless allowed (the socket connects to what this returns)
      resolveHost(hostname).then(
        (found) => {
          const all = allowPrivate ? found : found.filter((a) => internalRange(a.address) === undefined);
          const first = all[0];
          const refused = found[0];
          if (!first && refused) callback(refusedAddress(hostname, refused.address, internalRange(refused.address) as string));
          else if (!first) callback(Object.assign(new Error(`No address for "${hostname}"`), { code: 'ENOTFOUND', hostname }));
          else if (options.all) callback(null, all);
          else callback(null, first.address, first.family);
        },
        (err: unknown) => callback(err),
      );
      return;
    }
    const family = address.includes(':') ? 6 : 4;
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
  return fn as unknown as LookupFunction;
}

/** GETs `url` and returns the body as text. Throws FetchError. */
export function fetchBundleText(url: string, opts: FetchOptions): Promise<string> {
  const maxBytes = opts.maxBytes ?? MAX_BUNDLE_BYTES;
  return new Promise<string>((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new FetchError(`Cannot fetch "${url}": not a URL`));
      return;
    }
    let settled = false;
    const fail = (message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(new FetchError(message));
    };
    const hosts = opts.hosts ?? new Map<string, string>();
    const allowPrivate = opts.allowPrivate === true;
    const lookup = fixedLookup(hosts, opts.resolveHost ?? systemHostResolver(opts.timeoutMs), allowPrivate);
    // an address in the URL itself is not looked up: checked here, before any connection
    const literal = u.hostname.replace(/^\[|\]$/g, '');
    const literalRange = !allowPrivate && isIP(literal) ? internalRange(literal) : undefined;
    if (literalRange) {
      reject(new FetchError(`Cannot fetch "${url}": ${literal} is a ${literalRange} address (not allowed for a bundle URL)`));
      return;
    }
    const req = request(
      {
        protocol: 'https:',
        host: u.hostname,
        port: u.port || 443,
        path: `${u.pathname}${u.search}`,
        method: 'GET',
        headers: { accept: 'application/json' },
        agent: false,
        ...(opts.ca ? { ca: [...opts.ca] } : {}),
        lookup,
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          fail(`Cannot fetch "${url}": the server answered ${res.statusCode}`);
          return;
        }
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) fail(`Cannot fetch "${url}": the bundle is larger than ${maxBytes} bytes`);
          else parts.push(c);
        });
        res.on('error', (err) => fail(`Cannot fetch "${url}": ${err.message}`));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(Buffer.concat(parts).toString('utf8'));
        });
      },
    );
    // and what the socket did connect to, in case anything reached it but the lookup above
    const pinned = new Set(hosts.values());
    req.on('socket', (socket: Socket) =>
      socket.once('connect', () => {
        const range =
          allowPrivate || !socket.remoteAddress || pinned.has(socket.remoteAddress) ? undefined : internalRange(socket.remoteAddress);
        if (range) fail(`Cannot fetch "${url}": connected to ${socket.remoteAddress}, a ${range} address (not allowed for a bundle URL)`);
      }),
    );
    const timer = setTimeout(() => fail(`Cannot fetch "${url}": no answer within ${opts.timeoutMs} ms`), opts.timeoutMs);
    req.on('error', (err) => fail(`Cannot fetch "${url}": ${err.message}`));
    req.end();
  });
}
