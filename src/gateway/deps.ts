/**
 * What the gateway's protocol steps need, injected (every outside dependency
 * injectable), so the steps run the same in Haraka and in tests; and what the
 * steps hand each other: a message's `Origin`, a message for local
 * recipients (`ForLocal`), a post to a list (`ListPost`), the copies to send
 * (`Copy`) and a step's result (`HopResult`).
 */
import type { KeyObject } from 'node:crypto';
import type { Capsule, Group } from '../crypto';
import type { Verdict } from '../chain/tags';
import type { ChainVerification } from '../chain/verify-chain';
import type { PeerEntry } from '../directory/peer-entry';
import type { ValidationCache } from '../pki/validate';
import type { GatewayConfig } from './config';
import type { Inspector } from '../inspect/engine';
import type { KeyWatch, RetiredUse } from './key-exchange';
import type { KeydOps } from '../keyd/client-ops';
import type { ListFacts } from '../keyd/client-ops';
import type { GatewayError } from '../mail/replies';

/** The directory client's lookup (src/directory): throws DirectoryError with code none | unavailable | invalid. */
export interface PeerDirectory {
  lookup(domain: string): Promise<PeerEntry>;
}

export interface GatewayDeps {
  readonly config: GatewayConfig;
  readonly group: Group;
  readonly keyd: KeydOps;
  readonly directory: PeerDirectory;
  /** The gateway's sealing key and `c=` reference of its certificate. */
  readonly seal: { readonly privateKey: KeyObject; certRef: string };
  /** Trust anchors, the org CA chain and current CRLs, for local user certificates. */
  readonly roots: readonly string[];
  readonly intermediates: readonly string[];
  readonly crls: () => readonly string[];
  readonly validationCache: ValidationCache;
  readonly clock: () => Date;
  /** Peers' advertised key versions; refresh-before-send (absent: the cached bundle as it is). */
  readonly keyWatch?: KeyWatch;
  /** Inspection of this hop (DLP outbound, antivirus inbound; inline or remote: docs/inspection.md), when enabled. */
  readonly inspection?: Inspector;
  /** Mailing lists of this organisation (src/lists/expand.ts, docs/lists.md): expansion and the moderation store. */
  readonly lists?: ListStep;
}

/** One message to send: the same bytes for these recipients. */
export interface Copy {
  readonly rcpts: readonly string[];
  readonly message: Buffer;
  /** true: hand to the local mailbox store now; false: queue for the peer's gateway. */
  readonly local: boolean;
  /**
   * The list this copy was expanded from (src/lists/expand.ts): what the sender addressed. A member the
   * store refuses is logged and settled, never named to the sender (who would learn the list's members);
   * a message refused for every recipient names the list.
   */
  readonly list?: string;
}

/**
 * What a protocol step (submission.ts, reception.ts) decided for one
 * message: the copies to hand over, or that inspection held it.
 */
export interface HopResult {
  readonly copies: readonly Copy[];
  /** Capsules accepted for a retired key version: the reply carries a refresh hint (key-exchange.ts). */
  readonly notices: readonly RetiredUse[];
  /** Set when the message was held (quarantine id): nothing is handed over. */
  readonly quarantined?: string;
  /**
   * Posts a list's moderation holds (src/lists/expand.ts): written with the copies, once the
   * message's answer is decided (`writeHolds`), never before.
   */
  readonly holds?: readonly HeldPost[];
  /**
   * Recipients for whom no copy can be made, for good (their domain's keys refused for good, or the
   * domain requires encryption and publishes no bundle: submission.ts): decided where the copies are
   * handed over (plugin.ts `send`) — the message's 5xx when no copy of it has gone, else reported.
   */
  readonly unsendable?: readonly Unsendable[];
}

/** Recipients no copy can go to, for good, and the final answer that says why. */
export interface Unsendable {
  readonly rcpts: readonly string[];
  readonly error: GatewayError;
  /** The list they are members of (a list's copy): logged, never named to the sender. */
  readonly list?: string;
}

/** A post to a moderated list to hold, encrypted as it is: written to the moderation store when the copies are handed over. */
export interface HeldPost {
  /** The list it was sent to (the one recipient of its entry). */
  readonly list: string;
  /** The verified sender ('' when none). */
  readonly from: string;
  /** The post as it is kept: as it arrived, or (a local post) sealed with seal i=1 binding the list. */
  readonly message: Buffer;
}

/**
 * Where a message to seal comes from, which says what the seal is made over:
 *  - `peer`: another organisation sealed it; `chain` is the verification of
 *    its seals (chain-check.ts verifySeals, result pass). This seal is i>1.
 *  - `own`: this organisation's own user (a submission) or mail system (a
 *    report); it carries no seals yet (`chain`: checkUnsealed, result none).
 *    This seal is i=1 and carries the tracking token.
 */
export type Origin =
  | { readonly from: 'peer'; readonly chain: ChainVerification }
  | { readonly from: 'own'; readonly chain: ChainVerification; readonly trackingToken: Uint8Array };

/** A message for local recipients, encrypted to this organisation's key, its origin checked. */
export interface ForLocal {
  readonly message: Buffer;
  readonly rcpts: readonly string[];
  /**
   * Where it came from: a peer, with the verification of its
   * seals (it holds for every copy: a copy differs only in its capsules, which
   * the earlier seals' signatures do not depend on); or this organisation's
   * own user, with no seals yet and the tracking token of seal i=1.
   */
  readonly origin: Origin;
  /** Verdicts of this hop's inspection, if any (docs/inspection.md). */
  readonly verdicts: readonly Verdict[];
  /** The verified sender (the From the chain or the user signature vouches for): what a list's posting policy checks (src/lists/). */
  readonly sender?: string;
  /** Copies made for this list's members (src/lists/): re-encrypted with keyd's `list` target, sealed with `ls=`; `listFields` head a plain member's copy. */
  readonly list?: string;
  readonly listFields?: string;
  /** Capsules already re-encrypted for these recipients (a list's batch, src/lists/expand.ts): used instead of asking keyd again. */
  readonly moved?: ReadonlyMap<string, Capsule>;
  /** The original of `message` for transparent copies, decrypted once and shared by every slice of a list's post (local-copies.ts plaintextOnce). */
  readonly plaintext?: () => Promise<Buffer>;
}

/** The list step (src/lists/expand.ts): a post to a list of this organisation, expanded per member, held for moderation, or dropped. */
export interface ListStep {
  /** The copies for the list's members, or the post to hold for moderation (nothing written yet). */
  post(deps: GatewayDeps, post: ListPost): Promise<{ readonly copies: readonly Copy[]; readonly hold?: HeldPost }>;
  /** Writes a held post to the moderation store (src/lists/expand.ts writeHolds): its moderation id. */
  hold(held: HeldPost): Promise<string>;
  /**
   * Throws the final refusal (552 5.3.4) when `held`, together, can never be held: over a byte cap of the
   * moderation store (in all, or for one sender) whatever it holds (src/inspect/quarantine.ts). Nothing is written.
   */
  checkHolds?(held: readonly HeldPost[]): void;
  /**
   * The capsule (its text) a released post opens with when it is not its own: the entry of the release its
   * SSMAX-List-Release field names, re-encrypted to a newer key version while it was held (src/inspect/held-keys.ts);
   * undefined otherwise (read only: the expansion still decides on the release, once).
   */
  releaseCapsule?(message: Buffer): string | undefined;
}

export interface ListPost {
  /** The verified post: its message (encrypted to this organisation's key), origin, verdicts and verified sender. */
  readonly arrival: ForLocal;
  readonly capsules: readonly Capsule[];
  /** The list as keyd resolved it for this post. */
  readonly list: ListFacts;
  readonly notices?: RetiredUse[];
}
