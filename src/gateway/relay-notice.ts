/**
 * Null-sender mail from a trusted relay (the organisation's own MTA,
 * docs/postfix.md): what the gateway takes as that MTA's own notice and
 * delivers to local users as it is — no seal, no tracking token, no
 * inspection, no sender binding. Only a delivery status report qualifies
 * (RFC 3464: a root `multipart/report; report-type=delivery-status`, what
 * Postfix's bounce and delay notices are), and only one whose From is not a
 * user or list of this organisation, nor of another SSMAX organisation
 * (whose mail carries its seal), and whose addresses of this organisation are
 * its mail system's (MAILER-DAEMON or postmaster): a notice speaks for this
 * mail system, never for a person. Anything else from `MAIL FROM:<>` over that path (a
 * user logged in at the MTA writing `From: ceo@a.example` to colleagues, or
 * dressing that up as a report) is refused, 550 5.7.1, with the reason.
 */
import libmime from 'libmime';
import type { GatewayDeps } from './deps';
import { claimedOrganisation, ownOrganisation } from './binding';
import { checkMessage, domainOf, shownSenders } from '../mail/message-checks';
import { GatewayError } from '../mail/replies';

/** The local parts that speak for a mail system (RFC 5321 §4.5.1 postmaster; Postfix's notices come from MAILER-DAEMON). */
const MAIL_SYSTEM_LOCAL_PARTS: ReadonlySet<string> = new Set(['mailer-daemon', 'postmaster']);

/** Whether the root Content-Type field `value` is a delivery status report (multipart/report; report-type=delivery-status). */
export function isDeliveryReport(value: string | undefined): boolean {
  if (value === undefined) return false;
  const parsed = libmime.parseHeaderValue(value, { stripComments: true });
  return (
    parsed.value.trim().toLowerCase() === 'multipart/report' && parsed.params['report-type']?.trim().toLowerCase() === 'delivery-status'
  );
}

/**
 * Checks null-sender mail `raw` from a trusted relay before it is delivered
 * as a notice; throws the final reply when it is none (the message checks of
 * every message first: checkMessage). 4xx while keyd cannot say whether its
 * From is a user.
 */
export async function checkRelayNotice(deps: GatewayDeps, raw: Buffer): Promise<void> {
  const head = checkMessage(raw);
  const line = head.headers.get('content-type')[0];
  if (!isDeliveryReport(line === undefined ? undefined : line.slice(line.indexOf(':') + 1)))
    throw new GatewayError('nullSenderNotReport', 'its Content-Type is not multipart/report; report-type=delivery-status');
  // the From, and every address of a Sender field (a client shows "Sender on behalf of From"): each one
  for (const [field, address] of shownSenders(head)) {
    // an address of this organisation speaks for its mail system only as MAILER-DAEMON or postmaster: keyd knows
    // no aliases, so "ceo+x@a.example" or "ceo@mail.a.example" would otherwise pass as no user's
    const notMailSystem = () =>
      new GatewayError(
        'nullSenderNotReport',
        `its ${field} ${address} is an address of this organisation other than its mail system's (MAILER-DAEMON or postmaster)`,
      );
    const mailSystem = MAIL_SYSTEM_LOCAL_PARTS.has(address.slice(0, address.lastIndexOf('@')).toLowerCase());
    const domain = domainOf(address);
    // users and lists are registered at the local domains only: no keyd question for any other address
    if (!deps.config.localDomains.includes(domain)) {
      // a notice in the name of another SSMAX organisation would reach its readers unsealed, where that
      // organisation's own mail must carry its seal (reception.ts): refused as such a message from the Internet is
      const claimed = await claimedOrganisation(deps, domain);
      if (claimed !== undefined && !ownOrganisation(deps, claimed))
        throw new GatewayError('nullSenderNotReport', `its ${field} ${address} is of the SSMAX organisation ${claimed}`);
      if (claimed !== undefined && !mailSystem) throw notMailSystem();
      continue;
    }
    // one small question to keyd: a user (of any status), a list, or neither
    if ((await deps.keyd.kind(address)).kind !== 'none')
      throw new GatewayError('nullSenderNotReport', `its ${field} ${address} is a user or list of this organisation`);
    if (!mailSystem) throw notMailSystem();
  }
}
