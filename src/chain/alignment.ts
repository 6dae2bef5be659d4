/**
 * Sender-domain alignment (docs/security.md, "Impersonation"): which
 * organisation may make seal i=1 for a From domain. The rule is the same at
 * the receiving gateway (src/gateway/binding.ts) and in `ssmax user open`.
 *
 * The sealer's domain `d=` equals its sealing certificate's domain, which
 * the org CA's name constraints cover (src/pki/name-constraints.ts). The From
 * domain is aligned when it is `d=` itself, or a subdomain of it that does
 * not publish an SSMAX bundle of its own (a subdomain with its own bundle is
 * its own organisation, and only it speaks for it).
 */
import { domainToASCII } from 'node:url';

/**
 * The most parent domains `organisationOf` asks about for one domain: those
 * nearest the root, where an organisation's own domain is ("b.example",
 * "b.co.uk"). So a domain of many labels (hostile input: up to 127) costs at
 * most this many lookups, and labels added below an organisation's domain do
 * not take it out of reach; only an organisation whose own domain has more
 * labels than this plus one (the parents asked about have 2 to 9 labels) is
 * not found above its subdomains.
 */
export const MAX_PARENT_LOOKUPS = 8;

/** The parent domains of `domain` of at least two labels, nearest first ("a.b.example": "b.example"). */
export function parentsOf(domain: string): string[] {
  const out: string[] = [];
  for (let at = domain.indexOf('.'); at >= 0; at = domain.indexOf('.', at + 1)) {
    const parent = domain.slice(at + 1);
    if (parent.includes('.')) out.push(parent);
  }
  return out;
}

/**
 * Whether `domain` is spelt the one way every comparison of the gateway and the
 * chain expects: labels separated by single dots, none empty, no trailing dot
 * (a fully qualified "b.example." names b.example, but would be another string
 * to every check). Case and internationalised spellings are settled by
 * canonicalDomain.
 */
function wellFormedDomain(domain: string): boolean {
  return domain.length > 0 && domain.split('.').every((label) => label.length > 0);
}

/** The longest domain name (RFC 1035: 253 characters in its ASCII form); a longer Unicode spelling is refused before it is mapped. */
const MAX_DOMAIN_CHARS = 253;

/**
 * The one spelling of a domain that every comparison and directory lookup
 * uses: lowercase ASCII, an internationalised name (IDN) in its ASCII form
 * (A-labels, "xn--..."), mapped as URLs map host names (UTS #46, Node's
 * `url.domainToASCII`). So "bücher.example", "BÜCHER.example" and
 * "xn--bcher-kva.example" are one name, and so are "b.example" and spellings
 * a mail client shows the same way: full-width letters ("ｂ.example"), an
 * ideographic full stop, a soft hyphen inside a label. A message's header is
 * read as UTF-8 (mailsplit), so an unencoded "bücher.example" in a From field
 * arrives as Unicode and must meet the directory and this organisation's own
 * domains in the form they are registered in.
 *
 * '' when `domain` is no domain name: empty, a Unicode spelling longer than
 * 253 characters (not mapped at all), a name the mapping refuses (a forbidden character, a zero-width joiner in the
 * wrong place, an A-label that does not decode), a Unicode spelling with a
 * percent sign (the mapping would decode "%2e" into a dot), or, after mapping,
 * an empty label or a trailing dot (wellFormedDomain). Every caller refuses ''
 * or lets it match nothing. An ASCII spelling is only lowercased (the mapping
 * is for names that are not ASCII yet), and its A-labels must decode. Time is linear in the length of
 * `domain` (bounded above).
 */
export function canonicalDomain(domain: string): string {
  let ascii = domain.toLowerCase();
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(domain)) ascii = domain.includes('%') || domain.length > MAX_DOMAIN_CHARS ? '' : domainToASCII(domain);
  // an A-label a mail client would decode must decode: "xn--zz" is no label
  else if (/(^|\.)xn--/.test(ascii) && domainToASCII(ascii) !== ascii) ascii = '';
  return wellFormedDomain(ascii) ? ascii : '';
}

/** True when `from` is `sealer` or one of its subdomains (the DNS and X.509 name-constraint sense), each in its one spelling (canonicalDomain). */
export function withinDomain(from: string, sealer: string): boolean {
  // a trailing dot, an empty label or a name that maps to none is never within anything (fail closed; the gateway refuses such a From)
  const f = canonicalDomain(from);
  const s = canonicalDomain(sealer);
  if (!f || !s) return false;
  return f === s || f.endsWith(`.${s}`);
}

/**
 * Whether seal i=1's domain speaks for the From domain. A subdomain of the
 * sealer is covered (its sealing certificate's org CA is name-constrained to
 * the sealer's domain, which includes subdomains) unless the subdomain
 * publishes an SSMAX bundle of its own: then that organisation is the
 * authority. `ownBundle(domain)` says whether `domain` has its own bundle
 * (it throws while that cannot be known).
 */
export async function aligned(fromSpelt: string, sealerSpelt: string, ownBundle: (domain: string) => Promise<boolean>): Promise<boolean> {
  if (!withinDomain(fromSpelt, sealerSpelt)) return false;
  const fromDomain = canonicalDomain(fromSpelt);
  const sealer = canonicalDomain(sealerSpelt);
  if (fromDomain === sealer) return true;
  // walk from the From domain up to (not including) the sealer: any own bundle on the way wins. As in
  // organisationOf, only the MAX_PARENT_LOOKUPS nearest the root are asked about (and the From domain itself):
  // a domain of many labels under the sealer costs a bounded number of lookups
  const parents = parentsOf(fromDomain);
  const between = parents.slice(0, parents.indexOf(sealer));
  for (const d of [fromDomain, ...between.slice(Math.max(0, between.length - MAX_PARENT_LOOKUPS))]) {
    if (await ownBundle(d)) return false;
  }
  return true;
}

/**
 * The SSMAX organisation that speaks for mail from `domain` by the same rule
 * as `aligned`: `domain` itself when `isOrganisation` says so (it publishes a
 * bundle, or it is one of this organisation's own domains), else the nearest
 * parent that is one (a subdomain without a bundle of its own belongs to its
 * parent's organisation); undefined when none is (ordinary Internet mail).
 * Parents are asked about nearest first, only the MAX_PARENT_LOOKUPS nearest
 * the root. `isOrganisation` throws while that cannot be known.
 */
export async function organisationOf(spelt: string, isOrganisation: (domain: string) => Promise<boolean>): Promise<string | undefined> {
  const domain = canonicalDomain(spelt);
  // no domain name is no ordinary Internet mail either: the caller refuses it before asking (fail closed)
  if (!domain) throw new RangeError(`organisationOf: "${spelt.slice(0, 80)}" is not a domain name`);
  if (await isOrganisation(domain)) return domain;
  const parents = parentsOf(domain);
  for (const d of parents.slice(Math.max(0, parents.length - MAX_PARENT_LOOKUPS))) if (await isOrganisation(d)) return d;
  return undefined;
}
