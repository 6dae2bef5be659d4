/**
 * What the gateway's protocol steps need, injected (STYLE.md: every outside
 * dependency injectable), so the steps run the same in Haraka and in tests.
 */
import type { KeyObject } from 'node:crypto';
import type { Group } from '../crypto';
import type { PeerEntry } from '../directory/peer-entry';
import type { ValidationCache } from '../pki/validate';
import type { GatewayConfig } from './config';
import type { Inspector } from '../inspect/engine';
import type { KeyWatch, RetiredUse } from './key-exchange';
import type { KeydOps } from '../keyd/client-ops';
import type { Lists } from '../lists/expand';

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
  /** Mailing lists of this organisation (src/lists/, docs/lists.md): expansion and the moderation store. */
  readonly lists?: Lists;
}

/** One message to send: the same bytes for these recipients. */
export interface Copy {
  readonly rcpts: readonly string[];
  readonly message: Buffer;
  /** true: hand to the local mailbox store now; false: queue for the peer's gateway. */
  readonly local: boolean;
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
}
