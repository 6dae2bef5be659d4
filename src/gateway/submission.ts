/**
 * Submission at the sending organisation (docs/protocol.md, "Encryption chain", outbound at org
 * A"): verify the user signature against the user's certificate (signer =
 * the single From) and remove it (SSMAX §2.2: the user's certificate is not
 * shown outside); per recipient domain apply the encryption policy; per peer
 * domain make one copy, re-encrypted through keyd to that domain's org key
 * (SSMAX client) or encrypted by the gateway (transparent mode: a plaintext
 * submission); seal i=1 with the tracking token. Copies for local recipients
 * are made as for an arrival (local-copies.ts), sealed as this organisation's own.
 */
import { createPublicKey } from 'node:crypto';
import { removeUserSignature } from '../chain/message-fields';
import { USER_SIGNATURE_HEADER, type Verdict } from '../chain/tags';
import { verifyUser } from '../chain/user-signature';
import { type Capsule, systemRng } from '../crypto';
import type { PeerEntry } from '../directory/peer-entry';
import { collect, encryptMessage, listCapsulesIn, replaceCapsules } from '../envelope';
import { parseCertificate } from '../pki/certificate';
import { passingRefusal, validateCertificate } from '../pki/validate';
import { policyFor } from './config';
import type { Copy, GatewayDeps, HeldPost, HopResult, Origin, Unsendable } from './deps';
import { canonicalAddress, capsuleFor, capsulesOf, checkMessage, domainOf, senderOf } from '../mail/message-checks';
import { completeHeaders } from './completion';
import {
  heldCapsules,
  inspectSubmission,
  releasedCapsules,
  releasedKeyGone,
  releasedPlainSubmission,
  withInspectionResults,
} from './inspection';
import { retryIdentity } from './delivery';
import { GatewayError, type ReplyName } from '../mail/replies';
import { checkUnsealed } from './chain-check';
import { type RetiredUse, noteRetired } from './key-exchange';
import { checkCopyBytes, localCopies } from './local-copies';
import { peerBundle, peerRefusedForGood } from './peer-bundle';
import { addSeal } from './sealing';
import { claimedOrganisation, ownOrganisation } from './binding';
import { withoutField } from '../mail/header-block';

export type Mode = 'ssmax' | 'transparent';

/**
 * Who authenticated the submission: the SMTP AUTH login at this gateway, or
 * the envelope sender a trusted relay (the organisation's own MTA, which
 * authenticated the user) vouches for. Recorded in the tracking token beside
 * the From.
 */
export interface Submitter {
  readonly id: string;
  readonly via: 'smtp-auth' | 'trusted-relay';
}

/**
 * The sender binding of a submission authenticated at this gateway (SMTP
 * AUTH, plain and SSMAX clients alike): the login is the user's address, and
 * the From the seal covers — and the Sender field when there is one, and the
 * envelope sender unless it is the null sender — must be that address
 * (compared without regard to case), else 550 5.7.1. keyd knows no aliases: a user sends as the one address
 * registered. A trusted relay (the organisation's own MTA) authenticated the
 * user itself and binds senders to its logins there (docs/postfix.md); its
 * submissions cannot be checked here. Without a submitter (no
 * authentication) nothing is relayed at all (the RCPT hook).
 */
export function checkSenderBinding(
  submitter: Submitter | undefined,
  from: string,
  envelopeFrom: string | undefined,
  sender?: string,
): void {
  if (submitter?.via !== 'smtp-auth') return;
  // every address in its one spelling (canonicalAddress: an internationalised domain in its ASCII form)
  const login = canonicalAddress(submitter.id) ?? submitter.id.toLowerCase();
  if (from.toLowerCase() !== login) throw new GatewayError('senderNotLogin', `From ${from}, logged in as ${submitter.id}`);
  // the Sender field names who sent the message on the author's behalf: sealed too, so it is the login's as well
  if (sender !== undefined && sender.toLowerCase() !== login)
    throw new GatewayError('senderNotLogin', `Sender ${sender || '(not one address)'}, logged in as ${submitter.id}`);
  if (envelopeFrom !== undefined && envelopeFrom !== '' && envelopeFrom.toLowerCase() !== login)
    throw new GatewayError('senderNotLogin', `envelope sender ${envelopeFrom}, logged in as ${submitter.id}`);
}

/**
 * The Sender field of a trusted relay's submission (the relay binds the envelope sender to its logins, keyd the From
 * to a registered user): clients show it as "Sender on behalf of From" and this organisation's seal covers it, so it
 * must be an address this organisation speaks for, as `ssmax user open` requires (aligned with seal i=1): one of its
 * domains or a subdomain without a bundle of its own (claimedOrganisation), else 550 5.7.1.
 */
async function checkRelayedSender(deps: GatewayDeps, sender: string): Promise<void> {
  const claimed = sender === '' ? undefined : await claimedOrganisation(deps, domainOf(sender));
  if (!ownOrganisation(deps, claimed)) throw new GatewayError('senderNotOwn', `Sender ${sender || '(not one address)'}`);
}

/**
 * The peer's bundle, or the policy decision when there is none (peer-bundle.ts reads the directory's answer).
 * A bundle refused for good (its organisation's CA revoked by the root, or expired) is `550 5.7.5` naming the
 * domain and the reason, unless [policy] says `none` for the domain (mail to it may go in clear); any other
 * refusal, and a bundle that cannot be had now, is `451 4.7.5` naming the domain only (the reason is in the
 * directory's log).
 */
export async function peerFor(deps: GatewayDeps, domain: string): Promise<PeerEntry | 'plain'> {
  const found = await peerBundle(deps, domain);
  if (found.status === 'found') return found.peer;
  const policy = policyFor(deps.config, domain);
  if (found.status === 'none') {
    if (policy === 'require') throw new GatewayError('encryptionRequired', domain);
    return 'plain';
  }
  if (policy === 'none') return 'plain';
  if (found.status === 'refused' && found.final) throw peerRefusedForGood(domain, found.final);
  throw new GatewayError('bundleUnavailable', domain);
}

/**
 * Checks the user signature of a submission against the sender's current certificate and
 * removes it; refuses a signature that does not verify, naming a revoked or expired certificate as such.
 * A submission happens now: the certificate is judged at the gateway's clock, never at the signer's own
 * `t=` (a backdated `t=` would make an expired or revoked certificate pass), and a `t=` older than
 * [chain] max_seal_age_seconds is refused as a seal that old would be.
 */
export async function verifySubmitter(deps: GatewayDeps, message: Buffer): Promise<Buffer> {
  const now = deps.clock();
  // why the lookup found no certificate, when it is the certificate's revocation or expiry (the lookup answers
  // only "none" to verifyUser, and a throwing lookup would be a temporary failure)
  let revoked: { revokedAt: Date; reason: string } | undefined;
  let expired: Date | undefined;
  let passing: string | undefined;
  // a CRL file of [pki] crls that cannot be read: the check fails for now with its own reply, not as keyd's
  let crlFault: string | undefined;
  const result = await verifyUser(message, {
    now: () => now.getTime(),
    maxAgeSeconds: Math.floor(deps.config.chain.maxSealAgeMs / 1000),
    cpuBudgetMs: deps.config.cpuBudgetMs,
    lookup: async (req) => {
      const user = await deps.keyd.user(req.address ?? '', true); // the current certificate: a renewed one must verify at once
      if (!user?.signingCertificate) return undefined;
      let crls: readonly string[];
      try {
        crls = deps.crls();
      } catch (err) {
        crlFault = err instanceof Error ? err.message : String(err);
        throw err;
      }
      const v = validateCertificate({
        leaf: user.signingCertificate,
        intermediates: deps.intermediates,
        roots: deps.roots,
        crls,
        use: 'user-signing',
        time: now, // not req.time: that is the signer's claim
        cache: deps.validationCache,
      });
      // a user revoked through keyd is also suspended there: the revocation is the reason to give
      if (v.status === 'revoked') revoked = { revokedAt: v.revokedAt, reason: v.reason };
      if (v.status === 'expired') expired = v.notAfter;
      // the certificate comes from keyd's registry, not from the message: one that does not chain here is our configuration's fault
      passing =
        passingRefusal(v) ??
        (v.status === 'untrusted' ? "it does not chain to this organisation's CA as configured here ([pki] of ssmax.ini)" : undefined);
      if (v.status !== 'valid' || user.status !== 'active') return undefined;
      const cert = parseCertificate(user.signingCertificate);
      return { publicKey: createPublicKey({ key: Buffer.from(cert.spki), format: 'der', type: 'spki' }), addresses: cert.emails };
    },
  });
  if (result.result === 'temperror')
    throw crlFault !== undefined ? new GatewayError('crlUnreadable', crlFault) : new GatewayError('keydUnavailable', result.detail);
  // a passing state (a CRL past its nextUpdate, a certificate issued a moment ago, on hold): the sender's retry may pass
  if (result.result === 'fail' && result.reason === 'unknown-certificate' && passing)
    throw new GatewayError('userCertificateUnconfirmed', passing);
  if (result.result === 'fail' && result.reason === 'unknown-certificate' && revoked)
    throw new GatewayError('userCertificateRevoked', `revoked at ${revoked.revokedAt.toISOString()} (${revoked.reason})`);
  if (result.result === 'fail' && result.reason === 'unknown-certificate' && expired)
    throw new GatewayError('userCertificateExpired', `expired at ${expired.toISOString()}`);
  if (result.result === 'fail' && result.reason === 'time-too-old') throw new GatewayError('userSignatureTooOld', result.detail);
  if (result.result !== 'pass')
    throw new GatewayError('signatureFailed', result.result === 'fail' ? `${result.reason}: ${result.detail}` : 'none');
  if (!result.signerMatchesFrom) throw new GatewayError('signerNotFrom');
  return removeUserSignature(message);
}

/** The local recipients that are lists of this organisation (not registered users). */
export async function listRecipients(deps: GatewayDeps, rcpts: readonly string[]): Promise<string[]> {
  if (!deps.lists) return [];
  // what each is, not the list's members (localCopies asks for those once, for the post): all asked at once
  const kinds = await Promise.all(rcpts.map((r) => deps.keyd.kind(r)));
  return rcpts.filter((_, i) => kinds[i]!.kind === 'list');
}

/** This organisation's current encryption key, as its own verified bundle certifies it. */
async function ownKey(deps: GatewayDeps): Promise<{ keyId: string; publicKey: Uint8Array }> {
  const { current } = await deps.keyd.orgKeys();
  return { keyId: current, publicKey: await deps.keyd.certifiedKey(current) };
}

/** Bcc must never travel: drop Bcc fields (in any spelling, "Bcc :" too) before the gateway encrypts a plaintext submission. */
function withoutBcc(message: Buffer): Buffer {
  return withoutField(message, 'bcc');
}

/**
 * Submits `raw`, from a user of this organisation, to `rcpts`: one sealed
 * copy per peer domain, copies for local recipients (local-copies.ts), or
 * that inspection held it. `notices`: the user's capsule was for a retired
 * version of this organisation's key (accepted within grace): the submission
 * reply carries a refresh hint for the user's client. `envelopeFrom`: the
 * envelope sender ('' for the null sender), checked with the From against an
 * SMTP AUTH login (`checkSenderBinding`) before anything else is asked.
 */
export async function submit(
  deps: GatewayDeps,
  raw: Buffer,
  rcpts: readonly string[],
  submitter?: Submitter,
  envelopeFrom?: string,
): Promise<HopResult & { readonly mode: Mode }> {
  try {
    return await submitOnce(deps, raw, rcpts, submitter, envelopeFrom);
  } catch (err) {
    throw releasedKeyGone(deps, raw, err); // a release whose key version is gone: said so, the entry kept held by its releaser
  }
}

async function submitOnce(
  deps: GatewayDeps,
  raw: Buffer,
  rcpts: readonly string[],
  submitter?: Submitter,
  envelopeFrom?: string,
): Promise<HopResult & { readonly mode: Mode }> {
  const notices: RetiredUse[] = [];
  let message = raw;
  let head = checkMessage(message);
  const sender = senderOf(head.headers);
  checkSenderBinding(submitter, head.from, envelopeFrom, sender);
  if (submitter?.via === 'trusted-relay' && sender !== undefined) await checkRelayedSender(deps, sender);
  if (head.headers.hasHeader(USER_SIGNATURE_HEADER)) {
    message = await verifySubmitter(deps, message);
    head = checkMessage(message);
  }
  // sealing is the last change: what a later hop would add is added now (completion.ts)
  const completed = completeHeaders(message, deps.config.domain, deps.clock());
  if (completed !== message) head = checkMessage((message = completed));
  // a plain client's submission inspection held (encrypted to this organisation only to hold it) goes on as that
  // client's, its header bound to the login again (what was opened is the held entry, not what the release sent)
  const plain = await releasedPlainSubmission(deps, message);
  if (plain) {
    head = checkMessage((message = plain));
    const opened = senderOf(head.headers);
    checkSenderBinding(submitter, head.from, envelopeFrom, opened);
    if (submitter?.via === 'trusted-relay' && opened !== undefined) await checkRelayedSender(deps, opened);
  }
  // a released submission whose held entry was moved to a newer key version opens with the entry's capsule (src/inspect/held-keys.ts)
  let capsules = plain ? [] : heldCapsules(deps, message, capsulesOf(head.headers));
  const mode: Mode = capsules.length > 0 ? 'ssmax' : 'transparent';
  let capsule = mode === 'ssmax' ? capsuleFor(deps.config.domain, capsules) : undefined;
  if (mode === 'transparent') message = withoutBcc(message);
  // the format limits first (the chain's reading of the message): a message over them is refused naming
  // the configured limit before inspection's own parser meets it
  const unsealed = await checkUnsealed(deps, message, 'a submission');
  const byDomain = new Map<string, string[]>();
  for (const r of rcpts) byDomain.set(domainOf(r), [...(byDomain.get(domainOf(r)) ?? []), r]);
  // one copy per other domain, each the whole message, all held until handed over: capped before any is made, as
  // the local copies are (local-copies.ts), and before inspection, which could hold a message never to be sent
  const otherDomains = [...byDomain.keys()].filter((d) => !deps.config.localDomains.includes(d)).length;
  checkCopyBytes(deps, otherDomains, message.length, `its recipients at ${otherDomains} other domains`);
  // held under the identity of what was received (completeHeaders may have added a Date of its own to `message`)
  const inspected = await inspectSubmission(deps, message, capsule, head.from, rcpts, retryIdentity(raw) ?? null);
  if (inspected.quarantined) return { copies: [], mode, notices, quarantined: inspected.quarantined };
  message = inspected.message;
  if (inspected.capsule !== undefined) {
    // a release through a remote inspector: its held entry's capsule, moved to a newer key version, comes with the answer
    capsules = releasedCapsules(deps, capsules, inspected.capsule);
    capsule = capsuleFor(deps.config.domain, capsules);
  }
  const origin: Origin = {
    from: 'own',
    chain: unsealed,
    trackingToken: await deps.keyd.mintToken(head.from, head.messageId || '<none>', submitter),
  };

  const copies: Copy[] = [];
  // posts to moderated lists: held only when the copies are handed over, after every other recipient here was worked out
  const holds: HeldPost[] = [];
  const unsendable: Unsendable[] = [];
  for (const [domain, list] of byDomain) {
    if (deps.config.localDomains.includes(domain)) {
      if (mode === 'ssmax') {
        copies.push(
          ...(await localCopies(
            deps,
            { message, rcpts: list, origin, verdicts: inspected.verdicts, sender: head.from },
            capsules,
            notices,
            holds,
          )),
        );
      } else {
        // a plaintext post to a list of this organisation is encrypted to the organisation's key first, then expanded like any post (src/lists/)
        const lists = await listRecipients(deps, list);
        if (lists.length > 0) {
          const own = await ownKey(deps);
          const encrypted = await collect(encryptMessage(message, [own], { group: deps.group, rng: systemRng }));
          copies.push(
            ...(await localCopies(
              deps,
              { message: encrypted, rcpts: lists, origin, verdicts: inspected.verdicts, sender: head.from },
              listCapsulesIn(checkMessage(encrypted).headers),
              notices,
              holds,
            )),
          );
        }
        const users = list.filter((r) => !lists.includes(r));
        // a plaintext submission to local users stays on the internal hop, as submitted (with what DLP found, when it ran)
        if (users.length > 0)
          copies.push({ rcpts: users, message: withInspectionResults(deps.config.domain, message, inspected.verdicts), local: true });
      }
      continue;
    }
    try {
      copies.push(await peerCopy(deps, domain, list, mode, message, capsule, origin, inspected.verdicts, notices));
    } catch (err) {
      // a final word on this domain's recipients (its keys refused for good, it requires encryption and has no bundle):
      // the message's 5xx unless a copy of it went already (an earlier attempt's): plugin.ts send decides. Any other
      // error is about the message itself (its capsule's key version destroyed, a bad capsule, ...): thrown as it is
      if (err instanceof GatewayError && !err.temporary && DOMAIN_REFUSALS.has(err.kind)) unsendable.push({ rcpts: list, error: err });
      else throw err;
    }
  }
  return { copies, mode, notices, holds, unsendable };
}

/** Final refusals that concern one peer domain's recipients, not the message: collected per domain by `submitOnce`. */
const DOMAIN_REFUSALS: ReadonlySet<ReplyName> = new Set<ReplyName>(['peerRefused', 'encryptionRequired', 'encryptedNoPeer']);

/** The sealed copy of `message` for the recipients `rcpts` at the peer `domain` (or as it is, for a domain without SSMAX). */
async function peerCopy(
  deps: GatewayDeps,
  domain: string,
  rcpts: string[],
  mode: Mode,
  message: Buffer,
  capsule: Capsule | undefined,
  origin: Origin,
  verdicts: readonly Verdict[],
  notices: RetiredUse[],
): Promise<Copy> {
  const found = await peerFor(deps, domain);
  const peer = found === 'plain' || !deps.keyWatch ? found : await deps.keyWatch.fresh(domain, found);
  if (peer === 'plain') {
    if (mode === 'ssmax') throw new GatewayError('encryptedNoPeer', domain);
    return { rcpts, message, local: false };
  }
  if (mode !== 'ssmax') return { rcpts, message: await sealPlainForPeer(deps, message, peer, origin, verdicts, rcpts), local: false };
  const target = peer.currentKey;
  // keyd's refusal of the peer's certificate for good (revoked, expired) is final (peerRefused, keyd/client-ops.ts fromKeyd)
  const moved = await deps.keyd.reencrypt(
    capsule!,
    { kind: 'peer', domain, certificate: target.certificate, chain: peer.orgCaChain, crls: peer.crls },
    target.keyId,
  );
  noteRetired(notices, capsule!.keyId, moved);
  const sealed = await addSeal(
    deps,
    await collect(replaceCapsules(message, [moved.capsule])),
    origin,
    [...verdicts, { name: 'e2e', result: 'pass' }],
    rcpts,
  );
  return { rcpts, message: sealed, local: false };
}

/**
 * The transparent-mode step for one peer: a plaintext message of this
 * organisation encrypted to the peer's current key and sealed (seal i=1 by
 * this domain, `rcpts` bound). Used for plain clients' submissions and for
 * this gateway's own failure reports to a sender at a peer (`reportToPeer`).
 */
async function sealPlainForPeer(
  deps: GatewayDeps,
  message: Buffer,
  peer: PeerEntry,
  origin: Origin,
  verdicts: readonly Verdict[],
  rcpts: readonly string[],
): Promise<Buffer> {
  const target = peer.currentKey;
  const encrypted = await collect(
    encryptMessage(message, [{ keyId: target.keyId, publicKey: target.publicKey }], { group: deps.group, rng: systemRng }),
  );
  return addSeal(deps, encrypted, origin, [...verdicts, { name: 'e2e', result: 'none' }], rcpts);
}

/**
 * A failure report of this gateway (From: its MAILER-DAEMON, the null
 * sender) for a sender outside the local domains: for a sender at an SSMAX
 * peer, sealed by this organisation exactly as a plain client's submission
 * is (`sealPlainForPeer`: encrypted to the peer, recipient-bound to the
 * sender), since the peer accepts only sealed mail from SSMAX domains; for a
 * sender at a domain without SSMAX, as it is. Its tracking token names this
 * organisation's mail system (keyd), not a user. The report holds the header
 * fields of the original only (dsn.ts).
 */
export async function reportToPeer(deps: GatewayDeps, report: Buffer, to: string): Promise<Buffer> {
  const domain = domainOf(to);
  if (deps.config.localDomains.includes(domain)) throw new Error(`reportToPeer: ${to} is local`);
  const found = await peerFor(deps, domain);
  const peer = found === 'plain' || !deps.keyWatch ? found : await deps.keyWatch.fresh(domain, found);
  if (peer === 'plain') return report;
  const unsealed = await checkUnsealed(deps, report, 'a report');
  // seal i=1 carries a tracking token; a report's names this organisation's mail system (keyd), not a user
  const trackingToken = await deps.keyd.mintMailSystemToken(checkMessage(report).messageId || '<none>');
  return sealPlainForPeer(deps, report, peer, { from: 'own', chain: unsealed, trackingToken }, [], [to]);
}
