/**
 * Fuzz targets (docs/fuzzing.md): every parser and verifier that reads
 * untrusted input, driven by fast-check with inputs that are real messages,
 * seals, certificates and CRLs the project produces (seeds), mutated
 * byte-wise, plus arbitrary data. A target fails (a "crash") when its code
 * throws anything but the project's own refusals (ChainFormatError,
 * CryptoError, DerError, MalformedCertificateError, KeydError, or an Error
 * whose message is one of the project's "Cannot …" sentences), or when a
 * verifier that must answer with a result throws at all. Used by
 * `npm run fuzz` (src/fuzz/run.ts) and, briefly, by the jest suite.
 */
import fc from 'fast-check';
import libqp from 'libqp';
import { seal } from '../chain/seal';
import { readMessage } from '../chain/body-hash';
import { ChainFormatError } from '../chain/result';
import { parseSeal, parseUserSignature } from '../chain/tags';
import { verifyChain } from '../chain/verify-chain';
import { certificateRef } from '../chain/certificate-lookup';
import { canonicalizeRelaxed } from '../chain/canonicalize';
import { groups } from '../crypto/backend';
import { CryptoError } from '../crypto/errors';
import { generateP256KeyPair } from '../crypto/ecdsa';
import { generateEncryptionKeyPair } from '../crypto/keys';
import { systemRng } from '../crypto/random';
import { collect, decryptMessage, encryptMessage, listCapsules, replaceCapsules } from '../envelope';
import { extractContent } from '../inspect/extract';
import { verifyBundle } from '../pki/bundle';
import { MalformedCertificateError, parseCertificate } from '../pki/certificate';
import { createCrl, parseCrl } from '../pki/crl';
import { DerError } from '../pki/der';
import { createOrgCa, createRootCa, issueSealingCertificate } from '../pki/issue';
import { fromPemAll } from '../pki/pem';
import { KeydError } from '../keyd/errors';
import { checkWellFormed, parseRequestBody, pathOf, param } from '../keyd/server';

export interface FuzzTarget {
  readonly name: string;
  readonly what: string;
  /** The input generator (seeds mutated, and arbitrary input). */
  readonly input: fc.Arbitrary<Uint8Array>;
  /** Runs the code under test on one input; throws a FuzzCrash for a finding. */
  readonly run: (input: Uint8Array) => Promise<void>;
}

/** A finding: code under test threw what it must not. */
export class FuzzCrash extends Error {
  constructor(
    readonly target: string,
    readonly finding: unknown,
  ) {
    super(`${target}: ${finding instanceof Error ? `${finding.name}: ${finding.message}\n${finding.stack ?? ''}` : String(finding)}`);
    this.name = 'FuzzCrash';
  }
}

/** The project's own refusals: precise errors on bad input. */
export function isProjectRefusal(err: unknown): boolean {
  if (
    err instanceof ChainFormatError ||
    err instanceof CryptoError ||
    err instanceof DerError ||
    err instanceof MalformedCertificateError ||
    err instanceof KeydError
  )
    return true;
  return err instanceof Error && err.constructor === Error && /^Cannot /.test(err.message);
}

async function refusalsOnly(target: string, work: () => unknown): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (!isProjectRefusal(err)) throw new FuzzCrash(target, err);
  }
}

async function neverThrows(target: string, work: () => unknown): Promise<void> {
  try {
    await work();
  } catch (err) {
    throw new FuzzCrash(target, err);
  }
}

interface Mutation {
  readonly op: 'flip' | 'insert' | 'delete' | 'duplicate' | 'run';
  readonly at: number;
  readonly byte: number;
  readonly length: number;
}

/** Applies byte-level mutations to a seed: bit flips, inserted bytes, deleted or duplicated spans, runs of one byte. */
export function mutate(seed: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b = Buffer.from(seed);
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    switch (m.op) {
      case 'flip':
        if (at < b.length) b[at] = (b[at] ?? 0) ^ (1 << (m.byte % 8));
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.from([m.byte]), b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
        break;
      case 'duplicate':
        b = Buffer.concat([b.subarray(0, at + m.length), b.subarray(at, at + m.length), b.subarray(at + m.length)]);
        break;
      case 'run':
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.alloc(m.length * 16, [0x0d, 0x0a, 0x20, 0x3d, 0x5c, 0x3b, 0x2d][m.byte % 7]!),
          b.subarray(at),
        ]);
        break;
    }
  }
  return new Uint8Array(b);
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('flip', 'insert', 'delete', 'duplicate', 'run'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
  length: fc.integer({ min: 1, max: 256 }),
});

function seeded(seeds: readonly Uint8Array[], maxArbitrary = 2000): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 8 })).map(([s, m]) => mutate(s, m)),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxArbitrary }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: maxArbitrary }).map((s) => new Uint8Array(Buffer.from(s, 'utf8'))) },
  );
}

/** Real material the project produces: a sealed encrypted message and its parts, certificates, a CRL. */
export interface Seeds {
  readonly messages: readonly Uint8Array[];
  readonly sealValues: readonly Uint8Array[];
  readonly certificates: readonly Uint8Array[];
  readonly crls: readonly Uint8Array[];
  readonly bundles: readonly Uint8Array[];
  readonly http: readonly Uint8Array[];
  readonly sealKey: { readonly publicKey: import('node:crypto').KeyObject; readonly domain: string };
  readonly userKey: { readonly keyId: string; readonly privateKey: Uint8Array };
}

const PLAIN = [
  'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <1@a.example>\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHello Bob,=20\r\nsee =C3=BC the attached.\r\n\r\n\r\n',
  'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\npre\r\n--b1\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<p>caf\xe9 &amp; <b>bold</b></p>\r\n--b1\r\nContent-Type: application/pdf; name="r.pdf"\r\nContent-Disposition: attachment; filename="r.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOfCg==\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@c.example\r\nSubject: inner\r\n\r\ninner body\r\n--b1--\r\nepilogue\r\n',
  'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: =?ISO-2022-JP?B?GyRCJEskTyQkJGskWyRYJEgbKEI=?=\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\x1b$B$3$s$K$A$O\x1b(B\r\n',
];

export async function makeSeeds(): Promise<Seeds> {
  const g = groups.libsecp256k1;
  const now = new Date(Math.floor(Date.now() / 1000) * 1000); // certificate times are whole seconds
  const day = 86400000;
  const validity = { notBefore: new Date(now.getTime() - day), notAfter: new Date(now.getTime() + 30 * day) };
  const root = createRootCa({
    notBefore: new Date(now.getTime() - 2 * day),
    notAfter: new Date(now.getTime() + 60 * day),
    privateKey: generateP256KeyPair().privateKey,
  });
  const orgCa = createOrgCa(root, { ...validity, domains: ['a.example'], organisation: 'A', privateKey: generateP256KeyPair().privateKey });
  const sealPair = generateP256KeyPair();
  const sealCert = issueSealingCertificate(orgCa, { ...validity, domain: 'a.example', publicKey: sealPair.publicKey });
  const crl = createCrl(orgCa, {
    entries: [{ serial: sealCert.serial, revokedAt: now, reason: 'keyCompromise' }],
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + day),
    crlNumber: 1,
  });
  const user = generateEncryptionKeyPair(g, systemRng);
  const userKey = { keyId: 'b.example:v1', privateKey: user.privateKey };
  const messages: Uint8Array[] = [];
  const sealValues: Uint8Array[] = [];
  const certRef = certificateRef(sealCert.der);
  for (const plain of PLAIN) {
    const raw = Buffer.from(plain, 'latin1');
    messages.push(raw);
    const encrypted = await collect(
      encryptMessage(raw, [{ keyId: userKey.keyId, publicKey: user.publicKey }], { group: g, rng: systemRng, chunkSize: 1024 }),
    );
    const chain = await verifyChain(encrypted, { lookup: () => undefined, now: () => Date.now() });
    const sealed = await seal(encrypted, {
      domain: 'a.example',
      certRef,
      privateKey: sealPair.privateKey,
      now: () => Date.now(),
      verdicts: [{ name: 'dlp', result: 'pass' }],
      chain,
      trackingToken: new Uint8Array(64).fill(7),
    });
    messages.push(encrypted, sealed.message, requoted(encrypted));
    sealValues.push(Buffer.from(sealed.field.slice(sealed.field.indexOf(':') + 1), 'latin1'));
  }
  const bundle = JSON.stringify({
    payload: {
      v: 1,
      domain: 'a.example',
      id: 'bundle-0001',
      serial: 1,
      issued: now.toISOString(),
      sealingCertificates: [sealCert.pem],
      encryptionKeys: [],
      abuseContact: 'mailto:abuse@a.example',
    },
    signature: { alg: 'ES256', value: 'AAAA' },
  });
  const http = [
    '{"keyId":"a.example:v1","e":"AmZ","f":"A3x","target":{"kind":"user","address":"bob@a.example"}}',
    '{"address":"bob@a.example","code":"U-1","identityRef":"EMP-1","encryptionKeyId":"bob-1"}',
    '/v1/directory/users/bob%40a.example',
    '/v1/registry/users/%E2%82%AC/status?x=1#f',
  ].map((s) => new Uint8Array(Buffer.from(s, 'utf8')));
  return {
    messages,
    sealValues,
    certificates: [root.certificate.der, orgCa.certificate.der, sealCert.der],
    crls: [crl.der],
    bundles: [Buffer.from(bundle)],
    http,
    sealKey: { publicKey: sealPair.publicKey, domain: 'a.example' },
    userKey,
  };
}

const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** An encrypted message as a relay re-encoding its base64 body to quoted-printable leaves it (decryption reads both). */
function requoted(encrypted: Uint8Array): Uint8Array {
  const t = Buffer.from(encrypted).toString('latin1');
  const at = t.indexOf('\r\n\r\n') + 4;
  if (at < 4 || !t.slice(0, at).includes('Content-Transfer-Encoding: base64')) return encrypted;
  const qp = libqp.wrap(libqp.encode(Buffer.from(t.slice(at).replace(/\r\n/g, ''), 'base64')), 76);
  return new Uint8Array(
    Buffer.from(
      `${t.slice(0, at).replace('Content-Transfer-Encoding: base64', 'Content-Transfer-Encoding: quoted-printable')}${qp}\r\n`,
      'latin1',
    ),
  );
}

export function fuzzTargets(seeds: Seeds): FuzzTarget[] {
  const now = () => Date.now();
  const lookup = () => ({ publicKey: seeds.sealKey.publicKey, domain: seeds.sealKey.domain });
  const g = groups.libsecp256k1;
  return [
    {
      name: 'seal-tags',
      what: 'SSMAX-Seal and SSMAX-User-Signature tag lists (parseSeal, parseUserSignature), relaxed header canonicalisation',
      input: seeded(seeds.sealValues, 600),
      run: async (b) => {
        await refusalsOnly('seal-tags', () => parseSeal(text(b)));
        await refusalsOnly('seal-tags', () => parseUserSignature(text(b)));
        await neverThrows('seal-tags', () => canonicalizeRelaxed(`X${text(b)}`));
      },
    },
    {
      name: 'chain',
      what: 'chain verification of a whole message (verifyChain: never throws, always a result)',
      input: seeded(seeds.messages),
      run: (b) =>
        neverThrows('chain', async () => {
          const r = await verifyChain(b, { lookup, now });
          if (!['pass', 'fail', 'temperror', 'none'].includes(r.result)) throw new Error(`result ${String(r.result)}`);
        }),
    },
    {
      name: 'body-hash',
      what: 'reading a message and its structural body hash (readMessage)',
      input: seeded(seeds.messages),
      run: (b) => refusalsOnly('body-hash', () => readMessage(b)),
    },
    {
      name: 'envelope',
      what: 'encrypted-message format: capsule parsing, decryption, capsule replacement',
      input: seeded(seeds.messages),
      run: async (b) => {
        await refusalsOnly('envelope', () => listCapsules(b));
        await refusalsOnly('envelope', () => collect(decryptMessage(b, seeds.userKey, { group: g })));
        const capsules = await listCapsules(b).catch(() => undefined);
        if (capsules && capsules.length > 0) await refusalsOnly('envelope', () => collect(replaceCapsules(b, capsules)));
      },
    },
    {
      name: 'der',
      what: 'DER certificates and CRLs (parseCertificate, parseCrl), PEM armour',
      input: seeded([...seeds.certificates, ...seeds.crls]),
      run: async (b) => {
        await refusalsOnly('der', () => parseCertificate(b));
        await refusalsOnly('der', () => parseCrl(b));
        await refusalsOnly('der', () =>
          fromPemAll(
            `-----BEGIN CERTIFICATE-----\n${Buffer.from(b).toString('base64')}\n-----END CERTIFICATE-----\n${text(b)}`,
            'CERTIFICATE',
          ),
        );
      },
    },
    {
      name: 'bundle',
      what: 'organisation bundles (verifyBundle: never throws)',
      input: seeded(seeds.bundles),
      run: (b) =>
        neverThrows('bundle', () => {
          const r = verifyBundle(b, { domain: 'a.example', roots: [seeds.certificates[0]!], time: new Date() });
          if (typeof r.status !== 'string') throw new Error('no status');
        }),
    },
    {
      name: 'mime-extract',
      what: 'MIME text extraction for inspection (extractContent)',
      input: seeded(seeds.messages),
      run: (b) => refusalsOnly('mime-extract', () => extractContent(Buffer.from(b))),
    },
    {
      name: 'keyd-request',
      what: "keyd's request edge: request targets, path parameters, JSON bodies (pathOf, param, parseRequestBody, checkWellFormed)",
      input: seeded(seeds.http, 1000),
      run: async (b) => {
        const s = Buffer.from(b).toString('utf8');
        await refusalsOnly('keyd-request', () => pathOf(s));
        await refusalsOnly('keyd-request', () => param(s));
        await refusalsOnly('keyd-request', () => checkWellFormed(parseRequestBody(Buffer.from(b))));
      },
    },
  ];
}
