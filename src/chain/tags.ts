/**
 * The two header fields of the authentication chain and their strict grammar
 * (docs/chain.md, "Grammar"): the user signature `SSMAX-User-Signature` (hop 0)
 * and the organisation seal `SSMAX-Seal` (instances 1…N), DKIM/ARC-style
 * tag=value lists (RFC 6376 §3.2).
 *
 * Guarantees: a parsed field satisfies every rule of the grammar, or parsing
 * throws a ChainFormatError naming the first rule broken, with the offending
 * tag quoted. Tag values contain no whitespace, so the signed form of a field
 * (`signedForm`) is a re-serialisation of its tags in received order and does
 * not depend on folding.
 */
import { foldLines } from '../mail/header-block';
import { CHAIN_LIMITS } from './limits';
import { PROTECTED_HEADERS } from './protected-headers';
import { ChainFormatError } from './result';

export const USER_SIGNATURE_HEADER = 'SSMAX-User-Signature';
export const SEAL_HEADER = 'SSMAX-Seal';
export const FORMAT_VERSION = '1';

/** Outcomes a hop may record for one inspection (`vd=dlp:pass,av:none`). */
export const VERDICT_RESULTS = ['pass', 'fail', 'none', 'no-consent', 'temperror'] as const;
export type VerdictResult = (typeof VERDICT_RESULTS)[number];

export interface Verdict {
  /** Inspection name: lowercase letters, digits and `-`, 1…32 characters (e.g. `dlp`, `av`). */
  readonly name: string;
  readonly result: VerdictResult;
}

export type ChainValidation = 'none' | 'pass' | 'fail';

/** A tag in received order; the signed form re-serialises these. */
export type Tag = readonly [name: string, value: string];

interface CommonFields {
  readonly version: 1;
  /** Base64url SHA-256 of the signer certificate's DER (`c=`). */
  readonly certRef: string;
  /** Signing time, Unix seconds (`t=`). */
  readonly time: number;
  /** Lowercase header names covered (`h=`). */
  readonly signedHeaders: readonly string[];
  /** Base64url SHA-256 of the canonical protected headers (`hh=`). */
  readonly headerHash: string;
  /** Base64url structural body hash (`bh=`). */
  readonly bodyHash: string;
  /** Base64url 64-byte ECDSA P-256 signature r || s (`b=`). */
  readonly signature: string;
  readonly tags: readonly Tag[];
}

export interface UserSignatureFields extends CommonFields {
  /** The signer's address (`u=`), an addr-spec. */
  readonly signer: string;
}

export interface SealFields extends CommonFields {
  /** Instance number `i=` (1…CHAIN_LIMITS.maxSeals). */
  readonly instance: number;
  /** Signing domain `d=`, lowercase. */
  readonly domain: string;
  /** Result of verifying the chain before this hop (`cv=`). */
  readonly chainValidation: ChainValidation;
  /** Inspection verdicts of this hop (`vd=`), possibly none. */
  readonly verdicts: readonly Verdict[];
  /** Base64url tracking token (`tt=`), present exactly at instance 1. */
  readonly trackingToken?: string;
  /** Base64url recipient commitment (`rc=`, src/chain/recipients.ts), when the seal binds its copy's recipients. */
  readonly recipientCommitment?: string;
  /**
   * `ls=`: the list address this organisation re-distributed the message
   * for (docs/lists.md, "The list seal"); a receiving gateway accepts a seal
   * by another organisation than seal i=1's when it is such a list seal of
   * the list's own domain.
   */
  readonly listAddress?: string;
}

export type FieldKind = 'user' | 'seal';

const TAGS: Record<FieldKind, { readonly required: readonly string[]; readonly optional: readonly string[] }> = {
  user: { required: ['v', 'u', 'c', 't', 'h', 'hh', 'bh', 'b'], optional: [] },
  seal: { required: ['v', 'i', 'd', 'c', 't', 'cv', 'vd', 'h', 'hh', 'bh', 'b'], optional: ['tt', 'rc', 'ls'] },
};

const WHAT: Record<FieldKind, string> = { user: 'user signature', seal: 'seal' };

const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
// addr-spec with a dot-atom local part (RFC 5322 §3.4.1); quoted local parts are not signable here.
const ADDRESS = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[a-z0-9.-]+$/;
const HEADER_NAME = /^[a-z0-9][a-z0-9-]*$/;
const VERDICT_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

function excerpt(text: string): string {
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** Decodes base64url strictly: only the alphabet, no padding, canonical trailing bits. */
export function decodeBase64url(value: string): Uint8Array | undefined {
  if (!BASE64URL.test(value) || value.length % 4 === 1) return undefined;
  const bytes = Buffer.from(value, 'base64url');
  if (bytes.toString('base64url') !== value) return undefined;
  return new Uint8Array(bytes);
}

export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Unfolds a field value (RFC 5322 §2.2.3); a CR or LF not followed by WSP is malformed. */
function unfold(value: string, fail: (detail: string) => never): string {
  const unfolded = value.replace(/\r?\n(?=[ \t])/g, '');
  if (/[\r\n]/.test(unfolded)) fail('a line break is not followed by whitespace');
  return unfolded;
}

/** Splits `name=value; …` into tags; every structural rule of the tag list is checked here. */
function splitTags(kind: FieldKind, value: string): Tag[] {
  const what = WHAT[kind];
  const failWhole = (detail: string): never => {
    throw new ChainFormatError('malformed', `Cannot parse ${what} "${excerpt(value.trim())}": ${detail}`);
  };
  const unfolded = unfold(value, failWhole);
  if (/[^\x20-\x7e\t]/.test(unfolded)) failWhole('it contains a character outside printable ASCII');
  const specs = unfolded.split(';');
  const tags: Tag[] = [];
  const seen = new Set<string>();
  const allowed = new Set([...TAGS[kind].required, ...TAGS[kind].optional]);
  specs.forEach((raw, index) => {
    const spec = raw.trim();
    if (spec === '') failWhole(index === specs.length - 1 && index > 0 ? 'it ends with ";"' : `tag ${index + 1} is empty`);
    const eq = spec.indexOf('=');
    if (eq < 0) throw new ChainFormatError('malformed', `Cannot parse ${what} "${excerpt(spec)}": tag ${index + 1} has no "="`);
    const name = spec.slice(0, eq).trim();
    const tagValue = spec.slice(eq + 1).trim();
    const failTag = (detail: string): never => {
      throw new ChainFormatError('malformed', `Cannot parse ${what} "${excerpt(spec)}": ${detail}`);
    };
    if (!/^[a-z]+$/.test(name)) failTag(`tag name "${name}" is not lowercase letters`);
    if (!allowed.has(name)) failTag(`tag "${name}" is unknown in version 1`);
    if (seen.has(name)) failTag(`tag "${name}" appears twice`);
    if (index === 0 && name !== 'v') failTag('the first tag is not "v"');
    if (/[ \t]/.test(tagValue)) failTag(`tag "${name}" contains whitespace`);
    seen.add(name);
    tags.push([name, tagValue]);
  });
  for (const name of TAGS[kind].required) {
    if (!seen.has(name)) failWhole(`tag "${name}" is missing`);
  }
  return tags;
}

function parseFields(kind: FieldKind, value: string): { tags: Tag[]; get: (name: string) => string; failTag: FailTag } {
  if (typeof value !== 'string') throw new ChainFormatError('malformed', `Cannot parse ${WHAT[kind]}: expected a string`);
  const headerName = kind === 'user' ? USER_SIGNATURE_HEADER : SEAL_HEADER;
  if (headerName.length + 1 + value.length > CHAIN_LIMITS.maxAuthHeaderLength) {
    throw new ChainFormatError(
      'limit-exceeded',
      `Cannot parse ${WHAT[kind]} "${excerpt(value.trim())}": the field is longer than ${CHAIN_LIMITS.maxAuthHeaderLength} characters`,
    );
  }
  const tags = splitTags(kind, value);
  const map = new Map(tags);
  const get = (name: string): string => map.get(name) ?? '';
  const failTag = (name: string, detail: string, reason: ChainFormatError['reason'] = 'malformed'): never => {
    throw new ChainFormatError(reason, `Cannot parse ${WHAT[kind]} "${excerpt(`${name}=${get(name)}`)}": ${detail}`);
  };
  if (get('v') !== FORMAT_VERSION) failTag('v', `tag "v" is not "${FORMAT_VERSION}"`);
  return { tags, get, failTag };
}

type FailTag = (name: string, detail: string, reason?: ChainFormatError['reason']) => never;

function base64urlTag(get: (n: string) => string, failTag: FailTag, name: string, bytes: number): string {
  const value = get(name);
  const decoded = decodeBase64url(value);
  if (!decoded) failTag(name, `tag "${name}" is not canonical base64url`);
  if (decoded && decoded.length !== bytes) failTag(name, `tag "${name}" is not ${bytes} bytes`);
  return value;
}

function commonFields(parsed: ReturnType<typeof parseFields>): Omit<CommonFields, 'tags' | 'version'> {
  const { get, failTag } = parsed;
  const certRef = base64urlTag(get, failTag, 'c', 32);
  const t = get('t');
  if (!/^(0|[1-9][0-9]{0,11})$/.test(t)) failTag('t', 'tag "t" is not a Unix time in seconds');
  const h = get('h');
  const names = h.split(':');
  if (names.length > CHAIN_LIMITS.maxSignedHeaderNames)
    failTag('h', `tag "h" names more than ${CHAIN_LIMITS.maxSignedHeaderNames} headers`, 'limit-exceeded');
  const seen = new Set<string>();
  for (const name of names) {
    if (!HEADER_NAME.test(name)) failTag('h', `tag "h" has a header name "${excerpt(name)}" that is not lowercase letters, digits and "-"`);
    if (seen.has(name)) failTag('h', `tag "h" names "${name}" twice`);
    // Chain fields are covered by the chain itself (seals sign earlier seals), never through h=.
    if (name === USER_SIGNATURE_HEADER.toLowerCase() || name === SEAL_HEADER.toLowerCase())
      failTag('h', `tag "h" names the chain field "${name}"`);
    seen.add(name);
  }
  for (const name of PROTECTED_HEADERS) {
    if (!seen.has(name)) failTag('h', `tag "h" does not cover "${name}"`, 'protected-header-uncovered');
  }
  return {
    certRef,
    time: Number(t),
    signedHeaders: names,
    headerHash: base64urlTag(get, failTag, 'hh', 32),
    bodyHash: base64urlTag(get, failTag, 'bh', 32),
    signature: base64urlTag(get, failTag, 'b', 64),
  };
}

/** Parses the value of an SSMAX-User-Signature field (everything after the colon). */
export function parseUserSignature(value: string): UserSignatureFields {
  const parsed = parseFields('user', value);
  const { get, failTag } = parsed;
  const signer = get('u');
  if (signer.length > 254 || !ADDRESS.test(signer) || !DOMAIN.test(signer.slice(signer.lastIndexOf('@') + 1))) {
    failTag('u', 'tag "u" is not an addr-spec with a lowercase domain');
  }
  return { version: 1, signer, ...commonFields(parsed), tags: parsed.tags };
}

function parseVerdicts(value: string, failTag: FailTag): Verdict[] {
  if (value === '') return [];
  const items = value.split(',');
  if (items.length > CHAIN_LIMITS.maxVerdicts)
    failTag('vd', `tag "vd" has more than ${CHAIN_LIMITS.maxVerdicts} verdicts`, 'limit-exceeded');
  const seen = new Set<string>();
  return items.map((item) => {
    const colon = item.indexOf(':');
    const name = colon < 0 ? item : item.slice(0, colon);
    const result = colon < 0 ? '' : item.slice(colon + 1);
    if (!VERDICT_NAME.test(name))
      failTag('vd', `tag "vd" has a verdict name "${excerpt(name)}" that is not 1-32 lowercase letters, digits and "-"`);
    if (!(VERDICT_RESULTS as readonly string[]).includes(result))
      failTag('vd', `tag "vd" has a result "${excerpt(result)}" for "${name}" that is not one of ${VERDICT_RESULTS.join(', ')}`);
    if (seen.has(name)) failTag('vd', `tag "vd" names "${name}" twice`);
    seen.add(name);
    return { name, result: result as VerdictResult };
  });
}

/**
 * Seals parsed lately, by their field value: a gateway reads the same seals several times per
 * message (the chain check, the binding checks, its own seal over them). Bounded, frozen, and
 * only what parsed: a malformed seal is parsed (and refused) every time.
 */
const PARSED_SEALS = new Map<string, SealFields>();
const PARSED_SEALS_MAX = 256;

/** Parses the value of an SSMAX-Seal field (everything after the colon). */
export function parseSeal(value: string): SealFields {
  if (typeof value !== 'string') return parseSealOnce(value); // refused there, named
  const known = PARSED_SEALS.get(value);
  if (known) return known;
  // what is kept is a copy: the value may be a slice of a whole header block, which the key and the tag
  // values (slices of the value) would otherwise keep alive
  const own = Buffer.from(value, 'utf8').toString('utf8');
  const fields = parseSealOnce(own);
  Object.freeze(fields.tags);
  for (const tag of fields.tags) Object.freeze(tag);
  Object.freeze(fields.signedHeaders);
  for (const verdict of fields.verdicts) Object.freeze(verdict);
  Object.freeze(fields.verdicts);
  Object.freeze(fields);
  if (PARSED_SEALS.size >= PARSED_SEALS_MAX) PARSED_SEALS.delete(PARSED_SEALS.keys().next().value!);
  PARSED_SEALS.set(own, fields);
  return fields;
}

function parseSealOnce(value: string): SealFields {
  const parsed = parseFields('seal', value);
  const { get, failTag } = parsed;
  const i = get('i');
  if (!/^[1-9][0-9]*$/.test(i)) failTag('i', 'tag "i" is not a positive integer');
  const instance = Number(i);
  if (i.length > 3 || instance > CHAIN_LIMITS.maxSeals)
    failTag('i', `tag "i" exceeds the limit of ${CHAIN_LIMITS.maxSeals} seals`, 'limit-exceeded');
  const domain = get('d');
  if (!DOMAIN.test(domain)) failTag('d', 'tag "d" is not a lowercase domain name');
  const cv = get('cv');
  if (cv !== 'none' && cv !== 'pass' && cv !== 'fail') failTag('cv', 'tag "cv" is not one of none, pass, fail');
  const verdicts = parseVerdicts(get('vd'), failTag);
  const hasToken = parsed.tags.some(([name]) => name === 'tt');
  let trackingToken: string | undefined;
  if (hasToken) {
    if (instance !== 1) failTag('tt', 'tag "tt" is only allowed at instance 1', 'tracking-token-position');
    trackingToken = get('tt');
    if (trackingToken.length > CHAIN_LIMITS.maxTrackingTokenChars)
      failTag('tt', `tag "tt" is longer than ${CHAIN_LIMITS.maxTrackingTokenChars} characters`, 'limit-exceeded');
    if (!decodeBase64url(trackingToken)) failTag('tt', 'tag "tt" is not canonical base64url');
  } else if (instance === 1) {
    failTag('i', 'tag "tt" is required at instance 1', 'tracking-token-position');
  }
  const hasCommitment = parsed.tags.some(([name]) => name === 'rc');
  const recipientCommitment = hasCommitment ? base64urlTag(get, failTag, 'rc', 32) : undefined;
  let listAddress: string | undefined;
  if (parsed.tags.some(([name]) => name === 'ls')) {
    listAddress = get('ls');
    if (
      listAddress.length > 254 ||
      !ADDRESS.test(listAddress) ||
      listAddress !== listAddress.toLowerCase() ||
      !DOMAIN.test(listAddress.slice(listAddress.lastIndexOf('@') + 1))
    ) {
      failTag('ls', 'tag "ls" is not a lowercase addr-spec');
    }
  }
  return {
    version: 1,
    instance,
    domain,
    chainValidation: cv as ChainValidation,
    verdicts,
    ...(trackingToken === undefined ? {} : { trackingToken }),
    ...(recipientCommitment === undefined ? {} : { recipientCommitment }),
    ...(listAddress === undefined ? {} : { listAddress }),
    ...commonFields(parsed),
    tags: parsed.tags,
  };
}

/**
 * The signed form of a field: lowercase name, a colon, the tags in received
 * order joined by "; ", and with `emptySignature` the value of `b=` left empty
 * (RFC 6376 §3.7 does the same with DKIM-Signature).
 */
export function signedForm(kind: FieldKind, tags: readonly Tag[], emptySignature: boolean): string {
  const name = kind === 'user' ? USER_SIGNATURE_HEADER : SEAL_HEADER;
  return `${name.toLowerCase()}:${tags.map(([n, v]) => `${n}=${emptySignature && n === 'b' ? '' : v}`).join('; ')}`;
}

/**
 * Renders a field for the message: `Name: v=1; …`, folded between tags so that
 * lines stay near 78 characters (RFC 5322 §2.1.1), with CRLF line breaks and no
 * final line break.
 */
export function renderField(kind: FieldKind, tags: readonly Tag[]): string {
  const name = kind === 'user' ? USER_SIGNATURE_HEADER : SEAL_HEADER;
  return foldLines(
    name,
    tags.map(([n, v], index) => `${n}=${v}${index < tags.length - 1 ? ';' : ''}`),
  ).join('\r\n');
}

/**
 * What seal instance i signs (docs/chain.md, "Signing input"): the signed forms
 * of seals 1…i-1 with their signatures, in instance order, each followed by
 * CRLF, then its own signed form with `b=` empty.
 */
export function sealSigningInput(earlier: readonly { readonly tags: readonly Tag[] }[], own: readonly Tag[]): Buffer {
  const parts = earlier.map((fields) => `${signedForm('seal', fields.tags, false)}\r\n`);
  parts.push(signedForm('seal', own, true));
  return Buffer.from(parts.join(''), 'latin1');
}
