/**
 * The seal chain of a message as a mailbox holds it, for the abuse tools.
 *
 * Every seal's certificate and signature must verify (verifyChain). The
 * newest seal's `hh=`/`bh=` must match the message too — except for a copy
 * this organisation's own gateway delivered in transparent mode (a plain
 * mail client user, docs/chain.md and src/gateway/local-copies.ts): that seal
 * was made over the encrypted form and the gateway delivered the decrypted
 * original beneath it, with an `Authentication-Results: <own domain>; …
 * ssmax-mode=transparent` line. Such a copy is accepted when the newest seal
 * is by `ownDomain`, it fails only on those hashes, every earlier seal passes,
 * and the transparent-mode line of `ownDomain` is at the top — beneath the
 * trace fields the gateway and the mailbox store add on delivery (TRACE_FIELDS:
 * the gateway's SSMAX-Delivery-Id, Dovecot LMTP's and Postfix's Return-Path,
 * Delivered-To, X-Original-To, Received), which are skipped; the first other
 * field must be that line. The summary says so.
 */
import { type ChainVerification, verifyChain } from '../chain/verify-chain';
import type { PeerEntry } from '../directory/directory';
import { DEFAULT_LIMITS } from '../envelope/limits';
import { parseHead, readHead } from '../envelope/source';

export type ReceivedChain =
  | { readonly result: 'pass'; readonly summary: string; readonly chain: ChainVerification; readonly transparent: boolean }
  | {
      readonly result: 'none' | 'fail' | 'temperror';
      readonly summary: string;
      readonly detail: string;
      readonly chain: ChainVerification;
    };

const HASH_REASONS = new Set(['header-hash-mismatch', 'body-hash-mismatch']);

/**
 * Fields a delivery adds above the gateway's Authentication-Results line: the
 * gateway's own delivery id (src/gateway/delivery.ts), and what mailbox stores
 * write on top as they store a message — Dovecot LMTP (Return-Path,
 * Delivered-To, Received), Postfix local/virtual delivery (Return-Path,
 * X-Original-To, Delivered-To), Exim (Envelope-To), and a Received of any
 * MTA on the way. None of them can stand between the gateway's line and the
 * message beneath it: the gateway writes its line on top of what it delivers.
 */
const TRACE_FIELDS = new Set(['ssmax-delivery-id', 'return-path', 'delivered-to', 'x-original-to', 'envelope-to', 'received']);

async function transparentLine(message: Uint8Array, ownDomain: string): Promise<boolean> {
  try {
    const { head } = await readHead(message, DEFAULT_LIMITS);
    const first = parseHead(Buffer.from(head), DEFAULT_LIMITS)
      .getList()
      .find((f) => !TRACE_FIELDS.has(f.key));
    if (!first || first.key !== 'authentication-results') return false;
    const value = first.line
      .slice(first.line.indexOf(':') + 1)
      .replace(/\r?\n[ \t]/g, ' ')
      .trim()
      .toLowerCase();
    return value.startsWith(`${ownDomain};`) && /\bssmax-chain=pass\b/.test(value) && /\bssmax-mode=transparent\b/.test(value);
  } catch {
    return false;
  }
}

export async function verifyReceivedChain(
  message: Uint8Array,
  lookup: (domain: string) => Promise<PeerEntry>,
  ownDomain?: string,
  now: () => number = Date.now,
): Promise<ReceivedChain> {
  const chain = await verifyChain(message, {
    now,
    lookup: async (req) => {
      const cert = (await lookup(req.domain ?? '')).sealingCertificate(req.certRef, new Date(req.time * 1000));
      return cert ? { publicKey: cert.publicKey, domain: cert.domain } : undefined;
    },
  });
  if (chain.result === 'pass') return { result: 'pass', summary: chain.summary, chain, transparent: false };
  if (chain.result === 'none') return { result: 'none', summary: chain.summary, detail: 'no SSMAX-Seal', chain };
  if (chain.result === 'temperror') return { result: 'temperror', summary: chain.summary, detail: chain.detail, chain };
  const newest = chain.instances[chain.instances.length - 1];
  const own = ownDomain?.toLowerCase();
  if (
    own &&
    newest &&
    newest.domain === own &&
    newest.outcome.result === 'fail' &&
    HASH_REASONS.has(newest.outcome.reason) &&
    chain.instances.slice(0, -1).every((r) => r.outcome.result === 'pass') &&
    (await transparentLine(message, own))
  ) {
    return {
      result: 'pass',
      summary: `ssmax-chain=pass header.d=${newest.domain} header.i=${newest.instance} (transparent copy: every seal verified, content decrypted by ${own})`,
      chain,
      transparent: true,
    };
  }
  return { result: 'fail', summary: chain.summary, detail: `${chain.reason}: ${chain.detail}`, chain };
}
