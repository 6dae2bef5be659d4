/**
 * Abuse reports, the sending side (SSMAX §2.2; docs/abuse.md): an operator
 * resolves the tracking token of a report (or a bare token) to the
 * registered user through keyd. keyd decides and audits everything: the
 * admin role gets the user without the identity reference
 * (`/v1/tracking/resolve`), the disclosure role may ask for the identity
 * reference (`/v1/tracking/disclose`); any other role, or disclosure asked
 * with the admin role, is refused by keyd and the refusal is audited there.
 * keyd discloses only with the Message-ID the token was minted for.
 *
 * Before asking keyd, a report is checked here: it must name this
 * organisation as the sealer, and when it carries the original headers,
 * seal i=1 in them must be this organisation's genuine seal (its signature
 * verified with the sealing certificate of the organisation's own bundle)
 * and carry the same token, and the reporting organisation (the one that
 * sealed the report first when it came sealed, else the domain of its From)
 * must have a genuine seal in them too: a report is only taken from an
 * organisation that received the message. Seal i=1's signature covers `tt=`
 * and `hh=`, but `hh=` no longer matches once a receiving gateway
 * re-encrypted the capsule for its recipient (the usual case), so it does
 * not pin the headers; the Message-ID does: keyd compares it with the one
 * the token was minted for. Disclosure therefore needs all three — seal i=1
 * verified, the reporter's seal verified, the Message-ID matching — and is
 * refused otherwise.
 */
import { headerHash } from '../chain/canonicalize';
import { ChainFormatError } from '../chain/result';
import { SEAL_HEADER, decodeBase64url, parseSeal, sealSigningInput } from '../chain/tags';
import { verifyP256 } from '../crypto/ecdsa';
import { type PeerEntry, operatorErrorText } from '../directory/directory';
import type { SealFields as ParsedSeal } from '../chain/tags';
import { DEFAULT_LIMITS } from '../envelope/limits';
import { parseHead } from '../envelope/source';
import { type KeydClient, KeydClientError } from '../keyd/client';
import { AbuseError } from './errors';
import { verifyReceivedChain } from './received-chain';
import { type ParsedAbuseReport, parseAbuseReport } from './report';

/** The registered user, as keyd shows it (never the identity reference, except `identityRef` after disclosure). */
export interface ResolvedUser {
  readonly address: string;
  readonly code: string;
  readonly status: string;
  readonly kind?: string;
  readonly certificateSerial?: string;
  readonly encryptionKeyId?: string;
}

export interface Resolution {
  readonly user: ResolvedUser;
  /** When the token was minted (ISO 8601). */
  readonly time: string;
  readonly keyVersion: number;
  /** Who authenticated the submission at the gateway (SMTP AUTH login, or the sender a trusted relay vouched for), when recorded. */
  readonly submitter?: { readonly id: string; readonly via: string };
  /** Whether the report's Message-ID is the one the token was minted for (only with a Message-ID). */
  readonly messageIdMatches?: boolean;
  /** Only with `disclose` (disclosure role). */
  readonly identityRef?: string;
  /** How seal i=1 in the report's original headers checked out (reports only). */
  readonly seal?: SealCheck;
  readonly report?: ParsedAbuseReport;
  /** When the report itself came sealed (by mail through gateways): who sealed it first, and the chain summary. */
  readonly reportChain?: { readonly domain: string; readonly summary: string };
  /** The reporting organisation's own seal in the report's original headers (reports with original headers only). */
  readonly reporterSeal?: ReporterSealCheck;
}

export interface ReporterSealCheck {
  /** The reporting organisation: the report chain's seal i=1, else the domain of the report's From. */
  readonly domain: string;
  /** `verified`: one of its seals in the original headers verifies; `unchecked`: no bundle of it was at hand (no directory). */
  readonly result: 'verified' | 'unchecked';
  /** The instance of its seal that verified. */
  readonly instance?: number;
}

export interface SealCheck {
  /** `verified`: seal i=1 is this organisation's and carries the token; `absent`: the report has no original headers. */
  readonly result: 'verified' | 'absent';
  /** Whether the original headers still hash to the seal's `hh=`. */
  readonly headersMatch?: boolean;
}

export interface ResolveOptions {
  /** keyd client with an admin (operator) or disclosure client certificate. */
  readonly keyd: KeydClient;
  /** This organisation's domain: reports for any other are refused before keyd is asked. */
  readonly domain: string;
  /** Ask for the identity reference (`/v1/tracking/disclose`; keyd allows it to the disclosure role only). */
  readonly disclose?: boolean;
  /** This organisation's own verified bundle (to check seal i=1 of a report); without it the seal is not checked. */
  readonly ownBundle?: () => Promise<PeerEntry>;
  /**
   * Bundles of other organisations (e.g. `Directory.lookup`): when given and the report arrived sealed,
   * the report's own chain must verify, and the organisation that sealed it first is shown.
   */
  readonly lookup?: (domain: string) => Promise<PeerEntry>;
}

interface OriginalHeaders {
  readonly fields: { name: string; raw: string }[];
  readonly seals: ParsedSeal[];
}

function readOriginalHeaders(original: Buffer): OriginalHeaders {
  let headers;
  try {
    headers = parseHead(original, DEFAULT_LIMITS, 'the original headers');
  } catch (err) {
    throw new AbuseError('format', `Cannot read the original headers of the report: ${operatorErrorText(err)}`);
  }
  const list = headers.getList();
  try {
    const seals = list.filter((h) => h.key === SEAL_HEADER.toLowerCase()).map((h) => parseSeal(h.line.slice(h.line.indexOf(':') + 1)));
    return { fields: list.map((h) => ({ name: h.key, raw: h.line })), seals };
  } catch (err) {
    if (err instanceof ChainFormatError)
      throw new AbuseError('chain', `Cannot resolve the report: a seal in its original headers is malformed: ${err.message}`);
    throw err;
  }
}

/**
 * Whether `seal`'s signature verifies with a sealing certificate of `entry` (the organisation it names); it signs
 * the seals before it too (`all`: every seal of the header block), so those must be there, unaltered.
 */
function sealVerifies(
  seal: ParsedSeal,
  all: readonly ParsedSeal[],
  entry: PeerEntry,
): 'verified' | 'unknown-certificate' | 'signature-invalid' {
  if (seal.domain !== entry.domain.toLowerCase()) return 'unknown-certificate';
  const cert = entry.sealingCertificate(seal.certRef, new Date(seal.time * 1000));
  if (!cert) return 'unknown-certificate';
  const earlier: ParsedSeal[] = [];
  for (let i = 1; i < seal.instance; i++) {
    const e = all.find((s) => s.instance === i);
    if (!e) return 'signature-invalid';
    earlier.push(e);
  }
  const ok = verifyP256(cert.publicKey, sealSigningInput(earlier, seal.tags), decodeBase64url(seal.signature) ?? new Uint8Array());
  return ok ? 'verified' : 'signature-invalid';
}

async function bundleOf(domain: string, get: () => Promise<PeerEntry>): Promise<PeerEntry> {
  try {
    return await get();
  } catch (err) {
    throw new AbuseError('directory', `Cannot resolve the report: no bundle of ${domain} to check its seal: ${operatorErrorText(err)}`);
  }
}

/** Checks seal i=1 of the report's original headers against this organisation's sealing certificates. */
export async function checkReportSeal(report: ParsedAbuseReport, ownBundle: () => Promise<PeerEntry>): Promise<SealCheck> {
  if (!report.originalHeaders) return { result: 'absent' };
  const { fields, seals } = readOriginalHeaders(report.originalHeaders);
  const first = seals.find((s) => s.instance === 1);
  if (!first) throw new AbuseError('chain', 'Cannot resolve the report: its original headers carry no seal i=1');
  if (first.domain !== report.sealingDomain)
    throw new AbuseError(
      'chain',
      `Cannot resolve the report: seal i=1 is by "${first.domain}", but the report names "${report.sealingDomain}"`,
    );
  if (first.trackingToken !== report.trackingToken)
    throw new AbuseError('chain', 'Cannot resolve the report: its tracking token is not the one in seal i=1 of its original headers');
  const entry = await bundleOf(report.sealingDomain, ownBundle);
  const checked = sealVerifies(first, seals, entry);
  if (checked === 'unknown-certificate')
    throw new AbuseError(
      'chain',
      `Cannot resolve the report: seal i=1 names certificate "${first.certRef}", not a valid sealing certificate of ${entry.domain}`,
    );
  if (checked !== 'verified')
    throw new AbuseError('chain', 'Cannot resolve the report: seal i=1 in its original headers does not verify (forged or altered)');
  return { result: 'verified', headersMatch: headerHash(fields, first.signedHeaders) === first.headerHash };
}

/**
 * The reporting organisation must have received the message: one of the seals in the report's original
 * headers must be its own, and verify with its bundle (`bundle`; undefined: none at hand, `unchecked`).
 * Refused when it has none, or none verifies.
 */
export async function checkReporterSeal(
  report: ParsedAbuseReport,
  reporter: string,
  bundle: (() => Promise<PeerEntry>) | undefined,
): Promise<ReporterSealCheck> {
  if (!report.originalHeaders) throw new AbuseError('chain', 'Cannot resolve the report: it carries no original headers');
  const { seals } = readOriginalHeaders(report.originalHeaders);
  const own = seals.filter((s) => s.domain === reporter);
  if (own.length === 0)
    throw new AbuseError(
      'chain',
      `Cannot resolve the report: the reporting organisation ${reporter} has no seal in the original headers (it never received the message)`,
    );
  if (!bundle) return { domain: reporter, result: 'unchecked' };
  const entry = await bundleOf(reporter, bundle);
  const verified = own.find((s) => sealVerifies(s, seals, entry) === 'verified');
  if (!verified)
    throw new AbuseError(
      'chain',
      `Cannot resolve the report: no seal of the reporting organisation ${reporter} in the original headers verifies (forged or altered)`,
    );
  return { domain: reporter, result: 'verified', instance: verified.instance };
}

/** The report's own seal chain, when it came by mail: refused when it fails; undefined when it carries no seal. */
async function checkReportChain(
  raw: Uint8Array,
  lookup: (domain: string) => Promise<PeerEntry>,
  ownDomain: string,
): Promise<{ domain: string; summary: string } | undefined> {
  const chain = await verifyReceivedChain(raw, lookup, ownDomain);
  if (chain.result === 'none') return undefined;
  if (chain.result === 'temperror')
    throw new AbuseError('directory', `Cannot resolve the report: its seal chain could not be checked: ${chain.detail}`);
  if (chain.result === 'fail')
    throw new AbuseError('chain', `Cannot resolve the report: its own seal chain does not verify (${chain.summary}): ${chain.detail}`);
  return { domain: chain.chain.instances[0]?.domain ?? '', summary: chain.summary };
}

async function askKeyd(
  keyd: KeydClient,
  disclose: boolean,
  token: string,
  messageId: string | undefined,
): Promise<Omit<Resolution, 'seal' | 'report'>> {
  try {
    return await keyd.call<Resolution>('POST', disclose ? '/v1/tracking/disclose' : '/v1/tracking/resolve', {
      token,
      ...(messageId ? { messageId } : {}),
    });
  } catch (err) {
    if (err instanceof KeydClientError) {
      if (err.transient) throw new AbuseError('unavailable', `Cannot resolve the token: ${err.message}`);
      throw new AbuseError(
        'refused',
        err.code === 'forbidden'
          ? `Cannot ${disclose ? 'disclose the identity' : 'resolve the token'}: keyd refused this certificate's role (${err.message}); the refusal is audited`
          : err.message,
      );
    }
    throw err;
  }
}

/** Resolves a bare tracking token (and, if given, says whether `messageId` is the one it was minted for). */
export async function resolveToken(token: string, options: ResolveOptions & { messageId?: string }): Promise<Resolution> {
  const t = token.trim();
  if (!/^[A-Za-z0-9_-]+$/.test(t)) throw new AbuseError('format', `Cannot resolve token "${t.slice(0, 40)}": not base64url`);
  return askKeyd(options.keyd, options.disclose === true, t, options.messageId);
}

/** The reporting organisation: the one that sealed the report first when it came sealed, else the domain of its From. */
function reporterOf(report: ParsedAbuseReport, reportChain: { domain: string } | undefined): string | undefined {
  if (reportChain?.domain) return reportChain.domain.toLowerCase();
  const at = report.reporterAddress?.lastIndexOf('@') ?? -1;
  return at > 0 ? report.reporterAddress!.slice(at + 1).toLowerCase() : undefined;
}

/**
 * Resolves the token of an ARF report (`buildAbuseReport`). With `disclose`, refused before keyd is asked
 * unless seal i=1 and the reporter's seal were verified (original headers, `ownBundle`, and the reporter's
 * bundle) and the report names a Message-ID; keyd then refuses unless the token was minted for it.
 */
export async function resolveReport(raw: Uint8Array, options: ResolveOptions): Promise<Resolution> {
  const report = await parseAbuseReport(raw);
  const domain = options.domain.toLowerCase();
  const disclose = options.disclose === true;
  if (report.sealingDomain !== domain) {
    throw new AbuseError('foreign', `Cannot resolve the report: the message was sealed by "${report.sealingDomain}", not by ${domain}`);
  }
  const reportChain = options.lookup ? await checkReportChain(raw, options.lookup, domain) : undefined;
  const seal = options.ownBundle ? await checkReportSeal(report, options.ownBundle) : undefined;
  const refuse = (why: string) => new AbuseError('refused', `Cannot disclose the identity: ${why}; nothing was asked of keyd`);
  if (disclose && !report.originalHeaders) throw refuse('the report carries no original headers, so seal i=1 cannot be checked');
  if (disclose && seal?.result !== 'verified')
    throw refuse(`seal i=1 of the original headers was not checked (no bundle of ${domain} at hand: a [directory] is needed)`);
  let reporterSeal: ReporterSealCheck | undefined;
  if (report.originalHeaders) {
    const reporter = reporterOf(report, reportChain);
    if (reporter === undefined) {
      if (disclose) throw refuse('the report names no reporting organisation (no single From address, and it came unsealed)');
    } else {
      const bundle = reporter === domain ? options.ownBundle : options.lookup ? () => options.lookup!(reporter) : undefined;
      reporterSeal = await checkReporterSeal(report, reporter, bundle);
      if (disclose && reporterSeal.result !== 'verified')
        throw refuse(`the seal of the reporting organisation ${reporter} was not checked (no directory to fetch its bundle)`);
    }
  }
  if (disclose && !report.messageId)
    throw refuse('the report names no Message-ID, so it cannot be tied to the message the token was minted for');
  const r = await askKeyd(options.keyd, disclose, report.trackingToken, report.messageId);
  // keyd discloses only for a matching Message-ID; an answer that says otherwise is not shown
  if (disclose && r.messageIdMatches !== true)
    throw new AbuseError('refused', 'Cannot disclose the identity: the Message-ID of the report is not the one the token was minted for');
  return {
    ...r,
    ...(seal ? { seal } : {}),
    ...(reporterSeal ? { reporterSeal } : {}),
    ...(reportChain ? { reportChain } : {}),
    report,
  };
}

/** One line per fact, for the CLI; the identity reference only when keyd disclosed it. */
export function describeResolution(r: Resolution): string[] {
  const u = r.user;
  return [
    `address: ${u.address} (From)`,
    ...(r.submitter ? [`submitted by: ${r.submitter.id} (${r.submitter.via})`] : []),
    `code: ${u.code}`,
    `status: ${u.status}`,
    `certificate serial: ${u.certificateSerial ?? '(none)'}`,
    `minted: ${r.time} (tracking key v${r.keyVersion})`,
    ...(r.messageIdMatches === undefined ? [] : [`message-id matches: ${r.messageIdMatches ? 'yes' : 'NO'}`]),
    ...(r.seal
      ? [
          `seal i=1: ${r.seal.result}${r.seal.headersMatch === undefined ? '' : r.seal.headersMatch ? ', original headers match' : ', original headers CHANGED'}`,
        ]
      : []),
    ...(r.report?.reportingMta ? [`reported by: ${r.report.reportingMta}${r.report.reporter ? ` (${r.report.reporter})` : ''}`] : []),
    ...(r.reportChain ? [`report sealed by: ${r.reportChain.domain} (${r.reportChain.summary})`] : []),
    ...(r.reporterSeal
      ? [
          `reporter's seal: ${r.reporterSeal.domain} ${r.reporterSeal.result === 'verified' ? `i=${r.reporterSeal.instance}: verified` : 'present, not verified (no directory)'}`,
        ]
      : []),
    ...(r.identityRef !== undefined ? [`identity reference: ${r.identityRef} (disclosed, audited)`] : []),
  ];
}
