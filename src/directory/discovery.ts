/**
 * Discovery of a peer's bundle location (docs/protocol.md, "Key exchange between
 * domains"; docs/directory.md): a static map from configuration first, then
 * the DNS TXT record `_ssmax.<domain>`:
 *
 *   v=ssmax1; u=https://ssmax.b.example/.well-known/ssmax/bundle; id=<bundle id>
 *
 * Tags are `name=value`, separated by `;`, whitespace around them ignored,
 * names case-insensitive, unknown tags ignored (so the format can grow). `v`
 * must come first and be `ssmax1`; `u` is required and must be an https URL;
 * `id` is optional: when it differs from the id the record had when the
 * cached bundle was fetched, the cache is refreshed at once. A TXT record split into several strings is
 * joined without separators (RFC 7208 §3.3 does the same for SPF).
 *
 * Guarantees: the resolver is injected (tests give a declarative zone);
 * "no such record" (NXDOMAIN, NODATA, no `v=ssmax1` record) is told apart from
 * a resolver failure (timeout, SERVFAIL), because the first is a final answer
 * and the second is temporary.
 */

/** The shape of `node:dns/promises` `resolveTxt`. */
export type TxtResolver = (name: string) => Promise<string[][]>;

export interface BundleLocation {
  readonly url: string;
  /** The id the TXT record announces, when it carries one. */
  readonly id?: string;
  readonly source: 'static' | 'dns';
}

export type DiscoveryResult =
  | { readonly status: 'found'; readonly location: BundleLocation }
  | { readonly status: 'none'; readonly message: string }
  | { readonly status: 'unavailable'; readonly message: string }
  | { readonly status: 'invalid'; readonly message: string };

/** DNS error codes that mean "there is no such record": a definite answer. */
const NO_RECORD_CODES = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'NODATA', 'ENONAME']);

export const TXT_PREFIX = '_ssmax';
export const TXT_VERSION = 'ssmax1';

export function txtName(domain: string): string {
  return `${TXT_PREFIX}.${domain}`;
}

/** Parses one `v=ssmax1; …` record; returns the location, or a problem string. Undefined when it is not an SSMAX record at all. */
export function parseTxtRecord(text: string): BundleLocation | string | undefined {
  const tags = text
    .split(';')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const first = tags[0];
  if (!first || !/^v\s*=\s*ssmax\d+$/i.test(first)) return undefined;
  const fields = new Map<string, string>();
  for (const tag of tags) {
    const eq = tag.indexOf('=');
    if (eq <= 0) return `tag "${tag}" is not name=value`;
    const name = tag.slice(0, eq).trim().toLowerCase();
    if (fields.has(name)) return `tag "${name}" appears twice`;
    fields.set(name, tag.slice(eq + 1).trim());
  }
  if (fields.get('v')?.toLowerCase() !== TXT_VERSION) return `version "${fields.get('v') ?? ''}" is not ${TXT_VERSION}`;
  const url = fields.get('u');
  if (!url) return 'the "u" tag (bundle URL) is missing';
  const problem = urlProblem(url);
  if (problem) return problem;
  const id = fields.get('id');
  if (id !== undefined && !/^[A-Za-z0-9._-]{8,128}$/.test(id)) return `id "${id}" is not 8-128 letters, digits, ".", "_" or "-"`;
  return { url, ...(id !== undefined ? { id } : {}), source: 'dns' };
}

/** Only https URLs without credentials: a bundle is public, and TLS keeps a network attacker from withholding it silently. */
export function urlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `URL "${url}" cannot be parsed`;
  }
  if (u.protocol !== 'https:') return `URL "${url}" is not https`;
  if (u.username !== '' || u.password !== '') return `URL "${url}" carries credentials`;
  return undefined;
}

/** Finds where `domain` publishes its bundle: static map first, then DNS. Never throws. */
export async function discover(
  domain: string,
  staticPeers: ReadonlyMap<string, string>,
  resolver: TxtResolver | undefined,
): Promise<DiscoveryResult> {
  const fixed = staticPeers.get(domain);
  if (fixed !== undefined) return { status: 'found', location: { url: fixed, source: 'static' } };
  if (!resolver) return { status: 'none', message: `No SSMAX bundle for "${domain}": not in the static peer map and DNS discovery is off` };
  const name = txtName(domain);
  let records: string[][];
  try {
    records = await resolver(name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code ?? '';
    if (NO_RECORD_CODES.has(code))
      return { status: 'none', message: `No SSMAX bundle for "${domain}": no TXT record at "${name}" (${code})` };
    return { status: 'unavailable', message: `Cannot resolve TXT "${name}": ${(err as Error)?.message ?? String(err)}` };
  }
  const found: BundleLocation[] = [];
  for (const chunks of records) {
    const parsed = parseTxtRecord(chunks.join(''));
    if (parsed === undefined) continue;
    if (typeof parsed === 'string') return { status: 'invalid', message: `TXT record at "${name}" is invalid: ${parsed}` };
    found.push(parsed);
  }
  const [location, ...more] = found;
  if (!location) return { status: 'none', message: `No SSMAX bundle for "${domain}": no ${TXT_VERSION} TXT record at "${name}"` };
  if (more.length > 0)
    return { status: 'invalid', message: `TXT records at "${name}" are ambiguous: ${found.length} ${TXT_VERSION} records` };
  return { status: 'found', location };
}
