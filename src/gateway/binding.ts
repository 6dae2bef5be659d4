/**
 * What an arriving sealed message must prove beyond valid signatures
 * (docs/security.md): who sent it (sender-domain alignment), to whom
 * (recipient binding), and when (freshness); and its identity for replay
 * detection, keyed on what the newest seal signs.
 *
 *  - Alignment: seal i=1 must be by the organisation authoritative for the
 *    From domain: the same domain, or a parent of it that the From domain
 *    does not override with an SSMAX bundle of its own. A seal i>1 by an
 *    organisation other than seal i=1's (a list or forwarder re-sealing) is
 *    accepted only from a domain named in [chain] resealers — never implied.
 *  - Recipient binding: the newest seal's `rc=` and the SSMAX-Recipients
 *    field must bind every envelope recipient (src/chain/recipients.ts).
 *  - Freshness: the newest seal is at most [chain] max_seal_age_seconds old,
 *    seal times never decrease along the chain, and the newest seal was made
 *    at most that long after seal i=1 (every hop together holds mail no longer
 *    than a queue lifetime, moderation included), so that a later hop cannot
 *    re-seal an earlier seal it kept however long, nor backdate its seals to
 *    add hop after hop.
 *  - Replay identity: SHA-256 of the newest seal's signing input (every
 *    earlier seal and its own tags with hh= and bh=), so that any change of
 *    unprotected headers or of the envelope keeps it, and a different
 *    signature encoding of the same seal (ECDSA's (r, n−s)) too.
 */
import { createHash } from 'node:crypto';
import { MAX_PARENT_LOOKUPS, aligned, canonicalDomain, organisationOf, parentsOf, withinDomain } from '../chain/alignment';
import { fieldValue } from '../chain/canonicalize';
import { RecipientsError, checkRecipients, parseRecipients, recipientFieldsIn } from '../chain/recipients';
import { SEAL_HEADER, parseSeal, sealSigningInput } from '../chain/tags';
import type { ChainVerification } from '../chain/verify-chain';
import { DirectoryError } from '../directory/directory';
import type { GatewayDeps } from './deps';
import { domainOf } from '../mail/message-checks';
import { GatewayError } from '../mail/replies';
import { listResealAccepted } from '../lists/chain';
import { isField, splitHeaderBlock } from '../mail/header-block';

/** Whether the directory holds a bundle for `domain` (none: false; unreachable: 4xx). */
async function hasBundle(deps: GatewayDeps, domain: string): Promise<boolean> {
  try {
    const entry = await deps.directory.lookup(domain);
    return entry.domain === domain;
  } catch (err) {
    if (err instanceof DirectoryError && err.code === 'none') return false;
    // the domain only: the reason (a URL, an address, what answered there) is the directory's log's, not the sender's
    throw new GatewayError('bundleUnavailable', domain);
  }
}

/** Whether `organisation` (an answer of claimedOrganisation) is this one: its domain or one of its local domains. */
export function ownOrganisation(deps: Pick<GatewayDeps, 'config'>, organisation: string | undefined): boolean {
  return organisation !== undefined && (organisation === deps.config.domain || deps.config.localDomains.includes(organisation));
}

/**
 * The SSMAX organisation whose mail an unsealed message claims to be, by its
 * From domain (the rule of sender-domain alignment, src/chain/alignment.ts):
 * one of this organisation's own domains (no lookup), else the From domain
 * itself or its nearest parent that publishes a bundle (a subdomain of an own
 * domain included: it may publish a bundle of its own) (organisationOf, a bounded number of lookups); undefined
 * for ordinary Internet mail. 4xx while a bundle cannot be looked up. Every
 * domain is compared and looked up in its one spelling (canonicalDomain: an
 * internationalised From domain in its ASCII form).
 */
export async function claimedOrganisation(deps: GatewayDeps, spelt: string): Promise<string | undefined> {
  // one spelling for every comparison and lookup (an internationalised name in its ASCII form): canonicalDomain
  const fromDomain = canonicalDomain(spelt);
  if (!fromDomain) throw new GatewayError('badFormat', `From domain "${spelt.slice(0, 80)}" is not a domain name`);
  const own = [deps.config.domain, ...deps.config.localDomains].find((d) => withinDomain(fromDomain, d));
  if (own === undefined) return organisationOf(fromDomain, (d) => hasBundle(deps, d));
  // one of its own domains: no lookup. A subdomain of one (the MTA's mta.a.example, a department) is this
  // organisation's unless a name between it and the own domain publishes a bundle of its own: only those are looked
  // up (the nearest own ones, at most MAX_PARENT_LOOKUPS), and one that cannot be looked up now counts as ours
  const between = [fromDomain, ...parentsOf(fromDomain)].filter((d) => d !== own && withinDomain(d, own));
  for (const d of between.slice(-MAX_PARENT_LOOKUPS)) {
    let published: boolean;
    try {
      published = await hasBundle(deps, d);
    } catch {
      return own;
    }
    if (published) return d;
  }
  return own;
}

/**
 * Whether a failure report about an arrival may go to its envelope sender `from`, which is only what the sending
 * host claimed: to a sender the message itself vouches for. Sealed, the sender's domain must be of the organisation
 * that sealed i=1 (its seal verified at this attempt, or for the retry backstop at the attempt that delivered
 * copies: the same identity, so the same d=); unsealed, of no SSMAX organisation (an ordinary bounce, sent as it
 * is). Otherwise the report, sealed in this organisation's name and quoting the arrival's header, would go to any
 * address a stranger named.
 */
export async function reportableSender(deps: GatewayDeps, from: string, message: Buffer): Promise<boolean> {
  const domain = canonicalDomain(domainOf(from));
  if (!domain) return false;
  let first: ReturnType<typeof parseSeal> | undefined;
  try {
    first = sealsOf(message)[0];
  } catch {
    return false; // seals that do not parse vouch for no one
  }
  if (first) return aligned(domain, first.domain, (d) => hasBundle(deps, d));
  return (await claimedOrganisation(deps, domain)) === undefined;
}

/** The SSMAX-Seal fields of the root header block, parsed, in instance order. */
function sealsOf(message: Buffer): ReturnType<typeof parseSeal>[] {
  const seals = splitHeaderBlock(message)
    .fields.filter((f) => isField(f, SEAL_HEADER))
    .map((f) => parseSeal(fieldValue({ name: SEAL_HEADER.toLowerCase(), raw: f })));
  return seals.sort((a, b) => a.instance - b.instance);
}

/** The replay identity of a sealed message: SHA-256 (hex) of what its newest seal signs. */
export function sealIdentity(message: Buffer): string {
  const seals = sealsOf(message);
  const newest = seals[seals.length - 1];
  if (!newest) throw new GatewayError('chainFailed', 'no seal');
  // hex only (it may end up in a Message-ID); domain-separated from the byte identity of unsealed arrivals
  return createHash('sha256')
    .update('SSMAX-seal-identity\0')
    .update(sealSigningInput(seals.slice(0, -1), newest.tags))
    .digest('hex');
}

/**
 * Checks an arriving chain (result pass) for alignment (the From domain, and
 * the Sender's when the message has one: `sender` as senderOf gives it), freshness and
 * recipient binding of `rcpts`; throws the 5xx reply (4xx while a bundle
 * cannot be fetched). Returns the replay identity. `at`: the time freshness is
 * judged at instead of now (a released arrival: when it was held; inspection.ts
 * releaseTime).
 */
export async function checkArrival(
  deps: GatewayDeps,
  message: Buffer,
  from: string,
  chain: ChainVerification,
  rcpts: readonly string[],
  at?: Date,
  sender?: string,
): Promise<string> {
  const first = chain.instances[0];
  const newest = chain.instances[chain.instances.length - 1];
  if (!first || !newest) throw new GatewayError('chainFailed', 'no seal');
  const fromDomain = domainOf(from);
  if (!(await aligned(fromDomain, first.domain, (d) => hasBundle(deps, d)))) {
    throw new GatewayError('senderNotAligned', `From domain ${fromDomain}, seal i=1 by ${first.domain}`);
  }
  // a Sender field speaks for the organisation too (a client shows "Sender on behalf of From"): of the same one
  if (sender === '') throw new GatewayError('senderNotAligned', `the Sender field holds no single address, seal i=1 by ${first.domain}`);
  if (sender !== undefined && !(await aligned(domainOf(sender), first.domain, (d) => hasBundle(deps, d))))
    throw new GatewayError('senderNotAligned', `Sender domain ${domainOf(sender)}, seal i=1 by ${first.domain}`);
  for (const r of chain.instances.slice(1)) {
    // a list's re-distribution seal (ls= of its own domain) is accepted explicitly: src/lists/chain.ts
    if (r.domain !== first.domain && !deps.config.chain.resealers.includes(r.domain) && !listResealAccepted(r, message)) {
      throw new GatewayError(
        'senderNotAligned',
        `seal i=${r.instance} by ${r.domain} re-seals mail of ${first.domain} (From domain ${fromDomain}) and ${r.domain} is not an allowed resealer`,
      );
    }
  }
  const ageMs = (at ?? deps.clock()).getTime() - newest.time * 1000;
  if (ageMs > deps.config.chain.maxSealAgeMs) {
    throw new GatewayError(
      'sealTooOld',
      `seal i=${newest.instance} by ${newest.domain} is ${Math.floor(ageMs / 1000)} s old, the limit is ${deps.config.chain.maxSealAgeMs / 1000} s`,
    );
  }
  for (const [index, r] of chain.instances.entries()) {
    const before = chain.instances[index - 1];
    if (!before) continue;
    // a seal is never older than the one it re-seals: a backdated seal would let hops add up beyond the limit
    if (r.time < before.time)
      throw new GatewayError(
        'sealHopTooLong',
        `seal i=${r.instance} by ${r.domain} is dated ${before.time - r.time} s before seal i=${before.instance} by ${before.domain}`,
      );
  }
  // the whole chain, seal i=1 to the newest, within the limit: a list cannot re-seal an old seal hop by hop
  const spanMs = (newest.time - first.time) * 1000;
  if (spanMs > deps.config.chain.maxSealAgeMs) {
    throw new GatewayError(
      'sealHopTooLong',
      `seal i=${newest.instance} by ${newest.domain} was made ${Math.floor(spanMs / 1000)} s after seal i=${first.instance} by ${first.domain}, the limit is ${deps.config.chain.maxSealAgeMs / 1000} s`,
    );
  }
  if (!newest.recipientCommitment)
    throw new GatewayError('recipientNotBound', `seal i=${newest.instance} by ${newest.domain} binds no recipients`);
  const fields = recipientFieldsIn(message);
  if (fields.length !== 1) throw new GatewayError('recipientNotBound', `expected one SSMAX-Recipients field, found ${fields.length}`);
  let unbound: string[];
  try {
    ({ unbound } = checkRecipients(parseRecipients(fields[0]!), newest.recipientCommitment, rcpts));
  } catch (err) {
    if (err instanceof RecipientsError) throw new GatewayError('recipientNotBound', err.message);
    throw err;
  }
  if (unbound.length > 0)
    throw new GatewayError('recipientNotBound', `${unbound.join(', ')} not bound by seal i=${newest.instance} of ${newest.domain}`);
  return sealIdentity(message);
}
