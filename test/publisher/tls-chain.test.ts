/**
 * The publisher serves its whole certificate chain (its own certificate, then
 * the org CA's), so a peer that trusts only the SSMAX root can connect; and it
 * refuses to start with a chain that stops short, naming the missing issuer.
 * Real processes: keyd (`ssmax keyd run`) and `ssmax publish`; the client is
 * Node's TLS with the root as its only CA, as a peer's directory is.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { join } from 'node:path';
import { servedChain } from '../../src/publisher/tls-chain';
import { type KeydProcess, startKeydProcess } from '../support/keyd-process';
import { type Org, makeOrg } from '../directory/fixtures';
import { type PublisherProcess, freePort, startPublisherProcess, writePublisherFiles, writePublisherIni } from './fixtures';

jest.setTimeout(60000);

const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');
const CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;

function cnOf(pem: string): string {
  return /CN=(.*)/.exec(new X509Certificate(pem).subject)?.[1] ?? '';
}

/** A TLS handshake trusting only `ca`; resolves with whether the chain verified, the error if not, and the chain the server sent. */
function handshake(port: number, servername: string, ca: string): Promise<{ authorized: boolean; error?: string; chain: string[] }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca: [ca], rejectUnauthorized: false }, () => {
      const chain: string[] = [];
      let cert = socket.getPeerCertificate(true);
      const seen = new Set<string>();
      while (cert && cert.fingerprint256 && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256);
        chain.push(cert.subject.CN as string);
        cert = cert.issuerCertificate;
      }
      const result = {
        authorized: socket.authorized,
        ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}),
        chain,
      };
      socket.end();
      resolve(result);
    });
    socket.on('error', reject);
  });
}

describe("the publisher's TLS certificate chain", () => {
  let a: Org;
  let keyd: KeydProcess;
  let pub: PublisherProcess | undefined;
  let iniFile: string;

  beforeAll(async () => {
    a = makeOrg('a.example');
    keyd = await startKeydProcess(a.fx.configFile);
    writePublisherFiles(a);
    iniFile = writePublisherIni(a, { keydPort: keyd.port, port: await freePort() });
  });
  afterAll(async () => {
    await pub?.stop();
    await keyd?.stop();
  });

  test('served whole: a client trusting only the SSMAX root verifies it (leaf, then the org CA)', async () => {
    expect(readFileSync(join(a.fx.dir, 'publisher.pem'), 'utf8').match(CERT_RE)).toHaveLength(2);
    pub = await startPublisherProcess(iniFile);
    const r = await handshake(pub.port, 'ssmax.a.example', a.fx.root.certificate.pem);
    expect(r.error).toBeUndefined();
    expect(r.authorized).toBe(true);
    expect(r.chain[0]).toBe('ssmax.a.example');
    expect(r.chain[1]).toBe(cnOf(a.fx.orgCa.certificate.pem));
    await pub.stop();
    pub = undefined;
  });

  test('the leaf alone: refuses to start (exit 78), naming the missing issuer, no stack trace; what a peer would have seen', async () => {
    const full = readFileSync(join(a.fx.dir, 'publisher.pem'), 'utf8');
    const leaf = (full.match(CERT_RE) as string[])[0] as string;
    // What a peer trusting only the root sees from a server sending the leaf alone:
    const bare = createServer({ cert: leaf, key: a.tls.key }, (sock) => sock.end());
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', () => r()));
    try {
      const seen = await handshake((bare.address() as AddressInfo).port, 'ssmax.a.example', a.fx.root.certificate.pem);
      expect(seen.authorized).toBe(false);
      expect(seen.error).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE'); // "unable to verify the first certificate"
    } finally {
      await new Promise((r) => bare.close(r));
    }
    writeFileSync(join(a.fx.dir, 'publisher-leaf.pem'), leaf);
    const leafIni = join(a.fx.dir, 'publisher-leaf.ini');
    writeFileSync(leafIni, readFileSync(iniFile, 'utf8').replace('cert=publisher.pem', 'cert=publisher-leaf.pem'));
    const r = spawnSync(process.execPath, [BIN, 'publish', '--config', leafIni], { encoding: 'utf8', timeout: 30000 });
    expect(r.status).toBe(78);
    const orgCaCn = cnOf(a.fx.orgCa.certificate.pem);
    expect(r.stderr).toMatch(
      /\[tls\] cert: Cannot use TLS certificate ".*publisher-leaf\.pem": the chain is incomplete: the certificate of its issuer ".*/,
    );
    expect(r.stderr).toContain(orgCaCn);
    expect(r.stderr).toMatch(/org_ca_chain/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).not.toMatch(/listening/);
  });

  test('servedChain: certificates out of order, an unrelated one, no certificate at all are refused; a chain ending at the root is kept whole', () => {
    const [leaf, orgCa] = a.tls.cert.match(CERT_RE) as string[];
    const root = a.fx.root.certificate.pem;
    expect(servedChain(`${leaf}${orgCa}`, 'f.pem', [root])).toBe(`${leaf}${orgCa}`);
    expect(servedChain(`${leaf}${orgCa}${root}`, 'f.pem', [root])).toBe(`${leaf}${orgCa}${root}`);
    expect(() => servedChain(`${orgCa}${leaf}`, 'f.pem', [root])).toThrow(/certificate 1 .* is not issued by certificate 2/);
    expect(() => servedChain(leaf as string, 'f.pem', [root])).toThrow(/the chain is incomplete: the certificate of its issuer/);
    const other = makeOrg('b.example');
    expect(() => servedChain(`${leaf}${orgCa}`, 'f.pem', [other.fx.root.certificate.pem])).toThrow(/the chain is incomplete/);
    expect(() => servedChain('not a certificate', 'f.pem', [root])).toThrow(/no PEM CERTIFICATE block/);
  });
});
