/**
 * The certificates work in a real mutual-TLS handshake (node:tls, i.e. OpenSSL),
 * as the key service will use them: the server reads the peer's role with
 * roleOf and validates the peer chain with validateCertificate.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { type PeerCertificate, type TLSSocket, connect, createServer } from 'node:tls';
import { roleOf } from '../../src/pki/certificate';
import { issueTlsCertificate } from '../../src/pki/issue';
import { generateP256KeyPair, privateKeyToPem } from '../../src/pki/keys';
import { ValidationCache, validateCertificate } from '../../src/pki/validate';
import { type World, crlFor, makeWorld } from './fixtures';

let w: World;
beforeAll(() => {
  w = makeWorld();
});

function tlsIdentity(role: 'keyd' | 'gateway' | 'admin', hosts: string[], commonName?: string) {
  const key = generateP256KeyPair();
  const now = new Date();
  const cert = issueTlsCertificate(w.orgA, {
    role,
    hosts,
    ...(commonName ? { commonName } : {}),
    publicKey: key.publicKey,
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + 86_400_000),
  });
  return { cert, key: privateKeyToPem(key.privateKey), chain: cert.pem + w.orgA.certificate.pem };
}

function chainOf(peer: PeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  let c: PeerCertificate | undefined = peer;
  while (c && c.raw && !out.some((r) => r.equals(c!.raw))) {
    out.push(c.raw);
    c = (c as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return out;
}

test('a gateway client and the keyd server authenticate each other; the server reads the role "gateway"', async () => {
  const server = tlsIdentity('keyd', ['keyd.a.example']);
  const client = tlsIdentity('gateway', ['mx.a.example']);
  const cache = new ValidationCache();
  // TLS needs the real clock; CRLs current now.
  const now = new Date();
  const crls = [
    crlFor(w.root, [], 5, new Date(now.getTime() - 3_600_000), new Date(now.getTime() + 86_400_000)),
    crlFor(w.orgA, [], 5, new Date(now.getTime() - 3_600_000), new Date(now.getTime() + 86_400_000)),
  ];
  const seen: { role: string | undefined; status: string }[] = [];
  const srv = createServer(
    { key: server.key, cert: server.chain, ca: w.root.certificate.pem, requestCert: true, rejectUnauthorized: true },
    (sock: TLSSocket) => {
      const [leaf, ...rest] = chainOf(sock.getPeerCertificate(true));
      const r = validateCertificate({
        leaf: leaf as Buffer,
        intermediates: rest,
        roots: [w.root.certificate],
        crls,
        use: 'tls-client',
        roles: ['gateway', 'inspector'],
        time: new Date(),
        cache,
      });
      seen.push({ role: roleOf(leaf as Buffer), status: r.status });
      sock.end('ok');
    },
  );
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  try {
    const sock = connect({
      host: '127.0.0.1',
      port,
      servername: 'keyd.a.example',
      key: client.key,
      cert: client.chain,
      ca: w.root.certificate.pem,
    });
    await once(sock, 'secureConnect');
    expect(sock.authorized).toBe(true);
    expect(roleOf(sock.getPeerCertificate().raw)).toBe('keyd');
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    await once(sock, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('ok');
  } finally {
    srv.close();
  }
  expect(seen).toHaveLength(1);
  expect(seen[0]?.role).toBe('gateway');
  expect(seen[0]?.status).toBe('valid');
});

test('an admin client certificate is refused as a TLS server by OpenSSL (no serverAuth), as validateCertificate refuses it', async () => {
  const bad = tlsIdentity('admin', [], 'op-1');
  const srv = createServer({ key: bad.key, cert: bad.chain }, (s) => s.end());
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  try {
    const sock = connect({ host: '127.0.0.1', port, ca: w.root.certificate.pem, checkServerIdentity: () => undefined });
    const [err] = (await once(sock, 'error')) as [Error & { code?: string }];
    expect(err.code).toBe('INVALID_PURPOSE');
    expect(
      validateCertificate({
        leaf: bad.cert,
        intermediates: [w.orgA.certificate],
        roots: [w.root.certificate],
        use: 'tls-server',
        time: new Date(),
        revocation: 'skip',
      }).status,
    ).toBe('wrong-usage');
  } finally {
    srv.close();
  }
});
