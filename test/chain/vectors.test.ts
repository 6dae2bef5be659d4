/**
 * Checks the pinned vectors of test/vectors/chain/ (written by generate.test.ts
 * there): body hashes and structures of the MIME samples, and verify-vectors
 * for a user signature, seal i=1 and seal i=2 over i=1.
 */
import { readFileSync } from 'node:fs';
import { bindRecipients, checkRecipients, parseRecipients, recipientCommitment, recipientTag } from '../../src/chain/recipients';
import { join } from 'node:path';
import { createPublicKey } from 'node:crypto';
import { verifyP256 } from '../../src/crypto/ecdsa';
import { readMessage } from '../../src/chain/body-hash';
import { canonicalizeRelaxed, headerHash, protectedHeaderBlock } from '../../src/chain/canonicalize';
import { prependField } from '../../src/chain/message-fields';
import { decodeBase64url, parseSeal, parseUserSignature, sealSigningInput, signedForm } from '../../src/chain/tags';
import { verifyUser } from '../../src/chain/user-signature';
import { verifyChain } from '../../src/chain/verify-chain';

const DIR = join(__dirname, '..', 'vectors', 'chain');
const load = <T>(name: string): T => JSON.parse(readFileSync(join(DIR, name), 'utf-8')) as T;
const file = (name: string): Buffer => readFileSync(join(DIR, name));
const value = (field: string): string => field.slice(field.indexOf(':') + 1);

interface BodyVector {
  file: string;
  bodyHash: string;
  structure: unknown;
}
interface SignatureVector {
  message: string;
  publicKey: string;
  certRef: string;
  nowMs: number;
  field: string;
  headerHash: string;
  bodyHash: string;
  protectedHeaderBlock?: string;
  signedForm?: string;
  signingInput?: string;
  domain?: string;
  certificateAddresses?: string[];
  trackingToken?: string;
  summary?: string;
  recipients?: { addresses: string[]; key: string; field: string; commitment: string };
}

const bodyVectors = load<{ vectors: BodyVector[] }>('body-hash.json').vectors;
const user = load<SignatureVector>('user-signature.json');
const seal1 = load<SignatureVector>('seal-1.json');
const seal2 = load<SignatureVector>('seal-2.json');

describe('header canonicalisation vectors', () => {
  const vectors = load<{ vectors: { raw: string; canonical: string }[] }>('canonicalize.json').vectors;
  it.each(vectors.map((v) => [JSON.stringify(v.raw), v] as const))('%s', (_name, v) => {
    expect(canonicalizeRelaxed(v.raw)).toBe(v.canonical);
  });
  it('a value ending in 0xA0 (UTF-8 "à") hashes apart from the same value without it', () => {
    expect(canonicalizeRelaxed('Subject: Voil\xc3\xa0')).not.toBe(canonicalizeRelaxed('Subject: Voil\xc3'));
  });
});

describe('body hash vectors', () => {
  it.each(bodyVectors.map((v) => [v.file, v] as const))('%s has the pinned body hash and structure', async (_name, vector) => {
    const read = await readMessage(file(vector.file));
    expect(JSON.parse(JSON.stringify(read.structure))).toEqual(vector.structure);
    expect(read.bodyHash).toBe(vector.bodyHash);
  });

  it('covers the required samples, and the three Japanese charsets give one hash', () => {
    const names = bodyVectors.map((v) => v.file);
    expect(names).toEqual(
      expect.arrayContaining([
        'mime/mixed-attachments.eml',
        'mime/alternative.eml',
        'mime/nested-rfc822.eml',
        'mime/japanese-iso-2022-jp.eml',
        'mime/japanese-shift_jis.eml',
        'mime/japanese-euc-jp.eml',
      ]),
    );
    const japanese = bodyVectors.filter((v) => v.file.includes('japanese')).map((v) => v.bodyHash);
    expect(japanese).toHaveLength(3);
    expect(new Set(japanese).size).toBe(1);
    // And the raw bytes really are in three different charsets.
    expect(new Set(bodyVectors.filter((v) => v.file.includes('japanese')).map((v) => file(v.file).toString('hex'))).size).toBe(3);
  });
});

describe('user signature vector', () => {
  const fields = parseUserSignature(value(user.field));
  const publicKey = createPublicKey(user.publicKey);

  it('has the pinned canonical header block, header hash, body hash and signed form', async () => {
    const read = await readMessage(file(user.message));
    expect(protectedHeaderBlock(read.headers, fields.signedHeaders).toString('latin1')).toBe(user.protectedHeaderBlock);
    expect(headerHash(read.headers, fields.signedHeaders)).toBe(user.headerHash);
    expect(read.bodyHash).toBe(user.bodyHash);
    expect(signedForm('user', fields.tags, true)).toBe(user.signedForm);
  });

  it('verifies under the pinned key, directly and through verifyUser', async () => {
    expect(verifyP256(publicKey, Buffer.from(user.signedForm ?? '', 'latin1'), decodeBase64url(fields.signature) ?? new Uint8Array())).toBe(
      true,
    );
    const result = await verifyUser(prependField(file(user.message), user.field), {
      lookup: (r) => (r.certRef === user.certRef ? { publicKey, addresses: user.certificateAddresses ?? [] } : undefined),
      now: () => user.nowMs,
    });
    expect(result).toMatchObject({ result: 'pass', signerMatchesFrom: true });
  });
});

describe('seal vectors', () => {
  const key1 = createPublicKey(seal1.publicKey);
  const key2 = createPublicKey(seal2.publicKey);
  const lookup = (r: { certRef: string }) =>
    r.certRef === seal1.certRef
      ? { publicKey: key1, domain: seal1.domain }
      : r.certRef === seal2.certRef
        ? { publicKey: key2, domain: seal2.domain }
        : undefined;
  const first = parseSeal(value(seal1.field));
  const second = parseSeal(value(seal2.field));

  it('seal i=1 has the pinned signing input, hashes and tracking token, and verifies', async () => {
    const read = await readMessage(file(seal1.message));
    expect(protectedHeaderBlock(read.headers, first.signedHeaders).toString('latin1')).toBe(seal1.protectedHeaderBlock);
    expect([first.headerHash, first.bodyHash]).toEqual([seal1.headerHash, seal1.bodyHash]);
    expect(headerHash(read.headers, first.signedHeaders)).toBe(seal1.headerHash);
    expect(read.bodyHash).toBe(seal1.bodyHash);
    expect(first.trackingToken).toBe(seal1.trackingToken);
    expect(sealSigningInput([], first.tags).toString('latin1')).toBe(seal1.signingInput);
    expect(verifyP256(key1, Buffer.from(seal1.signingInput ?? '', 'latin1'), decodeBase64url(first.signature) ?? new Uint8Array())).toBe(
      true,
    );
    const chain = await verifyChain(prependField(file(seal1.message), seal1.field), { lookup, now: () => seal1.nowMs });
    expect(chain.summary).toBe(seal1.summary);
    expect(chain.result).toBe('pass');
  });

  it('seal i=1 binds its recipients: rc= is the pinned commitment, reproducible from the pinned key, and the field opens it', () => {
    const r = seal1.recipients!;
    const key = Buffer.from(r.key, 'base64url');
    expect(seal1.field.replace(/\r\n[ \t]/g, ' ')).toContain(`rc=${r.commitment};`);
    expect(recipientCommitment(r.addresses.map((a) => recipientTag(key, a)))).toBe(r.commitment);
    expect(bindRecipients(r.addresses, key)).toEqual({ commitment: r.commitment, field: r.field });
    const opening = parseRecipients(r.field.slice(r.field.indexOf(':') + 1));
    expect(checkRecipients(opening, r.commitment, ['bob@b.example', 'carol@b.example'])).toEqual({
      bound: ['bob@b.example'],
      unbound: ['carol@b.example'],
    });
  });

  it('seal i=2 signs seal i=1 and verifies over it', async () => {
    expect(sealSigningInput([first], second.tags).toString('latin1')).toBe(seal2.signingInput);
    expect(seal2.signingInput?.startsWith(`${signedForm('seal', first.tags, false)}\r\n`)).toBe(true);
    expect(verifyP256(key2, Buffer.from(seal2.signingInput ?? '', 'latin1'), decodeBase64url(second.signature) ?? new Uint8Array())).toBe(
      true,
    );
    const message = prependField(prependField(file(seal2.message), seal1.field), seal2.field);
    const chain = await verifyChain(message, { lookup, now: () => seal2.nowMs });
    expect(chain.summary).toBe(seal2.summary);
    expect(chain.instances.map((r) => r.outcome.result)).toEqual(['pass', 'pass']);
  });
});
