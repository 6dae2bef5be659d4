/**
 * Generator of the chain test vectors (docs/chain.md, "Test vectors"). Run once:
 *
 *   SSMAX_WRITE_VECTORS=1 npx jest test/vectors/chain/generate.test.ts
 *
 * It writes the MIME samples (mime/*.eml), the body hashes of the samples, and
 * verify-vectors for a user signature, seal i=1 and seal i=2 over i=1, under
 * the pinned keys of keys.json (created on the first run, then reused).
 * ECDSA signatures are randomised, so a rerun gives other `b=` values that
 * verify the same; everything else is deterministic. Without the variable the
 * generator is skipped; test/chain/vectors.test.ts checks the files.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateP256KeyPair, p256PrivateKeyFrom } from '../../../src/crypto/ecdsa';
import { readMessage } from '../../../src/chain/body-hash';
import { protectedHeaderBlock } from '../../../src/chain/canonicalize';
import { certificateRef } from '../../../src/chain/certificate-lookup';
import { bindRecipients } from '../../../src/chain/recipients';
import { seal } from '../../../src/chain/seal';
import { parseSeal, parseUserSignature, sealSigningInput, signedForm } from '../../../src/chain/tags';
import { signUser } from '../../../src/chain/user-signature';
import { verifyChain } from '../../../src/chain/verify-chain';
import { createPublicKey } from 'node:crypto';
import { encodeCharset } from '../../chain/mime-model';

const DIR = __dirname;
const NOW_MS = Date.UTC(2026, 10, 25, 12, 0, 0);
const now = () => NOW_MS;

const JAPANESE_TEXT = '山田様\r\n\r\n来週の会議の資料を添付します。\r\nご確認ください。\r\n\r\n佐藤';

function b64(bytes: Buffer): string {
  return (bytes.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

function japanese(charset: 'iso-2022-jp' | 'shift_jis' | 'euc-jp'): Buffer {
  const cte = charset === 'iso-2022-jp' ? '7bit' : charset === 'shift_jis' ? '8bit' : 'base64';
  const body = encodeCharset(JAPANESE_TEXT, charset);
  const text = cte === 'base64' ? Buffer.from(b64(body)) : body;
  return Buffer.concat([
    Buffer.from(
      [
        'From: Sato <sato@a.example>',
        'To: Yamada <yamada@b.example>',
        'Subject: =?ISO-2022-JP?B?GyRCMnE1RDtxTkEbKEI=?=',
        'Date: Wed, 25 Nov 2026 12:00:00 +0900',
        'Message-ID: <jp1@a.example>',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="jp-outer"',
        '',
        '--jp-outer',
        `Content-Type: text/plain; charset=${charset.toUpperCase()}`,
        `Content-Transfer-Encoding: ${cte}`,
        '',
        '',
      ].join('\r\n'),
      'latin1',
    ),
    text,
    Buffer.from(
      [
        '',
        '--jp-outer',
        'Content-Type: application/pdf',
        "Content-Disposition: attachment; filename*=utf-8''%E4%BC%9A%E8%AD%B0%E8%B3%87%E6%96%99.pdf",
        'Content-Transfer-Encoding: base64',
        '',
        'JVBERi0xLjQKJSBtZWV0aW5nCg==',
        '--jp-outer--',
        '',
      ].join('\r\n'),
      'latin1',
    ),
  ]);
}

const SAMPLES: Record<string, { description: string; bytes: () => Buffer }> = {
  'mixed-attachments.eml': {
    description: 'multipart/mixed: a quoted-printable text part, a PDF attachment and an inline PNG, both base64',
    bytes: () =>
      Buffer.from(
        [
          'From: Alice <alice@a.example>',
          'To: Bob <bob@b.example>',
          'Cc: Carol <carol@b.example>',
          'Subject: Quarterly figures',
          'Date: Wed, 25 Nov 2026 12:00:00 +0000',
          'Message-ID: <mixed1@a.example>',
          'MIME-Version: 1.0',
          'Content-Type: multipart/mixed; boundary="mixed-b"',
          '',
          'This is a multi-part message in MIME format.',
          '--mixed-b',
          'Content-Type: text/plain; charset=utf-8',
          'Content-Transfer-Encoding: quoted-printable',
          '',
          'Hello Bob,',
          '',
          'the figures are attached. Caf=C3=A9 at 10?',
          '--mixed-b',
          'Content-Type: application/pdf; name="figures.pdf"',
          'Content-Disposition: attachment; filename="figures.pdf"',
          'Content-Transfer-Encoding: base64',
          '',
          'JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK',
          '--mixed-b',
          'Content-Type: image/png',
          'Content-Disposition: inline; filename="dot.png"',
          'Content-ID: <dot@a.example>',
          'Content-Transfer-Encoding: base64',
          '',
          'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
          '--mixed-b--',
          '',
        ].join('\r\n'),
        'latin1',
      ),
  },
  'alternative.eml': {
    description: 'multipart/alternative: text/plain in 7bit and text/html in quoted-printable',
    bytes: () =>
      Buffer.from(
        [
          'From: Alice <alice@a.example>',
          'To: Bob <bob@b.example>',
          'Subject: Lunch',
          'Date: Wed, 25 Nov 2026 12:00:00 +0000',
          'Message-ID: <alt1@a.example>',
          'MIME-Version: 1.0',
          'Content-Type: multipart/alternative; boundary="alt-b"',
          '',
          '--alt-b',
          'Content-Type: text/plain; charset=us-ascii',
          'Content-Transfer-Encoding: 7bit',
          '',
          'Lunch at noon?',
          '--alt-b',
          'Content-Type: text/html; charset=utf-8',
          'Content-Transfer-Encoding: quoted-printable',
          '',
          '<p>Lunch at <b>noon</b>? Bient=C3=B4t=',
          '!</p>',
          '--alt-b--',
          '',
        ].join('\r\n'),
        'latin1',
      ),
  },
  'nested-rfc822.eml': {
    description: 'multipart/mixed with a forwarded message/rfc822 that is itself multipart/alternative',
    bytes: () =>
      Buffer.from(
        [
          'From: Alice <alice@a.example>',
          'To: Bob <bob@b.example>',
          'Subject: Fwd: Lunch',
          'Date: Wed, 25 Nov 2026 12:05:00 +0000',
          'Message-ID: <fwd1@a.example>',
          'MIME-Version: 1.0',
          'Content-Type: multipart/mixed; boundary="fwd-b"',
          '',
          '--fwd-b',
          'Content-Type: text/plain; charset=utf-8',
          '',
          'See below.',
          '--fwd-b',
          'Content-Type: message/rfc822',
          'Content-Disposition: attachment; filename="lunch.eml"',
          '',
          'From: Carol <carol@c.example>',
          'To: Alice <alice@a.example>',
          'Subject: =?utf-8?Q?D=C3=A9jeuner?=',
          'Date: Tue, 24 Nov 2026 09:00:00 +0100',
          'Message-ID: <inner1@c.example>',
          'MIME-Version: 1.0',
          'Content-Type: multipart/alternative; boundary="inner-b"',
          '',
          '--inner-b',
          'Content-Type: text/plain; charset=iso-8859-1',
          'Content-Transfer-Encoding: quoted-printable',
          '',
          'D=E9jeuner =E0 midi ?',
          '--inner-b',
          'Content-Type: text/html; charset=utf-8',
          'Content-Transfer-Encoding: base64',
          '',
          Buffer.from('<p>Déjeuner à midi ?</p>').toString('base64'),
          '--inner-b--',
          '',
          '--fwd-b--',
          '',
        ].join('\r\n'),
        'latin1',
      ),
  },
  'japanese-iso-2022-jp.eml': { description: 'Japanese text in ISO-2022-JP (7bit) with a Japanese attachment name', bytes: () => japanese('iso-2022-jp') },
  'japanese-shift_jis.eml': { description: 'the same Japanese text in Shift_JIS (8bit)', bytes: () => japanese('shift_jis') },
  'japanese-euc-jp.eml': { description: 'the same Japanese text in EUC-JP (base64)', bytes: () => japanese('euc-jp') },
  'encrypted.eml': {
    description: 'an encrypted message: two SSMAX-Capsule headers and an application/ssmax-encrypted leaf',
    bytes: () =>
      Buffer.from(
        [
          'From: Alice <alice@a.example>',
          'To: Bob <bob@b.example>',
          'Subject: Contract',
          'Date: Wed, 25 Nov 2026 12:00:00 +0000',
          'Message-ID: <enc1@a.example>',
          'MIME-Version: 1.0',
          'SSMAX-Version: 1',
          'SSMAX-Capsule: k=b.example/enc-v3; e=AqXo1y0wUlQBhD2fiN8Aa1cO9oJ6b3l8KxW3t1m3Qm7E; f=A0c0yq3rX9m3yTjz4xS2oU0b4o0vP4Xr9wZ3mQ8a1b2c',
          'SSMAX-Capsule: k=a.example/enc-v7; e=A5mWb2xq3rX9m3yTjz4xS2oU0b4o0vP4Xr9wZ3mQ8a1b; f=AqXo1y0wUlQBhD2fiN8Aa1cO9oJ6b3l8KxW3t1m3Qm7F',
          'Content-Type: application/ssmax-encrypted; v=1',
          'Content-Transfer-Encoding: base64',
          '',
          b64(Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff))),
          '',
        ].join('\r\n'),
        'latin1',
      ),
  },
};

const run = process.env.SSMAX_WRITE_VECTORS === '1' ? it : it.skip;

run('writes the chain test vectors', async () => {
  mkdirSync(join(DIR, 'mime'), { recursive: true });
  const keysPath = join(DIR, 'keys.json');
  if (!existsSync(keysPath)) {
    const pem = (pair: ReturnType<typeof generateP256KeyPair>) => pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    writeFileSync(keysPath, `${JSON.stringify({ description: 'Pinned ECDSA P-256 test keys (PKCS#8 PEM). Test use only.', user: pem(generateP256KeyPair()), orgA: pem(generateP256KeyPair()), orgB: pem(generateP256KeyPair()) }, null, 2)}\n`);
  }
  const keys = JSON.parse(readFileSync(keysPath, 'utf-8')) as { user: string; orgA: string; orgB: string };
  const spki = (pem: string) => createPublicKey(p256PrivateKeyFrom(pem)).export({ format: 'pem', type: 'spki' }).toString();

  const bodyHashes = [];
  for (const [file, sample] of Object.entries(SAMPLES)) {
    const bytes = sample.bytes();
    writeFileSync(join(DIR, 'mime', file), bytes);
    const read = await readMessage(bytes);
    bodyHashes.push({ file: `mime/${file}`, description: sample.description, bodyHash: read.bodyHash, structure: read.structure });
  }
  writeFileSync(join(DIR, 'body-hash.json'), `${JSON.stringify({ description: 'Structural body hash (bh=) of MIME samples; the three Japanese samples must agree', vectors: bodyHashes }, null, 2)}\n`);

  // Stand-ins for SHA-256 of certificate DERs: X.509 is src/pki's business, not this format's.
  const userCertRef = certificateRef(Buffer.from('user certificate alice@a.example'));
  const orgACertRef = certificateRef(Buffer.from('sealing certificate a.example'));
  const orgBCertRef = certificateRef(Buffer.from('sealing certificate b.example'));

  // User signature over the mixed sample.
  const mixed = SAMPLES['mixed-attachments.eml']?.bytes() ?? Buffer.alloc(0);
  const user = await signUser(mixed, { signer: 'alice@a.example', certRef: userCertRef, privateKey: p256PrivateKeyFrom(keys.user), now });
  const userFields = parseUserSignature(user.field.slice(user.field.indexOf(':') + 1));
  const mixedRead = await readMessage(mixed);
  writeFileSync(
    join(DIR, 'user-signature.json'),
    `${JSON.stringify(
      {
        description: 'SSMAX-User-Signature over mime/mixed-attachments.eml (prepend `field` + CRLF to the file to get the signed message)',
        message: 'mime/mixed-attachments.eml',
        publicKey: spki(keys.user),
        certRef: userCertRef,
        certificateAddresses: ['alice@a.example'],
        nowMs: NOW_MS,
        field: user.field,
        signedForm: signedForm('user', userFields.tags, true),
        protectedHeaderBlock: protectedHeaderBlock(mixedRead.headers, userFields.signedHeaders).toString('latin1'),
        headerHash: userFields.headerHash,
        bodyHash: userFields.bodyHash,
      },
      null,
      2,
    )}\n`,
  );

  // Seal i=1 over the encrypted sample, then seal i=2 over it.
  const encrypted = SAMPLES['encrypted.eml']?.bytes() ?? Buffer.alloc(0);
  const lookup = (r: { certRef: string }) =>
    r.certRef === orgACertRef ? { publicKey: createPublicKey(p256PrivateKeyFrom(keys.orgA)), domain: 'a.example' } : r.certRef === orgBCertRef ? { publicKey: createPublicKey(p256PrivateKeyFrom(keys.orgB)), domain: 'b.example' } : undefined;
  const trackingToken = Buffer.from('b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4', 'hex');
  // recipient binding (docs/chain.md): a pinned key K, so that rc= and the field are reproducible
  const recipientKey = Buffer.alloc(32, 0x5a);
  const binding = bindRecipients(['bob@b.example', 'erin@b.example'], recipientKey);
  const first = await seal(encrypted, { domain: 'a.example', certRef: orgACertRef, privateKey: p256PrivateKeyFrom(keys.orgA), now, verdicts: [{ name: 'dlp', result: 'pass' }], trackingToken, recipientCommitment: binding.commitment, chain: await verifyChain(encrypted, { lookup, now }) });
  const firstFields = parseSeal(first.field.slice(first.field.indexOf(':') + 1));
  const encRead = await readMessage(encrypted);
  writeFileSync(
    join(DIR, 'seal-1.json'),
    `${JSON.stringify(
      {
        description: 'SSMAX-Seal i=1 over mime/encrypted.eml (prepend `field` + CRLF to the file to get the sealed message)',
        message: 'mime/encrypted.eml',
        publicKey: spki(keys.orgA),
        certRef: orgACertRef,
        domain: 'a.example',
        nowMs: NOW_MS,
        trackingToken: trackingToken.toString('base64url'),
        recipients: { addresses: ['bob@b.example', 'erin@b.example'], key: recipientKey.toString('base64url'), field: binding.field, commitment: binding.commitment },
        field: first.field,
        signingInput: sealSigningInput([], firstFields.tags).toString('latin1'),
        protectedHeaderBlock: protectedHeaderBlock(encRead.headers, firstFields.signedHeaders).toString('latin1'),
        headerHash: firstFields.headerHash,
        bodyHash: firstFields.bodyHash,
        summary: (await verifyChain(first.message, { lookup, now })).summary,
      },
      null,
      2,
    )}\n`,
  );
  const second = await seal(first.message, { domain: 'b.example', certRef: orgBCertRef, privateKey: p256PrivateKeyFrom(keys.orgB), now, verdicts: [{ name: 'av', result: 'pass' }, { name: 'dlp', result: 'no-consent' }], chain: await verifyChain(first.message, { lookup, now }) });
  const secondFields = parseSeal(second.field.slice(second.field.indexOf(':') + 1));
  writeFileSync(
    join(DIR, 'seal-2.json'),
    `${JSON.stringify(
      {
        description: 'SSMAX-Seal i=2 over seal-1.json: prepend seal-1 `field` + CRLF, then this `field` + CRLF, to mime/encrypted.eml',
        message: 'mime/encrypted.eml',
        publicKey: spki(keys.orgB),
        certRef: orgBCertRef,
        domain: 'b.example',
        nowMs: NOW_MS,
        field: second.field,
        signingInput: sealSigningInput([firstFields], secondFields.tags).toString('latin1'),
        headerHash: secondFields.headerHash,
        bodyHash: secondFields.bodyHash,
        summary: (await verifyChain(second.message, { lookup, now })).summary,
      },
      null,
      2,
    )}\n`,
  );
});
