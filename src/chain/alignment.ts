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

/** True when `from` is `sealer` or one of its subdomains (the DNS and X.509 name-constraint sense). */
export function withinDomain(from: string, sealer: string): boolean {
  return from === sealer || from.endsWith(`.${sealer}`);
}

/**
 * Whether seal i=1's domain speaks for the From domain. A subdomain of the
 * sealer is covered (its sealing certificate's org CA is name-constrained to
 * the sealer's domain, which includes subdomains) unless the subdomain
 * publishes an SSMAX bundle of its own: then that organisation is the
 * authority. `ownBundle(domain)` says whether `domain` has its own bundle
 * (it throws while that cannot be known).
 */
export async function aligned(fromDomain: string, sealer: string, ownBundle: (domain: string) => Promise<boolean>): Promise<boolean> {
  if (fromDomain === sealer) return true;
  if (!withinDomain(fromDomain, sealer)) return false;
  // walk from the From domain up to (not including) the sealer: any own bundle on the way wins
  for (let d = fromDomain; d !== sealer; d = d.slice(d.indexOf('.') + 1)) if (await ownBundle(d)) return false;
  return true;
}
