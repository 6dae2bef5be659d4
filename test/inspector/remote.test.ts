/**
 * Remote inspection (issue 8): both organisations run inspection in a
 * separate inspector process (`ssmax inspector run`) with its own inspector
 * certificate; the gateways ([inspection] mode=remote) hold no inspector
 * credentials and call it over mutual TLS with their gateway certificate.
 * Real Haraka, real keyd over mTLS, a real clamd with a generated signature
 * database.
 */
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { main } from '../../src/cli/main';
import { freePort } from '../../src/demo/haraka';
import { type Network, type OrgSpec, startNetwork } from '../../src/demo/network';
import { type ClamdProcess, EICAR, startClamd } from '../../src/inspect/clamd-process';
import { queuedCopies } from '../../src/gateway/queue-reconcile';
import { QuarantineStore, RELEASE_HEADER } from '../../src/inspect/quarantine';
import { ReinjectError, reinject } from '../../src/mail/release';
import { roleOf } from '../../src/pki/certificate';
import { createCrl, parseCrl } from '../../src/pki/crl';
import { issueTlsCredentials } from '../../src/pki/tls-credentials';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { filesUnder, smtp, waitFor } from '../gateway/network-fixture';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { encryptToOrg } from '../../src/inspect/engine';
import { setupGateway } from '../../src/gateway/setup';
import { releaseMarker } from '../../src/inspect/quarantine';
import { INDIVIDUALS, arrivals, consentCases, lastVerdicts, mail, withAttachment } from './cases';

jest.setTimeout(240000);

let net: Network;
let clamd: ClamdProcess;
let seal: ReturnType<typeof arrivals>;
/** x.test: a plain host without SSMAX on loopback (a.example routes it here), recording what it receives. */
let plainHost: SMTPServer | undefined;
const plainReceived: string[] = [];
const MARKER = 'Lunch-on-Friday-7f3e9a';
const dlpIni = `${readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8')}\n[secret]\ntype=keyword\nwords=top secret\naction=quarantine\n`;

beforeAll(async () => {
  plainHost = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        plainReceived.push(Buffer.concat(chunks).toString('latin1'));
        callback();
      });
    },
  });
  await new Promise<void>((r) => plainHost!.listen(0, '127.0.0.1', r));
  const plainPort = (plainHost.server.address() as AddressInfo).port;
  const clamdDir = mkdtempSync(join(tmpdir(), 'ssmax-ins-clamd-'));
  clamd = await startClamd(clamdDir, await freePort());
  const base = mkdtempSync(join(tmpdir(), 'ssmax-ins-'));
  const crl = (domain: string, name: string) => join(base, domain, 'pki', name);
  const specs: OrgSpec[] = [
    {
      domain: 'a.example',
      inspector: { inspectIni: '[dlp]\nenabled=true\n', dlpIni },
      gatewayIni: ['[routes]', `x.test=127.0.0.1:${plainPort}`],
      users: [
        { address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' },
        { address: 'dave@a.example', client: 'plain', password: 'pw-dave' },
        ...INDIVIDUALS['a.example']!,
      ],
    },
    {
      domain: 'b.example',
      inspector: {
        inspectIni: `[av]\nenabled=true\nclamd=127.0.0.1:${clamd.port}\ntimeout_ms=3000\nclamd_config=${clamd.conf}\n`,
        // a.example's CRL too, so that a.example's (unrevoked) gateway certificate gets past revocation to the issuer check
        extraIni: [
          '[pki]',
          `crls=${crl('b.example', 'org-ca.crl.pem')},${crl('b.example', 'root.crl.pem')},${crl('a.example', 'org-ca.crl.pem')}`,
        ],
      },
      users: [{ address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' }, ...INDIVIDUALS['b.example']!],
    },
  ];
  net = await startNetwork(base, specs);
  seal = arrivals(net, 'ssmax-state-remote-test');
});
afterAll(async () => {
  await seal?.close();
  await net?.stop();
  await clamd?.stop();
  await new Promise<void>((r) => (plainHost ? plainHost.close(() => r()) : r()));
});

const A = () => net.org('a.example');
const B = () => net.org('b.example');
/** Whether a.example's Haraka queue holds a copy for bob@b.example: a held or refused submission has none; a delivered one leaves it. */
const queuedForBob = () => queuedCopies(join(A().harakaDir, 'queue')).some((c) => c.rcpts.includes('bob@b.example'));

async function aliceSends(body: string): Promise<string> {
  const alice = loadUserProfile(A().profiles['alice@a.example']!);
  const encrypted = await signAndEncrypt(alice, mail('alice@a.example', 'bob@b.example', body), { now: new Date() });
  try {
    return (await submitMessage(alice, encrypted, { to: ['bob@b.example'] })).response;
  } catch (err) {
    return (err as Error).message;
  }
}

/** How many messages a.example's inspector holds in its quarantine (read beside the running inspector, as the console does). */
function heldInInspector(): number {
  const store = new QuarantineStore(join(A().inspectorDir, 'state', 'quarantine'));
  try {
    return store.heldCount();
  } finally {
    void store.close();
  }
}

/** GET /v1/health at b.example's inspector with a client certificate; the status, or the TLS failure. */
function health(cert: { cert: string; key: string } | undefined): Promise<{ status: number; body: string } | { error: string }> {
  const fx = B().fx;
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: B().ports.inspector,
        path: '/v1/health',
        method: 'GET',
        servername: 'inspect.b.example',
        ca: fx.caPem,
        ...(cert ? { cert: cert.cert, key: cert.key } : {}),
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
        res.on('error', (err) => resolve({ error: err.message }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

describe('the gateways in remote mode', () => {
  test('hold no inspector credentials: ssmax.ini names none, the gateway certificate is the only one, and no inspector key is in the Haraka folder', () => {
    for (const org of [A(), B()]) {
      const ini = parse(readFileSync(join(org.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, string>>;
      expect(ini.inspection).toMatchObject({ mode: 'remote', inspector_servername: `inspect.${org.domain}` });
      expect(Object.keys(ini.keyd!).filter((k) => k.startsWith('inspector'))).toEqual([]);
      expect(roleOf(readFileSync(ini.keyd!.cert!, 'utf8'))).toBe('gateway');
      const inspectorKey = org.fx.clients.inspector.key.trim();
      expect(filesUnder(org.harakaDir).filter((f) => f.bytes.toString('latin1').includes(inspectorKey))).toEqual([]);
    }
  });
});

describe('DLP at a.example by its inspector process', () => {
  test('an encrypted message carrying a card number is rejected 5xx naming the rule, never the number', async () => {
    const r = await aliceSends('Please charge 4111 1111 1111 1111 for the order.\r\n');
    expect(r).toMatch(/550 5\.7\.1 Message refused by a data-loss prevention rule: rule "payment-cards"/);
    expect(r).not.toMatch(/4111/);
  });

  test('a plaintext submission (plain client) travels to the inspector encrypted and is rejected the same', async () => {
    const r = await smtp(
      A().ports.smtp,
      'dave@a.example',
      ['bob@b.example'],
      mail('dave@a.example', 'bob@b.example', 'Card 4111-1111-1111-1111\r\n'),
      { user: 'dave@a.example', pass: 'pw-dave' },
    );
    expect(r).toMatch(/^550 5\.7\.1 .*rule "payment-cards"/);
  });

  test('a clean message passes: the seals say dlp=pass at a.example and av=pass at b.example', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    expect(await aliceSends(`${MARKER}?\r\n`)).toMatch(/^250 /);
    await waitFor(() => B().mailbox.for('bob@b.example').length > before);
    const got = await lastVerdicts(net, 'bob@b.example');
    expect(got.plaintext).toContain(MARKER);
    expect(got.verdicts).toEqual(['dlp:pass,e2e:pass', 'av:pass,e2e:pass']);
  });

  test("a quarantine rule: held encrypted in the inspector's store; released, delivered once and not inspected again", async () => {
    const before = B().mailbox.for('bob@b.example').length;
    const reply = await aliceSends('This is top secret.\r\n');
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
    expect(id).toBeDefined();
    const qdir = join(A().inspectorDir, 'state', 'quarantine');
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    expect(await main(['quarantine', 'list', '--state', qdir], io)).toBe(0);
    expect(out.join('\n')).toMatch(new RegExp(`${id}  .*outbound  held  secret  alice@a\\.example  bob@b\\.example`));
    expect(queuedForBob()).toBe(false); // held: not queued, so nothing can be relayed
    expect(B().mailbox.for('bob@b.example').length).toBe(before);
    const pw = join(A().inspectorDir, 'pw-alice');
    writeFileSync(pw, 'pw-alice\n');
    const store = new QuarantineStore(qdir);
    const kept = store.get(id!)!;
    await store.close();
    expect(
      await main(
        [
          'quarantine',
          'release',
          id!,
          '--state',
          qdir,
          '--smtp',
          `127.0.0.1:${A().ports.smtp}`,
          '--user',
          'alice@a.example',
          '--password-file',
          pw,
        ],
        io,
      ),
    ).toBe(0);
    await waitFor(() => B().mailbox.for('bob@b.example').length > before);
    await waitFor(() => !queuedForBob(), 30000); // b.example stores a copy before it answers; then a.example's queue lets it go
    expect(B().mailbox.for('bob@b.example').length).toBe(before + 1);
    const got = await lastVerdicts(net, 'bob@b.example');
    expect(got.plaintext).toContain('top secret');
    expect(got.verdicts[0]).toBe('dlp:none,e2e:pass');
    // the release was honoured once and ended: the entry is gone
    out.length = 0;
    expect(await main(['quarantine', 'list', '--state', qdir], io)).toBe(0);
    expect(out.join('\n')).not.toContain(id!);
    // a late copy of a release that is no longer current (its token is not the store's): the inspector refuses it, and the
    // gateway passes its final answer on (550 5.7.1), not 4xx for ever
    const late = await reinject(
      kept,
      RELEASE_HEADER,
      { host: '127.0.0.1', port: A().ports.smtp, user: 'alice@a.example', password: 'pw-alice' },
      `${id!} ${'0'.repeat(24)}`,
    ).catch((e: unknown) => e as Error);
    expect(late).toBeInstanceOf(ReinjectError);
    expect((late as Error).message).toMatch(/550 5\.7\.1 Release field not honoured/);
    expect(queuedForBob()).toBe(false); // refused: not queued, so nothing more can be relayed
    expect(B().mailbox.for('bob@b.example').length).toBe(before + 1);
  });

  test("a plain client's submission to a domain without SSMAX held by the inspector: released, it goes out in clear as the client sent it, once (it was 550 encryptedNoPeer at every release)", async () => {
    const raw = Buffer.from(
      `From: dave@a.example\r\nTo: someone@x.test\r\nSubject: plain held remote\r\nMessage-ID: <phr-${Date.now().toString(36)}@a.example>\r\n` +
        'Date: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is top secret, for x.test: REMOTE-WRAPPED-1.\r\n',
    );
    const reply = await smtp(A().ports.smtp, 'dave@a.example', ['someone@x.test'], raw, { user: 'dave@a.example', pass: 'pw-dave' });
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
    expect(id).toBeDefined();
    expect(plainReceived.filter((m) => m.includes('REMOTE-WRAPPED-1'))).toHaveLength(0);
    const qdir = join(A().inspectorDir, 'state', 'quarantine');
    const pw = join(A().inspectorDir, 'pw-dave');
    writeFileSync(pw, 'pw-dave\n');
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    const code = await main(
      [
        'quarantine',
        'release',
        id!,
        '--state',
        qdir,
        '--smtp',
        `127.0.0.1:${A().ports.smtp}`,
        '--user',
        'dave@a.example',
        '--password-file',
        pw,
      ],
      io,
    );
    expect({ code, out: out.join('\n') }).toEqual({
      code: 0,
      out: expect.stringMatching(/^released q-[0-9a-z-]+: 250 .*transparent mode/) as string,
    });
    await waitFor(() => plainReceived.some((m) => m.includes('REMOTE-WRAPPED-1')), 30000);
    const got = plainReceived.filter((m) => m.includes('REMOTE-WRAPPED-1'));
    expect(got).toHaveLength(1);
    expect(got[0]).toContain('This is top secret, for x.test: REMOTE-WRAPPED-1.'); // in clear, as sent: not the held ciphertext
    expect(got[0]).not.toMatch(/^SSMAX-Capsule:/im);
    expect(got[0]).not.toMatch(new RegExp(`^${RELEASE_HEADER}:`, 'im'));
    // the release was honoured once and ended
    const store = new QuarantineStore(qdir);
    try {
      expect(store.get(id!)).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  test('a release of such an entry that sends another ciphertext to the organisation: the inspector opens its held entry, never what the release sent', async () => {
    const raw = Buffer.from(
      `From: dave@a.example\r\nTo: someone@x.test\r\nSubject: plain held remote 2\r\nMessage-ID: <phr2-${Date.now().toString(36)}@a.example>\r\n` +
        'Date: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHeld text, top secret: REMOTE-WRAPPED-2.\r\n',
    );
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(
      await smtp(A().ports.smtp, 'dave@a.example', ['someone@x.test'], raw, { user: 'dave@a.example', pass: 'pw-dave' }),
    )?.[1];
    expect(id).toBeDefined();
    // another message encrypted to a.example's key (an SSMAX client's, another held entry), dressed as dave's
    const ini = parse(readFileSync(join(A().harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    const gwA = setupGateway(ini, A().harakaDir, () => undefined, 'ssmax-state-forged-remote-release');
    let other: Buffer;
    try {
      other = await encryptToOrg(
        gwA.deps.keyd,
        gwA.deps.group,
        Buffer.from(
          'From: dave@a.example\r\nTo: someone@x.test\r\nSubject: other\r\nMessage-ID: <other-r@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\n' +
            'MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nALICE-PRIVATE-REMOTE\r\n',
        ),
      );
    } finally {
      await gwA.close();
    }
    const store = new QuarantineStore(join(A().inspectorDir, 'state', 'quarantine'));
    try {
      const entry = (await store.release(id!, Date.now(), 30000))!;
      const via = { host: '127.0.0.1', port: A().ports.smtp, user: 'dave@a.example', password: 'pw-dave' };
      await reinject({ ...entry, message: other }, RELEASE_HEADER, via, releaseMarker(entry)).catch(() => undefined);
      await waitFor(() => plainReceived.some((m) => m.includes('REMOTE-WRAPPED-2')), 30000);
      expect(plainReceived.some((m) => m.includes('ALICE-PRIVATE-REMOTE'))).toBe(false); // never opened and sent out in clear
      expect(plainReceived.filter((m) => m.includes('REMOTE-WRAPPED-2'))).toHaveLength(1); // the held entry's own text went, once
    } finally {
      await store.close();
    }
  });

  test("a sender's retry of a message the inspector holds already is answered with the entry it has: held once", async () => {
    const raw = Buffer.from(
      `From: dave@a.example\r\nTo: someone@x.test\r\nSubject: retried remote\r\nMessage-ID: <retry-r-${Date.now().toString(36)}@a.example>\r\n` +
        'Date: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTop secret, sent twice: RETRY-R.\r\n',
    );
    const before = heldInInspector();
    const heldAs = (reply: string) => /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
    const send = () => smtp(A().ports.smtp, 'dave@a.example', ['someone@x.test'], raw, { user: 'dave@a.example', pass: 'pw-dave' });
    const first = heldAs(await send());
    expect(first).toBeDefined();
    expect(heldAs(await send())).toBe(first);
    expect(heldInInspector()).toBe(before + 1);
  });

  test('an encrypted message whose own header hides a field behind a bare CR: the same 550 5.6.0 as inline, not 451 at every retry', async () => {
    const alice = loadUserProfile(A().profiles['alice@a.example']!);
    const original = Buffer.from(
      mail('alice@a.example', 'bob@b.example', 'inner bare CR\r\n')
        .toString('latin1')
        .replace('Subject:', 'X-Pad: x\rReply-To: pay@evil.example\r\nSubject:'),
      'latin1',
    );
    const encrypted = await signAndEncrypt(alice, original, { now: new Date() });
    const reply = await submitMessage(alice, encrypted, { to: ['bob@b.example'] }).then(
      (r) => r.response,
      (err: unknown) => (err as Error).message,
    );
    expect(reply).toMatch(/550 5\.6\.0 Bare CR in the message .*in the encrypted message/); // before: 451 4.7.5 Inspection unavailable
    expect(queuedForBob()).toBe(false);
  });

  // A message that ALONE is over a byte cap can never be held: this test asserted 4xx 4.3.1 before the permanent and the
  // temporary case were told apart; it is refused for good now, as inline.
  test("a message alone over the inspector's quarantine cap ([quarantine] max_bytes): the gateway answers the same 5xx 5.3.4 as inline; nothing held, nothing relayed", async () => {
    const ini = join(A().inspectorDir, 'ssmax-inspect.ini');
    const shipped = readFileSync(ini, 'utf8');
    const before = heldInInspector();
    writeFileSync(ini, `${shipped}\n[quarantine]\nmax_bytes=100\n`);
    await A().restartInspector();
    try {
      const reply = await aliceSends('This is top secret.\r\n');
      expect(reply).toMatch(
        /55\d 5\.3\.4 Message too large to be held: the message takes \d+ bytes held \(message and record\), over \[quarantine\] max_bytes=100, the most held in all/,
      );
      expect(heldInInspector()).toBe(before);
      expect(queuedForBob()).toBe(false);
    } finally {
      writeFileSync(ini, shipped);
      await A().restartInspector();
    }
  });

  test("the inspector's quarantine at its cap of messages ([quarantine] max_entries): the gateway answers the same 4xx 4.3.1 as inline; nothing held, nothing relayed", async () => {
    const ini = join(A().inspectorDir, 'ssmax-inspect.ini');
    const shipped = readFileSync(ini, 'utf8');
    const before = heldInInspector();
    writeFileSync(ini, `${shipped}\n[quarantine]\nmax_entries=${before + 1}\n`);
    await A().restartInspector();
    try {
      expect(await aliceSends('This is top secret, once.\r\n')).toMatch(/^250 /);
      expect(heldInInspector()).toBe(before + 1);
      const reply = await aliceSends('This is top secret, twice.\r\n');
      expect(reply).toMatch(
        new RegExp(
          `45\\d 4\\.3\\.1 Storage for held messages is full, retry later: the store holds ${before + 1} messages, its cap \\(\\[quarantine\\] max_entries=${before + 1}\\)`,
        ),
      );
      expect(heldInInspector()).toBe(before + 1);
      expect(queuedForBob()).toBe(false);
    } finally {
      writeFileSync(ini, shipped);
      await A().restartInspector();
    }
  });

  test('the inspector process stopped: submission 4xx, nothing relayed; after its restart the message goes through', async () => {
    await A().stopInspector();
    const before = B().mailbox.for('bob@b.example').length;
    expect(await aliceSends('Stopped inspector, try 1\r\n')).toMatch(/45\d 4\.7\.5 Inspection unavailable: inspector: unreachable/);
    expect(queuedForBob()).toBe(false); // refused: not queued, so nothing can be relayed
    expect(B().mailbox.for('bob@b.example').length).toBe(before);
    await A().restartInspector();
    expect(await aliceSends('Stopped inspector, try 2\r\n')).toMatch(/^250 /);
    await waitFor(() => B().mailbox.for('bob@b.example').length > before);
  });
});

/** One SMTP session, command by command: each command's reply (its last line). */
async function session(port: number, commands: string[]): Promise<string[]> {
  const socket = connect(port, '127.0.0.1');
  let buffered = '';
  const waiting: ((line: string) => void)[] = [];
  const lines: string[] = [];
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let at: number;
    while ((at = buffered.indexOf('\r\n')) >= 0) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 2);
      if (line[3] === '-') continue; // a continuation line
      const w = waiting.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const reply = () => new Promise<string>((resolve) => (lines.length > 0 ? resolve(lines.shift()!) : waiting.push(resolve)));
  try {
    await reply(); // the greeting
    const out: string[] = [];
    for (const c of commands) {
      socket.write(`${c}\r\n`);
      out.push(await reply());
    }
    return out;
  } finally {
    socket.destroy();
  }
}

describe('envelopes the inspector takes as the gateway took them (the envelope travels in the request body)', () => {
  test('a From with a quoted local part holding a space ("john doe"@…) is inspected and delivered', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    expect(
      await smtp(
        B().ports.smtp,
        'john@outside.example',
        ['bob@b.example'],
        mail('"john doe"@outside.example', 'bob@b.example', 'From a quoted local part.\r\n'),
      ),
    ).toMatch(/^250 /);
    await waitFor(() => B().mailbox.for('bob@b.example').length > before);
    const got = B().mailbox.for('bob@b.example').at(-1)!.raw.toString('latin1');
    expect(got).toMatch(/^Authentication-Results: b\.example; ssmax-chain=none; ssmax-av=pass\r\n/);
    expect(got).toContain('From: "john doe"@outside.example');
  });

  test("a submission to 1,000 recipients of one SSMAX domain (over what a query string could carry; a Recipients line each would pass Haraka's 1,000 header lines) is inspected and delivered whole under a verifying seal", async () => {
    const before = B().mailbox.for('bob@b.example').length;
    const others = Array.from({ length: 999 }, (_, i) => `nobody-${i}@b.example`);
    const r = await smtp(
      A().ports.smtp,
      'dave@a.example',
      ['bob@b.example', ...others],
      mail('dave@a.example', 'bob@b.example', 'To a thousand.\r\n'),
      { user: 'dave@a.example', pass: 'pw-dave' },
    );
    expect(r).toMatch(/^250 /); // inspected by a.example's inspector with all 1,000 recipients
    await waitFor(
      () => B().mailbox.for('bob@b.example').length > before,
      60000,
      () => [A().haraka.logs().slice(-6000), B().haraka.logs().slice(-6000)].join('\n=====\n'),
    );
    const raw = B().mailbox.for('bob@b.example').at(-1)!.raw.toString('latin1');
    expect(raw).toMatch(/\r\nFrom: dave@a\.example\r\n/); // the fields after the Recipients field were not dropped
    expect(raw).toMatch(/\r\nMessage-ID: /i);
    const got = await lastVerdicts(net, 'bob@b.example'); // opening verifies the seals
    expect(got.plaintext).toContain('To a thousand.');
    expect(got.verdicts[0]).toBe('dlp:pass,e2e:none');
  });

  test('a RCPT beyond the 1000 recipients one message may have is answered 452 4.5.3 (the sender sends the rest in another transaction)', async () => {
    const rcpts = Array.from({ length: 1001 }, () => 'RCPT TO:<bob@b.example>');
    const replies = await session(B().ports.smtp, ['EHLO test.example', 'MAIL FROM:<x@outside.example>', ...rcpts, 'RSET', 'QUIT']);
    expect(replies.slice(2, 1002).every((l) => l.startsWith('250 '))).toBe(true);
    expect(replies[1002]).toMatch(/^452 4\.5\.3 Too many recipients: at most 1000 in one message/);
    expect(replies[1003]).toMatch(/^250 /); // the session goes on
  });
});

describe('ClamAV at b.example by its inspector process', () => {
  test('EICAR in a base64 attachment of an encrypted message is caught: 550 naming the signature, nothing delivered', async () => {
    const before = B().mailbox.mails.length;
    const copy = await seal.sealed(withAttachment('dave@a.example', 'bob@b.example', EICAR, 'eicar.txt'), ['bob@b.example']);
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['bob@b.example'], copy)).toMatch(
      /^550 5\.7\.1 Message refused: malware found: rule "av:Eicar-Test-Signature\.UNOFFICIAL"/,
    );
    expect(B().mailbox.mails.length).toBe(before);
  });

  test('plain Internet mail (a domain without SSMAX) is scanned too: sent to the inspector encrypted to the org; EICAR refused, clean delivered with ssmax-av=pass', async () => {
    const before = B().mailbox.mails.length;
    expect(
      await smtp(
        B().ports.smtp,
        'mallory@outside.example',
        ['bob@b.example'],
        withAttachment('mallory@outside.example', 'bob@b.example', EICAR, 'x.com'),
      ),
    ).toMatch(/^550 5\.7\.1 Message refused: malware found: rule "av:Eicar-Test-Signature\.UNOFFICIAL"/);
    expect(B().mailbox.mails.length).toBe(before);
    expect(
      await smtp(
        B().ports.smtp,
        'olivia@outside.example',
        ['bob@b.example'],
        withAttachment('olivia@outside.example', 'bob@b.example', 'harmless', 'notes.txt'),
      ),
    ).toMatch(/^250 /);
    await waitFor(() => B().mailbox.mails.length > before);
    expect(B().mailbox.mails.at(-1)!.raw.toString('latin1')).toMatch(
      /^Authentication-Results: b\.example; ssmax-chain=none; ssmax-av=pass\r\n/,
    );
  });

  test('the inspector does not start antivirus whose clamd could put the decrypted mail on disk or on the network: the config error names the setting', async () => {
    const ini = join(B().inspectorDir, 'ssmax-inspect.ini');
    const shipped = readFileSync(ini, 'utf8');
    try {
      const refusals: [string, RegExp][] = [
        [
          `[av]\nenabled=true\nclamd=127.0.0.1:${clamd.port}\n`,
          /ssmax-inspect\.ini \[av\] clamd_config: clamd settings unknown: \[av\] clamd_config is not set.*allow_plaintext_on_disk=true/,
        ],
        [
          `[av]\nenabled=true\nclamd=192.0.2.7:3310\nclamd_config=${clamd.conf}\n`,
          /ssmax-inspect\.ini \[av\] clamd: 192\.0\.2\.7:3310 is not a loopback address.*allow_plaintext_over_network=true/,
        ],
      ];
      for (const [settings, refused] of refusals) {
        writeFileSync(ini, settings);
        await expect(B().restartInspector()).rejects.toThrow(refused);
      }
    } finally {
      writeFileSync(ini, shipped);
      await B().restartInspector();
    }
  });

  test('the inspector process stopped: 4xx, nothing delivered; after its restart the retried message is delivered exactly once', async () => {
    const copy = await seal.sealed(withAttachment('dave@a.example', 'bob@b.example', 'a harmless attachment', 'notes.txt'), [
      'bob@b.example',
    ]);
    await B().stopInspector();
    const before = B().mailbox.for('bob@b.example').length;
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['bob@b.example'], copy)).toMatch(
      /^45\d 4\.7\.5 Inspection unavailable: inspector: unreachable/,
    );
    expect(B().mailbox.for('bob@b.example').length).toBe(before);
    await B().restartInspector();
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['bob@b.example'], copy)).toMatch(/^250 /);
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['bob@b.example'], copy)).toMatch(/^250 /); // the sender retries again: delivered once all the same
    expect(B().mailbox.for('bob@b.example').length).toBe(before + 1);
    expect((await lastVerdicts(net, 'bob@b.example')).verdicts).toEqual(['dlp:pass,e2e:none', 'av:pass,e2e:pass']);
  });

  test("clamd killed behind the inspector: 4xx through the gateway; scanning again after clamd's restart", async () => {
    const copy = await seal.sealed(withAttachment('dave@a.example', 'bob@b.example', 'another harmless one', 'notes.txt'), [
      'bob@b.example',
    ]);
    const port = clamd.port;
    await clamd.stop('SIGKILL');
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['bob@b.example'], copy)).toMatch(
      /^45\d 4\.7\.5 Inspection unavailable: clamd unreachable/,
    );
    clamd = await startClamd(mkdtempSync(join(tmpdir(), 'ssmax-ins-clamd-')), port);
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['bob@b.example'], copy)).toMatch(/^250 /);
  });
});

describe("the inspector's mutual TLS", () => {
  test('a gateway certificate of this organisation is accepted', async () => {
    const r = await health(B().fx.clients.gateway);
    expect(r).toMatchObject({ status: 200 });
    expect(JSON.parse((r as { body: string }).body)).toEqual({ ok: true, domain: 'b.example', role: 'gateway', dlp: false, av: true });
  });

  test('a certificate from another CA is refused in the handshake; none at all too', async () => {
    expect(await health(B().fx.clients.foreign)).toHaveProperty('error');
    expect(await health(net.org('a.example').fx.clients.gateway)).toHaveProperty('error'); // another organisation's gateway, leaf only
    expect(await health(undefined)).toHaveProperty('error');
  });

  test("another organisation's gateway certificate under the same root, sent with its chain, is refused: 401", async () => {
    const a = net.org('a.example').fx;
    const r = await health({ cert: a.clients.gateway.cert + a.orgCa.certificate.pem, key: a.clients.gateway.key });
    expect(r).toMatchObject({ status: 401, body: expect.stringMatching(/not issued by this organisation's CA/) });
  });

  test.each(['admin', 'inspector', 'disclosure'] as const)('the wrong role (%s) is refused: 401 unauthenticated', async (role) => {
    const r = await health(B().fx.clients[role]);
    expect(r).toMatchObject({ status: 401 });
    expect(JSON.parse((r as { body: string }).body).error).toMatchObject({
      code: 'unauthenticated',
      message: expect.stringMatching(/Client certificate refused/),
    });
  });

  test('a revoked gateway certificate (CRL) and an expired one are refused: 401', async () => {
    for (const c of [B().fx.clients.revoked, B().fx.clients.expired]) {
      const r = await health(c);
      if ('error' in r) continue; // TLS itself may refuse the expired one
      expect(r.status).toBe(401);
    }
    const revoked = await health(B().fx.clients.revoked);
    expect(revoked).toMatchObject({ status: 401, body: expect.stringMatching(/revoked/) });
  });
});

describe('a CRL file replaced under the running inspector', () => {
  test('a gateway certificate revoked in the new file is refused at the next connection (a CRL file is read again when it changed)', async () => {
    const fx = B().fx;
    const now = Math.floor(Date.now() / 1000) * 1000;
    const fresh = issueTlsCredentials(fx.orgCa, 'gateway', { notBefore: new Date(now - 86400000), notAfter: new Date(now + 86400000) }, [
      'mx.b.example',
    ]);
    expect(await health(fresh)).toMatchObject({ status: 200 });
    // the org CA's CRL, as keyd re-issues it when a certificate is revoked: every earlier entry, the next number
    const file = join(fx.dir, 'org-ca.crl.pem');
    const current = parseCrl(readFileSync(file, 'utf8'));
    const crl = createCrl(fx.orgCa, {
      entries: [...current.entries.values(), { serial: fresh.serial, revokedAt: new Date(now - 1000), reason: 'keyCompromise' }],
      thisUpdate: new Date(now - 1000),
      nextUpdate: new Date(now + 7 * 86400000),
      crlNumber: (current.crlNumber ?? 1n) + 1n,
    });
    writeFileSync(`${file}.new`, crl.pem, { mode: 0o600 });
    renameSync(`${file}.new`, file);
    // the inspector reads a CRL file again when it changed: the very next connection is checked against the new one
    expect(await health(fresh)).toMatchObject({ status: 401, body: expect.stringMatching(/revoked/) });
    expect(await health(B().fx.clients.gateway)).toMatchObject({ status: 200 }); // the gateway's own certificate is untouched
  });
});

describe('individuals and consent, with remote inspection', () => {
  consentCases(
    () => net,
    () => (m, r) => seal.sealed(m, r),
  );
});

describe('no plaintext at rest or in logs', () => {
  test("the inspectors' folders and output, and the gateways' logs, never hold the message text", () => {
    for (const org of [A(), B()]) {
      expect(org.inspector!.output()).not.toContain(MARKER);
      expect(org.inspector!.output()).not.toContain('4111');
      expect(org.haraka.logs()).not.toContain(MARKER);
      for (const f of filesUnder(org.inspectorDir)) {
        expect({
          path: f.path,
          marker: f.bytes.includes(MARKER),
          card: f.bytes.includes('4111 1111 1111 1111'),
          secret: f.path.endsWith('.ini') ? false : f.bytes.includes('top secret'),
        }).toEqual({ path: f.path, marker: false, card: false, secret: false });
      }
    }
  });
});
