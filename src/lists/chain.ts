/**
 * The list seal at the receiving side (docs/lists.md, "The list seal";
 * docs/security.md, "Impersonation"). A list organisation that re-distributes
 * a post keeps seal i=1 (the original sender's organisation, aligned with the
 * From domain as always) and adds its own seal carrying `ls=<list address>`.
 * A receiving gateway accepts a seal i>1 by another organisation than seal
 * i=1's exactly when it is such a list seal:
 *  - `ls=` names an address of the sealer's own domain (`d=`, which is its
 *    sealing certificate's domain): an organisation speaks only for its own
 *    lists;
 *  - the list address is a visible recipient of the message as it arrives
 *    (To or Cc). To and Cc are bound to seal i=1 only for a message without
 *    content ciphertext (src/chain/seal-reading.ts earlierMatches); for
 *    encrypted mail the list could have changed them (docs/security.md,
 *    "Tampering by a later hop").
 * Seal i=1 is never exempt: a list cannot make mail appear to come from
 * another organisation's user. Anything else still needs [chain] resealers —
 * a list of one organisation that is a member of another's list too: an
 * earlier list seal says nothing about who received its copies (their
 * recipient openings are removed at each hop), so it cannot vouch for the
 * next sealer; every organisation that received a copy could otherwise
 * re-seal it for anyone as a "nested list".
 */
import type { SealReport } from '../chain/seal-reading';
import addressparser from 'nodemailer/lib/addressparser';
import { isField, splitHeaderBlock, unfoldedValue } from '../mail/header-block';
import { canonicalAddress } from '../mail/message-checks';

/** Whether seal `report` (i>1, by another organisation than seal i=1's) is an accepted list re-distribution. */
export function listResealAccepted(report: SealReport, message: Buffer): boolean {
  const list = report.listAddress;
  if (!list || report.instance < 2) return false;
  if (list.slice(list.lastIndexOf('@') + 1) !== report.domain) return false;
  // an address of To or Cc, parsed: a display name or comment that spells the list address names nobody
  return visibleAddresses(message).includes(list);
}

/**
 * The addresses of the root header block's To and Cc fields, each in its one
 * spelling (canonicalAddress: an internationalised domain in its ASCII form),
 * so that a list address written "list@bücher.example" names the list
 * list@xn--bcher-kva.example as `ls=` spells it. The fields are read as UTF-8,
 * as mail clients show them.
 */
function visibleAddresses(message: Buffer): string[] {
  const fields = splitHeaderBlock(message).fields.filter((f) => isField(f, 'to') || isField(f, 'cc'));
  const out: string[] = [];
  for (const f of fields)
    for (const box of addressparser(Buffer.from(unfoldedValue(f), 'latin1').toString('utf8'), { flatten: true })) {
      const a = box.address ? canonicalAddress(box.address) : undefined;
      if (a) out.push(a);
    }
  return out;
}

/** RFC 2919 list identifier: `<label.domain>`, the label made of letters, digits and hyphens. */
export function listId(address: string): string {
  const at = address.lastIndexOf('@');
  return `<${address.slice(0, at).replace(/[^A-Za-z0-9-]/g, '-')}.${address.slice(at + 1)}>`;
}

/** RFC 2369 / 2919 fields of a list copy. */
export function listFields(address: string): string {
  const at = address.lastIndexOf('@');
  const request = `${address.slice(0, at)}-request@${address.slice(at + 1)}`;
  return `List-Id: ${listId(address)}\r\nList-Post: <mailto:${address}>\r\nList-Unsubscribe: <mailto:${request}?subject=unsubscribe>\r\n`;
}
