/**
 * What the directory's answer for a peer domain means for mail to it: one
 * reading of the directory's errors (src/directory/directory.ts
 * DirectoryError) for every path that needs a peer's bundle — a direct
 * recipient (submission.ts `peerFor`: the RCPT check, the submission, a
 * failure report to a sender at a peer) and a list member elsewhere
 * (src/lists/expand.ts `memberPeer`):
 *  - `found`: the verified bundle;
 *  - `none`: the domain publishes no SSMAX bundle;
 *  - `refused`: a bundle was fetched and refused; `final` (words a sender may
 *    be told) when no retry changes it — its organisation's CA revoked by the
 *    root (not merely on hold) or expired (src/pki/validate.ts finalRefusal);
 *    without `final` the peer can mend it (malformed, replayed, a signer not
 *    certified, another domain's bundle);
 *  - `unavailable`: for now (unreachable, the local CRLs unreadable, a fault).
 * `detail` is the operator's reason (the log's, never a sender's: it may name
 * what answered inside our network).
 *
 * What each path does with it: a direct recipient — `final` is `550 5.7.5`
 * (`peerRefusedForGood`), any other refusal or unavailability a 451 the
 * sender's retry may pass; a list member — no copy for any refusal (a log
 * line), a 451 for the post only while unavailable (docs/lists.md).
 */
import { DirectoryError, operatorErrorText } from '../directory/directory';
import type { PeerEntry } from '../directory/peer-entry';
import { GatewayError } from '../mail/replies';
import type { GatewayDeps } from './deps';

export type PeerBundle =
  | { readonly status: 'found'; readonly peer: PeerEntry }
  | { readonly status: 'none' }
  | { readonly status: 'refused'; readonly final?: string; readonly detail: string }
  | { readonly status: 'unavailable'; readonly detail: string };

/** The directory's answer for `domain`, read once for every path (above); never throws. */
export async function peerBundle(deps: Pick<GatewayDeps, 'directory'>, domain: string): Promise<PeerBundle> {
  try {
    return { status: 'found', peer: await deps.directory.lookup(domain) };
  } catch (err) {
    if (err instanceof DirectoryError && err.code === 'none') return { status: 'none' };
    const detail = operatorErrorText(err);
    if (err instanceof DirectoryError && err.code === 'invalid')
      return { status: 'refused', detail, ...(err.final ? { final: err.final } : {}) };
    return { status: 'unavailable', detail };
  }
}

/** The final answer for a recipient at `domain` whose keys are refused for good: 550 5.7.5 naming the domain and the reason. */
export function peerRefusedForGood(domain: string, final: string): GatewayError {
  return new GatewayError('peerRefused', `${domain}: ${final}`);
}
