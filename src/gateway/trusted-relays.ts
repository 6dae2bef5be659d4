/**
 * The organisation's own MTAs (`[main] trusted_relays`: IP addresses and
 * CIDR blocks), e.g. the Postfix that uses this gateway as its smarthost.
 * A connection from one of them may relay without SMTP AUTH (the relay
 * authenticated its users itself), the envelope sender it gives is taken as
 * the authenticated submitter, and its null-sender mail (its own delivery
 * notices, MAIL FROM:<>) to local users is delivered to the mailbox store.
 */
import { BlockList, isIP } from 'node:net';

export class TrustedRelays {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(entries: readonly string[]) {
    for (const e of entries) {
      const [ip, prefix] = e.split('/');
      const family = isIP(ip!) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.list.addAddress(ip!, family);
      else this.list.addSubnet(ip!, Number(prefix), family);
    }
    this.empty = entries.length === 0;
  }

  /** Whether `ip` (as Haraka gives it: IPv4-mapped IPv6 already unwrapped) is one of the trusted relays. */
  has(ip: string | undefined): boolean {
    if (this.empty || !ip) return false;
    const family = isIP(ip);
    if (family === 0) return false;
    return this.list.check(ip, family === 6 ? 'ipv6' : 'ipv4');
  }
}
