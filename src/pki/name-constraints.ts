/**
 * Name constraints (RFC 5280 §4.2.1.10) for the two name forms of the SSMAX
 * hierarchy: dNSName and rfc822Name. An organisation CA is limited to its own
 * domains; this module decides whether a name falls inside.
 *
 * Matching follows RFC 5280 (and OpenSSL, which the interop tests compare with):
 * - dNSName constraint `a.example` matches `a.example` and every `*.a.example`;
 * - rfc822Name constraint `a.example` matches any mailbox at exactly that host,
 *   `.a.example` any mailbox at a subdomain, `x@a.example` that mailbox only.
 * Comparison is case-insensitive on host names.
 */
import type { ConstraintName, NameConstraintsView, ParsedCertificate } from './certificate';
import { ATTR } from './oids';

function dnsMatches(name: string, constraint: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const c = constraint.toLowerCase().replace(/\.$/, '');
  if (c === '') return true;
  if (c.startsWith('.')) return n.endsWith(c);
  return n === c || n.endsWith(`.${c}`);
}

function emailMatches(address: string, constraint: string): boolean {
  const at = address.lastIndexOf('@');
  if (at <= 0) return false;
  const host = address.slice(at + 1).toLowerCase();
  const c = constraint.toLowerCase();
  if (c.includes('@')) {
    const cat = c.lastIndexOf('@');
    return address.slice(0, at) === constraint.slice(0, cat) && host === c.slice(cat + 1);
  }
  if (c.startsWith('.')) return host.endsWith(c);
  return host === c;
}

function matches(name: ConstraintName, constraint: ConstraintName): boolean {
  return name.kind === 'dns' ? dnsMatches(name.value, constraint.value) : emailMatches(name.value, constraint.value);
}

/** True if `name` satisfies the constraints (permitted subtrees of its kind, if any, and no excluded subtree). */
export function nameAllowed(name: ConstraintName, nc: NameConstraintsView): boolean {
  const permitted = nc.permitted.filter((c) => c.kind === name.kind);
  if (permitted.length > 0 && !permitted.some((c) => matches(name, c))) return false;
  return !nc.excluded.some((c) => c.kind === name.kind && matches(name, c));
}

/** A host name as OpenSSL recognises one in a common name (labels of letters, digits, hyphens, at least one dot). */
function looksLikeHostName(cn: string): boolean {
  return /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(cn);
}

/**
 * The names of a certificate that name constraints apply to: its dNSName and
 * rfc822Name alternative names, emailAddress attributes of its subject, and —
 * as OpenSSL does for a certificate without a dNSName — a common name that
 * looks like a host name.
 */
export function constrainedNamesOf(cert: ParsedCertificate): ConstraintName[] {
  const out: ConstraintName[] = [
    ...cert.dnsNames.map((value) => ({ kind: 'dns' as const, value })),
    ...cert.emails.map((value) => ({ kind: 'email' as const, value })),
  ];
  for (const a of cert.subjectAttributes) {
    if (a.type === ATTR.emailAddress) out.push({ kind: 'email', value: a.value });
    if (a.type === ATTR.commonName && cert.dnsNames.length === 0 && looksLikeHostName(a.value)) out.push({ kind: 'dns', value: a.value });
  }
  return out;
}

/** The first name of `cert` outside `nc`, or undefined if all are inside. */
export function firstNameOutside(cert: ParsedCertificate, nc: NameConstraintsView): ConstraintName | undefined {
  return constrainedNamesOf(cert).find((n) => !nameAllowed(n, nc));
}
