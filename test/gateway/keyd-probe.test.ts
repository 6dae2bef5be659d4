/**
 * The gateway's word about keyd at start (src/gateway/keyd-probe.ts). The
 * causes, in words, against real sockets: nothing listening, a TLS server
 * whose certificate is from a CA the gateway does not trust, a server that
 * does not speak TLS, one that never answers. Then a real Haraka with the
 * ssmax plugin and no keyd listening: its log has the one warning naming
 * keyd's URL and the cause; Haraka still starts, accepts connections, and
 * answers a message that needs keyd 451 4.7.5 as before.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type HarakaProcess, freePort, layoutHaraka, startHaraka } from '../../src/demo/haraka';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { KeydClient } from '../../src/keyd/client';
import { issueSealingCertificate } from '../../src/pki/issue';
import { privateKeyToPem } from '../../src/pki/keys';
import { keydFailureText, probeKeyd } from '../../src/gateway/keyd-probe';
import { type OrgFixture, makeOrgFixture } from '../support/org-fixture';
import { smtp, waitFor } from './network-fixture';

jest.setTimeout(90000);

let fx: OrgFixture;
beforeAll(() => {
  fx = makeOrgFixture({ domain: 'a.example' });
});

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

function clientFor(port: number, timeoutMs = 3000): KeydClient {
  return new KeydClient({
    url: `https://127.0.0.1:${port}`,
    servername: 'keyd.a.example',
    ca: fx.caPem,
    cert: fx.clients.gateway.cert,
    key: fx.clients.gateway.key,
    timeoutMs,
  });
}

async function causeAt(port: number, timeoutMs?: number): Promise<string> {
  const client = clientFor(port, timeoutMs);
  try {
    await client.call('GET', '/v1/health');
    throw new Error('keyd answered');
  } catch (err) {
    return keydFailureText(err);
  } finally {
    client.close();
  }
}

describe('the cause of a keyd that does not answer, in words', () => {
  test('nothing listening: connection refused', async () => {
    expect(await causeAt(await freePort())).toBe('connection refused: nothing listens there ([keyd] url) (ECONNREFUSED)');
  });

  test('a TLS server whose certificate is from a CA outside [keyd] ca: unknown CA', async () => {
    // a certificate of another organisation's CA (the fixture's "foreign" one), served as keyd's
    const server = createTlsServer({ cert: fx.clients.foreign.cert, key: fx.clients.foreign.key }, (s) => s.end());
    const port = await listen(server);
    try {
      expect(await causeAt(port)).toMatch(
        /^TLS: unknown CA: keyd's certificate does not chain to a certificate of \[keyd\] ca \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)$/,
      );
    } finally {
      await close(server);
    }
  });

  test('a server that does not speak TLS: named so', async () => {
    const held: Socket[] = [];
    const server = createServer((s: Socket) => {
      held.push(s);
      s.write('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    const port = await listen(server);
    try {
      expect(await causeAt(port)).toBe("TLS: the other end does not speak TLS (is [keyd] url keyd's port?) (EPROTO)");
    } finally {
      for (const s of held) s.destroy();
      await close(server);
    }
  });

  test('a server that never answers: timeout, with the time waited', async () => {
    const held: Socket[] = [];
    const server = createServer((s: Socket) => void held.push(s));
    const port = await listen(server);
    try {
      expect(await causeAt(port, 300)).toBe('timeout: keyd did not answer within 300 ms');
    } finally {
      for (const s of held) s.destroy();
      await close(server);
    }
  });

  test('probeKeyd: one warning naming the URL and the cause; never a rejection', async () => {
    const port = await freePort();
    const lines: { info: string[]; warn: string[] } = { info: [], warn: [] };
    const client = clientFor(port);
    try {
      await probeKeyd(() => client.call('GET', '/v1/health'), `https://127.0.0.1:${port}`, {
        info: (l) => lines.info.push(l),
        warn: (l) => lines.warn.push(l),
      });
    } finally {
      client.close();
    }
    expect(lines.info).toEqual([]);
    expect(lines.warn).toHaveLength(1);
    expect(lines.warn[0]).toBe(
      `ssmax: WARNING: keyd at https://127.0.0.1:${port} does not answer: connection refused: nothing listens there ([keyd] url) (ECONNREFUSED); until it does, mail that needs it is answered 451 4.7.5 and retried by its sender ([keyd] of ssmax.ini)`,
    );
  });
});

describe('a real Haraka with the ssmax plugin and no keyd listening', () => {
  let haraka: HarakaProcess | undefined;
  afterAll(async () => {
    await haraka?.stop();
  });

  test('logs the warning naming keyd and the cause at start; still accepts connections and answers 451 4.7.5', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssmax-keyd-probe-'));
    const keydPort = await freePort(); // nothing listens there
    const port = await freePort();
    const now = Date.now();
    const seal = generateP256KeyPair();
    const sealCert = issueSealingCertificate(fx.orgCa, {
      notBefore: new Date(now - 86400000),
      notAfter: new Date(now + 365 * 86400000),
      domain: 'a.example',
      host: 'mx.a.example',
      publicKey: seal.publicKey,
    });
    const pki = (f: string) => join(fx.dir, f);
    writeFileSync(pki('seal.cert.pem'), sealCert.pem, { mode: 0o600 });
    writeFileSync(pki('seal.key.pem'), privateKeyToPem(seal.privateKey), { mode: 0o600 });
    writeFileSync(pki('gateway.pem'), fx.clients.gateway.cert, { mode: 0o600 });
    writeFileSync(pki('gateway.key'), fx.clients.gateway.key, { mode: 0o600 });
    layoutHaraka(dir, {
      port,
      me: 'mx.a.example',
      plugins: ['ssmax'],
      files: {
        'ssmax.ini': [
          '[main]',
          'domain=a.example',
          '[keyd]',
          `url=https://127.0.0.1:${keydPort}`,
          'servername=keyd.a.example',
          `ca=${pki('org-ca.pem')},${pki('root.pem')}`,
          `cert=${pki('gateway.pem')}`,
          `key=${pki('gateway.key')}`,
          '[seal]',
          `cert=${pki('seal.cert.pem')}`,
          `key=${pki('seal.key.pem')}`,
          '[pki]',
          `roots=${pki('root.pem')}`,
          '[directory]',
          'dns=false',
          '[key_exchange]',
          'probe=false',
          '[delivery]',
          `host=127.0.0.1:${await freePort()}`,
          '',
        ].join('\n'),
      },
    });
    haraka = await startHaraka(dir, port, 30000);
    const h = haraka;
    const warning = `ssmax: WARNING: keyd at https://127.0.0.1:${keydPort} does not answer: connection refused: nothing listens there ([keyd] url) (ECONNREFUSED)`;
    await waitFor(
      () => h.logs().includes(warning),
      20000,
      () => h.logs().slice(-3000),
    );
    expect(
      h
        .logs()
        .split('\n')
        .filter((l) => l.includes('WARNING: keyd at')),
    ).toHaveLength(1);
    expect(h.logs()).not.toMatch(/keyd at \S+ answers/);
    // Haraka runs and takes connections; a message that needs keyd is answered 4xx as before
    expect(
      await smtp(
        port,
        'someone@elsewhere.example',
        ['dave@a.example'],
        'From: someone@elsewhere.example\r\nTo: dave@a.example\r\nSubject: hello\r\n\r\nHi.\r\n',
      ),
    ).toMatch(/^451 4\.7\.5 Key service unavailable/);
    expect(h.proc.exitCode).toBeNull();
  });
});
