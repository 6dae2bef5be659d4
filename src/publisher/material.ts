/**
 * What goes into the bundle, gathered from its sources: the organisation's
 * encryption-key versions from keyd (`GET /v1/public`), and the files of the
 * org CA chain, the gateway sealing certificates and the CRLs. A fingerprint
 * of the result tells the publisher when to publish again.
 *
 * keyd states map to bundle states (docs/directory.md): `active` → `current`
 * (or `next` while its validity has not begun), `retired` → `retired`,
 * `destroyed` → left out. A version keyd holds without a certificate (keyd
 * without the org CA key) cannot be published and is left out, with a note.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { KeyState } from '../pki/bundle';
import { pemTexts } from '../pki/pem';
import { cannotRead } from '../errors/errno';

/** One entry of keyd's `GET /v1/public` `keys`. */
export interface KeydPublicKey {
  readonly keyId: string;
  readonly version: number;
  readonly state: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly publicKey?: string;
  readonly certificate?: string;
}

export interface KeydPublic {
  readonly domain: string;
  readonly current: string | null;
  readonly keys: readonly KeydPublicKey[];
}

/** Where keyd's public material comes from (a KeydClient in production; injectable). */
export type KeydPublicSource = () => Promise<KeydPublic>;

export interface BundleKey {
  readonly state: KeyState;
  readonly certificate: string;
  readonly keyId: string;
}

export interface Material {
  readonly keys: readonly BundleKey[];
  readonly orgCaChain: readonly string[];
  readonly sealingCertificates: readonly string[];
  readonly crls: readonly string[];
  /** SHA-256 over everything above, hex. */
  readonly fingerprint: string;
  /** Keys left out, one line each. */
  readonly notes: readonly string[];
}

export interface MaterialFiles {
  readonly orgCaChain: readonly string[];
  readonly sealingCertificates: readonly string[];
  readonly crls: readonly string[];
}

/** Every PEM block of a file, each ending with a newline. */
export function pemBlocks(file: string, label: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(cannotRead(label, file, err), { cause: err });
  }
  const blocks = pemTexts(text);
  if (blocks.length === 0) throw new Error(`Cannot read ${label} "${file}": no PEM block`);
  return blocks;
}

export function bundleKeysOf(pub: KeydPublic, domain: string, now: number): { keys: BundleKey[]; notes: string[] } {
  if (pub.domain !== domain) throw new Error(`Cannot publish: keyd serves "${String(pub.domain)}", not "${domain}"`);
  const keys: BundleKey[] = [];
  const notes: string[] = [];
  for (const k of pub.keys) {
    if (k.state === 'destroyed') continue;
    if (!k.certificate) {
      notes.push(`key ${k.keyId} has no certificate in keyd and is not published`);
      continue;
    }
    let state: KeyState;
    if (k.state === 'retired') state = 'retired';
    else if (k.state === 'active') state = Date.parse(k.notBefore) > now ? 'next' : 'current';
    else {
      notes.push(`key ${k.keyId} has unknown state "${k.state}" and is not published`);
      continue;
    }
    keys.push({ state, certificate: k.certificate, keyId: k.keyId });
  }
  return { keys, notes };
}

export function gatherMaterial(pub: KeydPublic, files: MaterialFiles, domain: string, now: number): Material {
  const { keys, notes } = bundleKeysOf(pub, domain, now);
  const orgCaChain = files.orgCaChain.flatMap((f) => pemBlocks(f, 'organisation CA chain'));
  // A sealing certificate file may carry its chain after it: only the first block is the gateway's certificate.
  const sealingCertificates = files.sealingCertificates.map((f) => pemBlocks(f, 'sealing certificate')[0] as string);
  const crls = files.crls.flatMap((f) => pemBlocks(f, 'CRL'));
  const fingerprint = createHash('sha256').update(JSON.stringify({ keys, orgCaChain, sealingCertificates, crls })).digest('hex');
  return { keys, orgCaChain, sealingCertificates, crls, fingerprint, notes };
}
