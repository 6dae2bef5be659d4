/**
 * Test fixtures for the authentication chain: keys, a declarative certificate
 * directory (counting its calls, mailauth-style), a fixed clock and messages.
 */
import { createHash } from 'node:crypto';
import { generateP256KeyPair, type P256KeyPair } from '../../src/crypto/ecdsa';
import type { CertificateLookup, CertificateRequest, SignerCertificate } from '../../src/chain/certificate-lookup';

export const NOW_MS = Date.UTC(2026, 10, 25, 12, 0, 0);
export const now = (): number => NOW_MS;

export interface Party {
  readonly keys: P256KeyPair;
  readonly certRef: string;
  readonly certificate: SignerCertificate;
}

function ref(label: string): string {
  // Stands in for SHA-256 of a certificate DER (test certificates are not X.509 here).
  return createHash('sha256').update(label).digest('base64url');
}

export function makeUser(address: string): Party {
  const keys = generateP256KeyPair();
  return { keys, certRef: ref(`user:${address}`), certificate: { publicKey: keys.publicKey, addresses: [address] } };
}

export function makeOrg(domain: string): Party {
  const keys = generateP256KeyPair();
  return { keys, certRef: ref(`org:${domain}:${Math.random()}`), certificate: { publicKey: keys.publicKey, domain } };
}

export interface Directory {
  readonly lookup: CertificateLookup;
  readonly calls: CertificateRequest[];
}

/** A lookup over a fixed set of parties, recording every request. */
export function directory(...parties: Party[]): Directory {
  const calls: CertificateRequest[] = [];
  const byRef = new Map(parties.map((p) => [p.certRef, p.certificate]));
  return {
    calls,
    lookup: (request) => {
      calls.push(request);
      return byRef.get(request.certRef);
    },
  };
}

export const ALICE = 'alice@a.example';
export const BOB = 'bob@b.example';

/** A small multipart message with a text part and an attachment, CRLF line ends. */
export function sampleMessage(extraHeaders = ''): Buffer {
  return Buffer.from(
    [
      `From: Alice <${ALICE}>`,
      `To: Bob <${BOB}>`,
      'Subject: Quarterly figures',
      'Date: Wed, 25 Nov 2026 12:00:00 +0000',
      'Message-ID: <m1@a.example>',
      'MIME-Version: 1.0',
      ...(extraHeaders ? [extraHeaders] : []),
      'Content-Type: multipart/mixed; boundary="outer"',
      '',
      '--outer',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Hello Bob,',
      'the figures are attached. Caf=C3=A9.',
      '--outer',
      'Content-Type: application/pdf; name="figures.pdf"',
      'Content-Disposition: attachment; filename="figures.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      'JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK',
      '--outer--',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

export const TRACKING_TOKEN = new Uint8Array(Buffer.from('opaque-aead-tracking-token-0123456789'));
