/**
 * The envelope sender of a list's copies (docs/lists.md, "Notices about
 * members"). Every copy expanded from a list leaves with the list's own
 * bounce address, `<list-local>-bounces@<list-domain>`, never the poster's:
 * a notice about a member (the member's organisation refusing or delaying
 * the copy, its mailbox store refusing it, this gateway's own delay notice)
 * goes to the list's organisation, so the poster never learns who is on the
 * list. A notice that reaches a bounce address is logged and settled here,
 * never delivered to anyone.
 *
 * The receiving organisation does not compare the envelope sender with the
 * sealed sender (src/gateway/binding.ts checks the From, the seals, the
 * recipients and freshness), so a list copy with this envelope sender is
 * checked like any other.
 */

/** The suffix of a list's bounce address, after the list's local part. */
export const BOUNCE_SUFFIX = '-bounces';

/** A list's bounce address: `staff@a.example` → `staff-bounces@a.example`. */
export function listBounceAddress(list: string): string {
  const at = list.lastIndexOf('@');
  return `${list.slice(0, at)}${BOUNCE_SUFFIX}@${list.slice(at + 1)}`.toLowerCase();
}

/** The list whose bounce address `address` would be (`staff-bounces@a.example` → `staff@a.example`), or undefined for any other form. */
export function bounceCandidate(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at < 0) return undefined;
  const local = address.slice(0, at);
  if (local.length <= BOUNCE_SUFFIX.length || !local.toLowerCase().endsWith(BOUNCE_SUFFIX)) return undefined;
  return `${local.slice(0, -BOUNCE_SUFFIX.length)}@${address.slice(at + 1)}`.toLowerCase();
}

/** The envelope sender a copy leaves with: the list's bounce address for a list's copy, else the message's own sender. */
export function envelopeSenderOf(copy: { readonly list?: string }, from: string): string {
  return copy.list ? listBounceAddress(copy.list) : from;
}

/** The note a queued copy of a list carries in Haraka's queue (hook_bounce, hook_deferred read it). */
export const LIST_NOTE = 'ssmax_list';

/** The list a queued copy's notes name, if any. */
export function listOf(notes: unknown): string | undefined {
  const v = (notes as Record<string, unknown> | undefined)?.[LIST_NOTE];
  return typeof v === 'string' && v.includes('@') && v.length <= 320 ? v : undefined;
}
