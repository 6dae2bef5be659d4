/**
 * The publisher's HTTPS certificate chain. A TLS server must send its own
 * certificate followed by every intermediate up to (not necessarily
 * including) a root the client trusts; peers trust only the SSMAX root (or a
 * public root store), so a publisher certificate issued by the org CA must be
 * followed by the org CA's certificate, or peers fail with "unable to verify
 * the first certificate".
 *
 * `servedChain` checks the file once at start: every certificate is issued
 * (name and signature) by the one after it, and the last one is a trusted
 * root or is issued by one (the SSMAX roots of the configuration, or Node's
 * public root store for a Web PKI certificate). Otherwise it throws an error
 * naming the certificate whose issuer is missing, so the publisher refuses to
 * start rather than serve a chain peers cannot follow.
 */
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { pemTexts } from '../pki/pem';

function certificatesOf(text: string): string[] {
  return pemTexts(text, 'CERTIFICATE');
}

function issues(issuer: X509Certificate, cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function parse(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new Error(`${what} cannot be parsed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The PEM text to serve: the certificates of `text` (the file `file`), checked
 * to form a chain that ends at, or just below, one of `roots` (PEM) or a root
 * of Node's store. Throws an Error naming what is missing.
 */
export function servedChain(text: string, file: string, roots: readonly string[]): string {
  const blocks = certificatesOf(text);
  if (blocks.length === 0) throw new Error(`Cannot use TLS certificate "${file}": no PEM CERTIFICATE block`);
  const certs = blocks.map((b, i) => parse(b, `Cannot use TLS certificate "${file}": certificate ${i + 1}`));
  for (let i = 0; i + 1 < certs.length; i++) {
    const cert = certs[i] as X509Certificate;
    const next = certs[i + 1] as X509Certificate;
    if (!issues(next, cert)) {
      throw new Error(
        `Cannot use TLS certificate "${file}": certificate ${i + 1} ("${cert.subject.replace(/\n/g, ', ')}") is not issued by certificate ${i + 2} ("${next.subject.replace(/\n/g, ', ')}"); ` +
          "put the publisher's certificate first, then its issuer, then that one's issuer",
      );
    }
  }
  const anchors = [...roots.flatMap(certificatesOf), ...rootCertificates]
    .map((r) => {
      try {
        return new X509Certificate(r);
      } catch {
        return undefined;
      }
    })
    .filter((x): x is X509Certificate => x !== undefined);
  const last = certs[certs.length - 1] as X509Certificate;
  const anchored = anchors.some((a) => a.fingerprint256 === last.fingerprint256 || issues(a, last));
  if (!anchored) {
    const issuer = last.issuer.replace(/\n/g, ', ');
    throw new Error(
      `Cannot use TLS certificate "${file}": the chain is incomplete: the certificate of its issuer "${issuer}" is missing ` +
        `(it is neither in the file nor a trusted root); append it after "${last.subject.replace(/\n/g, ', ')}" ` +
        '(for a certificate of the org CA: the org CA certificate, [pki] org_ca_chain), or peers fail with "unable to verify the first certificate"',
    );
  }
  return blocks.join('');
}
