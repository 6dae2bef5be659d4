/**
 * Receiving side (docs/protocol.md "Authentication chain": "The recipient verifies
 * the newest seal against the receiving org's certificate; earlier seals
 * remain for audit"; docs/user.md "open").
 *
 * 1. The newest seal must be by the recipient's own organisation and verify
 *    against one of the sealing certificates of the own organisation's bundle
 *    (the bundle verified up to the SSMAX root; the certificate validated for
 *    use `seal` with the bundle's CRLs and any newer ones the caller has).
 *    Earlier seals are reported with their tags and are vouched for by the
 *    newest sealer (`cv=pass`); with peer bundles they are verified too.
 * 2. Only then the message is decrypted with the user's key. A message that
 *    carries no SSMAX capsule was delivered decrypted by the receiving gateway
 *    ("transparent mode"), and the result says so.
 *
 * Guarantees: nothing is decrypted when a seal fails; the plaintext is
 * collected whole and returned only after every chunk authenticated, so a
 * failure never yields partial plaintext; errors never quote message content.
 */
import { defaultGroup } from '../crypto/backend';
import { CryptoError } from '../crypto/errors';
import { p256PublicKeyFrom } from '../crypto/ecdsa';
import { type CertificateLookup, certificateRef } from '../chain/certificate-lookup';
import { type NewestSealReport, type NewestSealVerification, verifyNewestSeal } from '../chain/verify-newest';
import { type VerifiedBundle, verifyBundle } from '../pki/bundle';
import type { CrlInput } from '../pki/crl';
import { validateCertificate } from '../pki/validate';
import addressparser from 'nodemailer/lib/addressparser';
import { aligned } from '../chain/alignment';
import { RECIPIENTS_HEADER, RecipientsError, checkRecipients, parseRecipients, recipientFieldsIn } from '../chain/recipients';
import { listCapsulesIn } from '../envelope/capsules';
import { decryptMessage } from '../envelope/decrypt';
import { parseContentType, VERSION_HEADER } from '../envelope/headers';
import { DEFAULT_LIMITS } from '../envelope/limits';
import { collect, parseHead, readHead } from '../envelope/source';
import { claimsVerdict, compareHeaders } from '../mail/sealed-header';
import { splitHeaderBlock } from '../mail/header-block';
import { bareCrLine } from '../mail/message-checks';
import { UserError } from './errors';
import { type UserProfile, verifyOrgBundle } from './profile';

export interface OpenOptions {
  readonly now: Date;
  /** Signed bundles (JSON text) of peer organisations: earlier seals by them are verified too. */
  readonly peerBundles?: readonly string[];
  /** CRLs newer than the bundles' (PEM or DER), e.g. fetched from the organisation: a revoked sealing certificate fails. */
  readonly crls?: readonly CrlInput[];
  /**
   * Keep the SSMAX-Seal fields on top of a plaintext that still carries them
   * (profile "part", transparent mode). Default: removed, so the plaintext is
   * the sender's original message; the hops are in the trace.
   */
  readonly keepSeals?: boolean;
}

/** One hop of the authentication chain, as the recipient sees it. */
export interface HopReport {
  readonly instance: number;
  readonly domain: string;
  /** `unverified`: an earlier seal under a newest seal that failed. */
  readonly result: 'pass' | 'fail' | 'temperror' | 'unverified';
  /** `vd=`, e.g. `dlp:pass,av:none` (empty: none recorded). */
  readonly verdicts: string;
  readonly cv: 'none' | 'pass' | 'fail';
  /** How it was checked: its signature here, or vouched for by the newest sealer. */
  readonly checked: 'signature' | 'newest-seal';
  /** Failure detail (no message content). */
  readonly detail?: string;
  /** The line printed for people. */
  readonly line: string;
}

export interface OpenedMessage {
  readonly hops: readonly HopReport[];
  /** `ssmax-chain=pass header.d=b.example header.i=2` */
  readonly summary: string;
  /** False: delivered decrypted by the receiving gateway (transparent mode). */
  readonly encrypted: boolean;
  /** `message` or `part` for an encrypted message. */
  readonly profile?: 'message' | 'part';
  /** The key id of the capsule opened. */
  readonly keyId?: string;
  /** The original message. Sensitive: never log it. */
  readonly plaintext: Buffer;
  /** Human lines: one per hop, then one about decryption, then any warnings. */
  readonly trace: readonly string[];
  /** Things the reader should know that are not failures (e.g. an inner From unlike the sealed one). */
  readonly warnings: readonly string[];
}

/** A failed open: the hops seen so far (for the trace) and no plaintext. */
export class OpenError extends UserError {
  readonly hops: readonly HopReport[];
  readonly trace: readonly string[];
  constructor(code: 'seal' | 'decrypt' | 'bundle' | 'message', message: string, hops: readonly HopReport[] = []) {
    super(code, message);
    this.name = 'OpenError';
    this.hops = hops;
    this.trace = hops.map((h) => h.line);
  }
}

/** Sealing-certificate lookup over one verified bundle; records why a certificate was refused. */
function bundleLookup(
  bundle: VerifiedBundle,
  rootPem: string,
  extraCrls: readonly CrlInput[],
  now: Date,
  refusals: Map<string, string>,
): CertificateLookup {
  return (req) => {
    if (req.kind !== 'seal') return undefined;
    if ((req.domain ?? '').toLowerCase() !== bundle.domain) {
      refusals.set(req.certRef, `the seal is by "${req.domain ?? ''}", not by the organisation "${bundle.domain}"`);
      return undefined;
    }
    const cert = bundle.sealingCertificates.find((c) => certificateRef(c.der) === req.certRef);
    if (!cert) {
      refusals.set(req.certRef, `its certificate c=${req.certRef} is not a sealing certificate of the bundle of "${bundle.domain}"`);
      return undefined;
    }
    // The bundle validated its sealing certificates at publication; validate again now, with any newer CRL.
    const v = validateCertificate({
      leaf: cert,
      intermediates: [bundle.orgCa],
      roots: [rootPem],
      crls: [...bundle.crls, ...extraCrls],
      use: 'seal',
      time: now,
    });
    if (v.status !== 'valid') {
      refusals.set(req.certRef, `its sealing certificate is ${v.status}: ${v.message}`);
      return undefined;
    }
    return { publicKey: p256PublicKeyFrom(cert.spki), domain: bundle.domain };
  };
}

function verifiedPeers(texts: readonly string[], profile: UserProfile, now: Date): Map<string, VerifiedBundle> {
  const peers = new Map<string, VerifiedBundle>();
  for (const [index, text] of texts.entries()) {
    let domain: unknown;
    try {
      domain = (JSON.parse(text) as { payload?: { domain?: unknown } }).payload?.domain;
    } catch {
      domain = undefined;
    }
    if (typeof domain !== 'string')
      throw new UserError('bundle', `Cannot use peer bundle ${index + 1}: not a signed bundle (no payload domain)`);
    const r = verifyBundle(text, { domain, roots: [profile.rootPem], time: now });
    if (r.status !== 'valid') throw new UserError('bundle', `Cannot use the peer bundle of "${domain}": ${r.status}: ${r.message}`);
    peers.set(r.bundle.domain, r.bundle);
  }
  return peers;
}

function hopLine(h: Omit<HopReport, 'line'>, newest: { domain: string; instance: number }): string {
  const verdicts = h.verdicts === '' ? 'no verdicts' : h.verdicts;
  // an earlier seal is not checked here: the newest sealer checked it, and its seal (which this open verified) says so with cv=pass
  const how =
    h.checked === 'signature'
      ? 'signature verified here'
      : `checked by ${newest.domain}, not here: its seal i=${newest.instance} says cv=pass (--peer-bundle verifies it here)`;
  const mode = h.result === 'pass' ? how : h.result === 'unverified' ? 'not verified (the newest seal failed)' : (h.detail ?? '');
  return `seal i=${h.instance}  ${h.domain}  ${h.result}  ${verdicts}  cv=${h.cv}  ${mode}`;
}

function hopsOf(chain: NewestSealVerification, refusals: Map<string, string>): HopReport[] {
  const newest = chain.instances[chain.instances.length - 1];
  const newestFailed = newest !== undefined && newest.outcome.result !== 'pass';
  return chain.instances.map((r: NewestSealReport) => {
    const isNewest = r === newest;
    let result: HopReport['result'] = r.outcome.result === 'none' ? 'pass' : r.outcome.result;
    if (!isNewest && newestFailed && r.checked === 'newest-seal') result = 'unverified';
    let detail: string | undefined;
    if (r.outcome.result === 'fail')
      detail =
        r.outcome.reason === 'unknown-certificate' && refusals.has(r.certRef)
          ? `unknown-certificate: ${refusals.get(r.certRef)}`
          : `${r.outcome.reason}: ${r.outcome.detail}`;
    if (r.outcome.result === 'temperror') detail = r.outcome.detail;
    const base = {
      instance: r.instance,
      domain: r.domain,
      result,
      verdicts: r.verdicts.map((v) => `${v.name}:${v.result}`).join(','),
      cv: r.chainValidation,
      checked: r.checked,
      ...(detail === undefined ? {} : { detail }),
    };
    return { ...base, line: hopLine(base, { domain: newest?.domain ?? '', instance: newest?.instance ?? 0 }) };
  });
}

/** A lowercase field name as mail shows it ("reply-to": "Reply-To", "message-id": "Message-ID"). */
function displayName(name: string): string {
  return name === 'message-id' ? 'Message-ID' : name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/** The decoded value of each `name` field of a header block, unfolded and trimmed. */
function headerValues(head: Buffer, name: string): string[] {
  return parseHead(head, DEFAULT_LIMITS)
    .get(name)
    .map((line) =>
      line
        .slice(line.indexOf(':') + 1)
        .replace(/\r?\n[ \t]/g, ' ')
        .replace(/\s+/g, ' ')
        .trim(),
    );
}

/**
 * The message without the SSMAX-Seal and SSMAX-Recipients fields at the top of
 * its header block (gateways prepend them, docs/chain.md); every other byte is kept.
 */
export function stripLeadingSeals(message: Buffer): Buffer {
  let at = 0;
  const chainField = () =>
    message
      .subarray(at, at + 11)
      .toString('latin1')
      .toLowerCase() === 'ssmax-seal:' ||
    message
      .subarray(at, at + 17)
      .toString('latin1')
      .toLowerCase() === 'ssmax-recipients:';
  while (chainField()) {
    let end = at;
    for (;;) {
      const lf = message.indexOf(0x0a, end);
      if (lf < 0) return message; // a header block without end: leave it as it is
      end = lf + 1;
      const next = message[end];
      if (next !== 0x20 && next !== 0x09) break; // not a folded continuation
    }
    at = end;
  }
  return message.subarray(at);
}

/**
 * The newest seal must name the opener among the recipients it binds, and
 * seal i=1 must be by the organisation of the From domain (and of the Sender's, when there is one) (src/chain/alignment.ts;
 * a subdomain with a peer bundle of its own, when given, is its own
 * organisation). Returns the trace line; throws OpenError otherwise.
 */
async function bindingChecks(
  profile: UserProfile,
  message: Uint8Array,
  chain: NewestSealVerification,
  outer: { readonly from: readonly string[]; readonly sender: readonly string[] },
  peers: ReadonlyMap<string, VerifiedBundle>,
  hops: readonly HopReport[],
): Promise<string> {
  const newest = chain.instances[chain.instances.length - 1]!;
  const first = chain.instances[0]!;
  const notNamed = (why: string) =>
    new OpenError(
      'seal',
      `Cannot open the message: its newest seal (i=${newest.instance}, ${newest.domain}) does not name you (${profile.address}) as a recipient: ${why}`,
      hops,
    );
  if (!newest.recipientCommitment) throw notNamed('it binds no recipients');
  const fields = recipientFieldsIn(message);
  if (fields.length !== 1) throw notNamed(`expected one ${RECIPIENTS_HEADER} field, found ${fields.length}`);
  try {
    const { bound } = checkRecipients(parseRecipients(fields[0]!), newest.recipientCommitment, [profile.address]);
    if (bound.length !== 1) throw notNamed('you are not among the recipients it binds');
  } catch (err) {
    if (err instanceof RecipientsError) throw notNamed(err.message);
    throw err;
  }
  // the From, and the Sender when there is one (a client shows "Sender on behalf of From"): each must be of the
  // organisation that sealed i=1
  const domainIn = (field: 'From' | 'Sender', values: readonly string[]): string => {
    const boxes = values.length === 1 ? addressparser(values[0]!, { flatten: true }) : [];
    const address = boxes.length === 1 ? boxes[0]!.address : undefined;
    if (!address)
      throw new OpenError('seal', `Cannot open the message: it must have exactly one ${field} address (alignment cannot be checked)`, hops);
    return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  };
  const fromDomain = domainIn('From', outer.from);
  const senderDomain = outer.sender.length === 0 ? undefined : domainIn('Sender', outer.sender);
  for (const [field, domain] of [['From', fromDomain], ...(senderDomain === undefined ? [] : [['Sender', senderDomain]])] as const) {
    if (!(await aligned(domain, first.domain, (d) => Promise.resolve(peers.has(d))))) {
      throw new OpenError(
        'seal',
        `Cannot open the message: the ${field} domain ${domain} is not aligned with seal i=1 by ${first.domain} (another organisation sealed mail in its name)`,
        hops,
      );
    }
  }
  const sender = senderDomain === undefined ? '' : `, Sender domain ${senderDomain}`;
  return `alignment: From domain ${fromDomain}${sender}, seal i=1 by ${first.domain}: aligned; recipient: you (${profile.address}) are named by seal i=${newest.instance}`;
}

/**
 * Verifies the newest seal, then decrypts with the user's key. Throws
 * OpenError (with the hop reports) on a failed seal or decryption.
 */
export async function openMessage(profile: UserProfile, message: Uint8Array, options: OpenOptions): Promise<OpenedMessage> {
  if (!(message instanceof Uint8Array)) throw new TypeError('Cannot open: the message must be a Uint8Array');
  const { now } = options;
  const own = verifyOrgBundle(profile.orgBundle, profile.domain, profile.rootPem, now);
  const peers = verifiedPeers(options.peerBundles ?? [], profile, now);
  const extraCrls = options.crls ?? [];
  const refusals = new Map<string, string>();
  const lookup = bundleLookup(own, profile.rootPem, extraCrls, now, refusals);
  const peerLookup: CertificateLookup = (req) => {
    const bundle = peers.get((req.domain ?? '').toLowerCase());
    return bundle ? bundleLookup(bundle, profile.rootPem, extraCrls, now, refusals)(req) : undefined;
  };
  const chain = await verifyNewestSeal(message, {
    lookup,
    now: () => now.getTime(),
    ...(peers.size > 0 ? { earlier: { domains: [...peers.keys()], lookup: peerLookup } } : {}),
  });
  const hops = hopsOf(chain, refusals);
  if (chain.result === 'none')
    throw new OpenError('seal', 'Cannot open the message: it carries no SSMAX-Seal (it did not come through an SSMAX gateway)', hops);
  if (chain.result !== 'pass') {
    const failed = hops.find((h) => h.result === 'fail' || h.result === 'temperror');
    const reason = failed?.detail ?? (chain.result === 'fail' ? `${chain.reason}: ${chain.detail}` : chain.detail);
    throw new OpenError(
      'seal',
      `Cannot open the message: seal ${failed ? `i=${failed.instance} (${failed.domain})` : ''} ${chain.result === 'fail' ? 'failed' : 'could not be checked'}: ${reason}`.replace(
        / {2,}/g,
        ' ',
      ),
      hops,
    );
  }
  const newest = hops[hops.length - 1];
  if (newest && newest.domain !== own.domain) {
    throw new OpenError(
      'seal',
      `Cannot open the message: the newest seal is by "${newest.domain}", not by the organisation "${own.domain}"`,
      hops,
    );
  }

  // Encrypted or transparent? Read the top-level header block only.
  let head: Buffer;
  try {
    ({ head } = await readHead(message, DEFAULT_LIMITS));
  } catch (err) {
    throw new OpenError('message', `Cannot open the message: ${(err as Error).message}`, hops);
  }
  let capsuleCount: number;
  let hasVersion: boolean;
  let profileName: 'message' | 'part' | undefined;
  let outerFrom: string[];
  let outerSender: string[];
  try {
    const headers = parseHead(head, DEFAULT_LIMITS);
    capsuleCount = listCapsulesIn(headers).length;
    hasVersion = headers.hasHeader(VERSION_HEADER);
    const type = headers.get('content-type')[0];
    profileName =
      type === undefined ? undefined : (parseContentType(type.slice(type.indexOf(':') + 1))?.profile ?? (hasVersion ? 'part' : undefined));
    outerFrom = headerValues(head, 'from');
    outerSender = headerValues(head, 'sender');
  } catch (err) {
    throw new OpenError('decrypt', `Cannot decrypt the message for "${profile.address}": ${(err as Error).message}`, hops);
  }
  const trace = hops.map((h) => h.line);
  trace.push(await bindingChecks(profile, message, chain, { from: outerFrom, sender: outerSender }, peers, hops));
  const warnings: string[] = [];
  if (capsuleCount === 0 && !hasVersion) {
    trace.push('message: not encrypted (delivered decrypted by the receiving gateway: transparent mode)');
    const delivered = Buffer.from(message);
    return {
      hops,
      summary: chain.summary,
      encrypted: false,
      plaintext: options.keepSeals ? delivered : stripLeadingSeals(delivered),
      trace,
      warnings,
    };
  }

  let plaintext: Buffer;
  try {
    plaintext = await collect(
      decryptMessage(message, { keyId: profile.encryption.keyId, privateKey: profile.encryption.privateKey }, { group: defaultGroup }),
    );
  } catch (err) {
    // The inner message starts "Cannot decrypt…" too: keep only its reason.
    const inner = (err as Error).message.replace(/^Cannot decrypt( content)?: /, '');
    const why = err instanceof CryptoError && err.code === 'auth-failed' ? `the content does not authenticate: ${inner}` : inner;
    throw new OpenError('decrypt', `Cannot decrypt the message for "${profile.address}": ${why}`, hops);
  }
  if (!options.keepSeals) plaintext = stripLeadingSeals(plaintext);
  trace.push(`message: encrypted (profile ${profileName ?? 'unknown'}), decrypted with your key ${profile.encryption.keyId}`);
  // a lone CR can hide a header field from readers that split lines at LF (gateways refuse such a message: 550 5.6.0)
  const bareCr = bareCrLine(plaintext);
  if (bareCr !== undefined)
    warnings.push(
      `warning: the decrypted message holds a bare CR (one not followed by LF) at line ${bareCr}: what follows it on that line may be a hidden header field`,
    );
  // verdicts and resends claimed inside, which no seal covers: a gateway drops them from a plain client's copy
  // (src/mail/sealed-header.ts); here the message is handed over as decrypted, so the reader is told
  const claimed = claimedVerdicts(plaintext);
  if (claimed.length > 0)
    warnings.push(
      `warning: the decrypted message's header carries ${claimed.join(', ')}: claims of its sender that no seal covers, not results of any check`,
    );
  if (profileName === 'message') {
    // The seals cover the outer display fields; a reader shows the inner ones. Say so when they differ (src/mail/sealed-header.ts).
    try {
      const { differing, missingInside } = compareHeaders(message, plaintext, { authorCase: 'ignore' });
      for (const [name, shown] of [
        ['from', 'From'],
        ['sender', 'Sender'],
      ] as const)
        if (differing.includes(name)) warnings.push(`warning: the ${shown} inside the encrypted message is not the sealed outer ${shown}`);
      // a field missing inside (a Date the sending gateway added) is no claim of the inner header
      const other = differing.filter((n) => n !== 'from' && n !== 'sender' && !missingInside.includes(n));
      if (other.length > 0)
        warnings.push(
          `warning: the ${other.map(displayName).join(', ')} inside the encrypted message ${other.length === 1 ? 'is not the sealed outer one' : 'are not the sealed outer ones'}`,
        );
    } catch {
      warnings.push('warning: the header of the decrypted message cannot be read');
    }
  }
  trace.push(...warnings);
  return {
    hops,
    summary: chain.summary,
    encrypted: true,
    ...(profileName ? { profile: profileName } : {}),
    keyId: profile.encryption.keyId,
    plaintext,
    trace,
    warnings,
  };
}

/** Inner fields that claim a check's result or a resend (claimsVerdict, the SSMAX-* fields aside): their names, once each, at most five. */
function claimedVerdicts(message: Buffer): string[] {
  let fields: readonly string[];
  try {
    fields = splitHeaderBlock(message, { bareLf: true }).fields;
  } catch {
    return [];
  }
  const names = new Set<string>();
  for (const f of fields) {
    if (!claimsVerdict(f, { ssmax: false })) continue;
    // the sender's bytes: printable ASCII only on the reader's terminal
    names.add(
      f
        .slice(0, Math.max(0, f.indexOf(':')))
        .trim()
        .slice(0, 40)
        .replace(/[^!-~]/g, '?'),
    );
    if (names.size >= 5) break;
  }
  return [...names];
}
