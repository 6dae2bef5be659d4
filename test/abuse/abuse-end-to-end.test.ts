/**
 * Sender tracking end to end (issue 9): alice@a.example sends abusive mail to
 * bob@b.example through real gateways; b.example verifies the chain and writes
 * an ARF report naming a.example with the token; a.example resolves it to
 * alice's registration through keyd; disclosure needs the disclosure role.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAbuseReport, identifyReportedMessage, parseAbuseReport, type ReportedMessage } from '../../src/abuse/report';
import { resolveReport, resolveToken } from '../../src/abuse/resolve';
import { startReportServer, type ReportServer } from '../../src/abuse/report-server';
import { AbuseError } from '../../src/abuse/errors';
import { addUser } from '../../src/registry/registration';
import { main } from '../../src/cli/main';
import type { CliIo } from '../../src/cli/command';
import { type Network, startNetwork, startService } from '../../src/demo/network';
import { Directory } from '../../src/directory/directory';
import { KeydClient } from '../../src/keyd/client';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { waitFor } from '../gateway/network-fixture';
import { LocalDelivery } from '../../src/gateway/delivery';
import { submitReport } from '../../src/abuse/submit';
import { type DovecotLmtp, startDovecotLmtp } from '../support/dovecot';

jest.setTimeout(120000);

let net: Network;
let base: string;
let dirB: Directory;
let dirA: Directory;

function directoryFor(): Directory {
  const peers: Record<string, string> = {};
  const hosts: Record<string, string> = {};
  for (const o of net.orgs) {
    peers[o.domain] = o.bundleUrl;
    hosts[`ssmax.${o.domain}`] = '127.0.0.1';
  }
  return new Directory({ roots: [net.root.certificate.pem], staticPeers: peers, hosts, resolver: null, fetchTimeoutMs: 3000, retryMs: 0 });
}

function client(domain: string, role: 'admin' | 'disclosure' | 'gateway'): KeydClient {
  const o = net.org(domain);
  return new KeydClient({
    url: `https://127.0.0.1:${o.ports.keyd}`,
    servername: `keyd.${domain}`,
    cert: o.fx.clients[role].cert,
    key: o.fx.clients[role].key,
    ca: o.fx.caPem,
  });
}

function capture(): CliIo & { text: () => string; errors: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return { out: (t) => out.push(t), err: (t) => err.push(t), text: () => out.join('\n'), errors: () => err.join('\n') };
}

const abusive = (n: number) =>
  Buffer.from(
    `From: alice@a.example\r\nTo: bob@b.example\r\nSubject: You have won ${n}\r\nDate: Wed, 25 Nov 2026 10:00:0${n} +0000\r\n` +
      `Message-ID: <spam-${n}@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSend your bank details now (${n})\r\n`,
  );

let received: Buffer[] = [];
let reported: ReportedMessage;
let report: Buffer;
let B: ReturnType<Network['org']>;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'ssmax-abuse-'));
  net = await startNetwork(join(base, 'net'), [
    {
      domain: 'a.example',
      users: [
        { address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' },
        { address: 'dave@a.example', client: 'plain', password: 'pw-dave' },
      ],
    },
    {
      domain: 'b.example',
      users: [
        { address: 'bob@b.example', client: 'ssmax', password: 'pw-bob' },
        { address: 'carol@b.example', client: 'plain', password: 'pw-carol' },
      ],
    },
  ]);
  dirA = directoryFor();
  dirB = directoryFor();
  const A = net.org('a.example');
  B = net.org('b.example');
  const alice = loadUserProfile(A.profiles['alice@a.example']!);
  for (const n of [1, 2]) {
    const sealed = await signAndEncrypt(alice, abusive(n), { now: new Date() });
    const r = await submitMessage(alice, sealed, { to: n === 1 ? ['bob@b.example', 'carol@b.example'] : ['bob@b.example'] });
    expect(r.response).toMatch(/^250 /);
  }
  await waitFor(() => B.mailbox.for('bob@b.example').length >= 2 && B.mailbox.for('carol@b.example').length >= 1, 30000);
  // In the order alice sent them (spam-1, spam-2), whatever the order of delivery.
  received = B.mailbox
    .for('bob@b.example')
    .map((m) => m.raw)
    .sort((x, y) => (x.includes('<spam-1@') ? -1 : 0) - (y.includes('<spam-1@') ? -1 : 0));
  // The abuse contact of a.example's bundle is a mailbox of a.example: registered like any plain user.
  const admin = A.admin();
  await addUser({ keyd: admin, address: 'abuse@a.example', code: 'ABUSE-DESK', identityRef: 'abuse desk', now: new Date() });
  admin.close();
});

afterAll(async () => {
  await dirA?.close();
  await dirB?.close();
  await net?.stop();
});

describe('b.example reports, a.example resolves', () => {
  beforeAll(async () => {
    reported = await identifyReportedMessage(received[0]!, { lookup: (d) => dirB.lookup(d), ownDomain: 'b.example' });
    report = await buildAbuseReport({
      reported,
      from: 'abuse@b.example',
      reportingMta: 'mx.b.example',
      originalRcptTo: 'bob@b.example',
      comment: 'Phishing',
      now: new Date(),
    });
  });

  test('the report names a.example, its abuse contact, and carries the token and the Message-ID', async () => {
    expect(reported.sealingDomain).toBe('a.example');
    expect(reported.abuseContact).toBe('abuse@a.example');
    expect(reported.messageId).toBe('<spam-1@a.example>');
    expect(reported.chainSummary).toMatch(/^ssmax-chain=pass /);
    const text = report.toString('utf8');
    expect(text).toMatch(/^Content-Type: multipart\/report; report-type=feedback-report/im);
    expect(text).toMatch(/^To: abuse@a\.example/m);
    expect(text).toMatch(/Content-Type: message\/feedback-report/);
    expect(text).toMatch(/Content-Type: text\/rfc822-headers/);
    expect(text).toMatch(/^Feedback-Type: abuse$/m);
    expect(text).toContain(`X-SSMAX-Tracking-Token: ${reported.trackingToken}`);
    expect(text).toMatch(/^X-SSMAX-Sealing-Domain: a\.example$/m);
    expect(text).toMatch(/^X-SSMAX-Message-ID: <spam-1@a\.example>$/m);
    expect(text).not.toContain('Send your bank details');
    const parsed = await parseAbuseReport(report);
    expect(parsed).toMatchObject({
      feedbackType: 'abuse',
      sealingDomain: 'a.example',
      trackingToken: reported.trackingToken,
      messageId: '<spam-1@a.example>',
      reportingMta: 'dns; mx.b.example',
    });
    expect(parsed.originalHeaders!.toString('latin1')).toMatch(/SSMAX-Seal: v=1; i=1; d=a\.example/);
  });

  test('a plain-client copy (transparent mode: the newest seal was made over the encrypted form) is reported when it is our own delivery', async () => {
    const carolCopy = B.mailbox.for('carol@b.example')[0]!.raw;
    const r = await identifyReportedMessage(carolCopy, { lookup: (d) => dirB.lookup(d), ownDomain: 'b.example' });
    expect(r).toMatchObject({ sealingDomain: 'a.example', trackingToken: reported.trackingToken, messageId: '<spam-1@a.example>' });
    expect(r.chainSummary).toMatch(/transparent copy: every seal verified, content decrypted by b\.example/);
    // Without knowing whose copy it is, the tool reports nothing.
    await expect(identifyReportedMessage(carolCopy, { lookup: (d: string) => dirB.lookup(d) } as never)).rejects.toThrow(
      /ownDomain\) is required/,
    );
    // Another organisation's transparent line is not ours to vouch for.
    await expect(identifyReportedMessage(carolCopy, { lookup: (d) => dirB.lookup(d), ownDomain: 'a.example' })).rejects.toThrow(
      /does not verify/,
    );
  });

  test('a.example resolves the report to alice (operator role): no identity reference, message-id matches, seal verified', async () => {
    const admin = client('a.example', 'admin');
    try {
      const r = await resolveReport(report, { keyd: admin, domain: 'a.example', ownBundle: () => dirA.lookup('a.example') });
      expect(r.user.address).toBe('alice@a.example');
      expect(r.user.code).toBe('U-1001');
      expect(r.user.status).toBe('active');
      expect(r.user.certificateSerial).toMatch(/^[0-9a-f]+$/);
      expect(r.messageIdMatches).toBe(true);
      // Seal i=1 is a.example's and carries the token; its hh= no longer matches, as b.example's gateway re-encrypted the capsule header.
      expect(r.seal).toEqual({ result: 'verified', headersMatch: false });
      expect(r.identityRef).toBeUndefined();
      expect(JSON.stringify(r)).not.toContain('EMP-');
    } finally {
      admin.close();
    }
  });

  test('disclosure without the disclosure role is refused, and the refusal is audited', async () => {
    const admin = client('a.example', 'admin');
    try {
      const before = await admin.call<{ ok: boolean; count: number }>('GET', '/v1/audit/verify');
      const err = await resolveReport(report, {
        keyd: admin,
        domain: 'a.example',
        disclose: true,
        ownBundle: () => dirA.lookup('a.example'),
        lookup: (x) => dirA.lookup(x),
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AbuseError);
      expect((err as AbuseError).code).toBe('refused');
      expect((err as AbuseError).message).toMatch(/role/);
      const after = await admin.call<{ ok: boolean; count: number }>('GET', '/v1/audit/verify');
      // keyd wrote an audit record for the refused disclosure (and the chain of records is intact).
      expect(after.ok).toBe(true);
      expect(after.count).toBeGreaterThan(before.count);
    } finally {
      admin.close();
    }
  });

  test('with the disclosure role the identity reference is disclosed', async () => {
    const d = client('a.example', 'disclosure');
    try {
      const r = await resolveReport(report, {
        keyd: d,
        domain: 'a.example',
        disclose: true,
        ownBundle: () => dirA.lookup('a.example'),
        lookup: (x) => dirA.lookup(x),
      });
      expect(r.user.address).toBe('alice@a.example');
      expect(r.identityRef).toBe('EMP-1001');
      expect(r.reporterSeal).toMatchObject({ domain: 'b.example', result: 'verified' });
      // a bare token discloses only with the Message-ID it was minted for
      await expect(resolveToken(reported.trackingToken, { keyd: d, domain: 'a.example', disclose: true })).rejects.toThrow(
        /names no Message-ID/,
      );
      await expect(
        resolveToken(reported.trackingToken, { keyd: d, domain: 'a.example', disclose: true, messageId: '<other@a.example>' }),
      ).rejects.toThrow(/not the one the token was minted for/);
    } finally {
      d.close();
    }
  });

  test('a bare token resolves too; a wrong Message-ID is said not to match', async () => {
    const admin = client('a.example', 'admin');
    try {
      const r = await resolveToken(reported.trackingToken, { keyd: admin, domain: 'a.example', messageId: '<other@a.example>' });
      expect(r.user.address).toBe('alice@a.example');
      expect(r.messageIdMatches).toBe(false);
    } finally {
      admin.close();
    }
  });
});

describe('clear errors', () => {
  test('a forged token', async () => {
    const admin = client('a.example', 'admin');
    try {
      const t = reported.trackingToken;
      const i = 20;
      const forged = t.slice(0, i) + (t[i] === 'A' ? 'B' : 'A') + t.slice(i + 1);
      await expect(resolveToken(forged, { keyd: admin, domain: 'a.example' })).rejects.toThrow(
        /Cannot resolve tracking token: forged, damaged, or not minted by a\.example/,
      );
      await expect(resolveToken('not-a-token', { keyd: admin, domain: 'a.example' })).rejects.toThrow(/not a token of this format/);
    } finally {
      admin.close();
    }
  });

  test('a token from another organisation', async () => {
    // b.example's keyd cannot open a.example's token, and a report about a.example's message is not b.example's to resolve.
    const adminB = client('b.example', 'admin');
    try {
      await expect(resolveToken(reported.trackingToken, { keyd: adminB, domain: 'b.example' })).rejects.toThrow(
        /Cannot resolve tracking token: (forged, damaged, or )?not minted by b\.example/,
      );
      await expect(resolveReport(report, { keyd: adminB, domain: 'b.example' })).rejects.toThrow(
        'Cannot resolve the report: the message was sealed by "a.example", not by b.example',
      );
    } finally {
      adminB.close();
    }
  });

  test('a reported message whose chain does not verify', async () => {
    const tampered = Buffer.from(received[0]!.toString('latin1').replace('Subject: You have won 1', 'Subject: You have won 9'), 'latin1');
    const err = await identifyReportedMessage(tampered, { lookup: (d) => dirB.lookup(d), ownDomain: 'b.example' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbuseError);
    expect((err as AbuseError).code).toBe('chain');
    expect((err as AbuseError).message).toMatch(/^Cannot report the message: its seal chain does not verify \(ssmax-chain=fail/);
    await expect(identifyReportedMessage(abusive(3), { lookup: (d) => dirB.lookup(d), ownDomain: 'b.example' })).rejects.toThrow(
      /carries no SSMAX-Seal/,
    );
  });

  test('a report whose seal does not verify (token pinned on another seal) is refused at a.example', async () => {
    const other = await identifyReportedMessage(received[1]!, { lookup: (d) => dirB.lookup(d), ownDomain: 'b.example' });
    // The token of message 2 with the headers of message 1: seal i=1 does not carry that token.
    const mixed = await buildAbuseReport({
      reported: { ...reported, trackingToken: other.trackingToken },
      from: 'abuse@b.example',
      reportingMta: 'mx.b.example',
      now: new Date(),
    });
    const admin = client('a.example', 'admin');
    try {
      await expect(resolveReport(mixed, { keyd: admin, domain: 'a.example', ownBundle: () => dirA.lookup('a.example') })).rejects.toThrow(
        /not the one in seal i=1/,
      );
      // A seal whose tt= was replaced: the signature no longer verifies.
      const headers = reported.headers.toString('latin1').replace(reported.trackingToken, other.trackingToken);
      const altered = await buildAbuseReport({
        reported: { ...reported, trackingToken: other.trackingToken, headers: Buffer.from(headers, 'latin1') },
        from: 'abuse@b.example',
        reportingMta: 'mx.b.example',
        now: new Date(),
      });
      await expect(resolveReport(altered, { keyd: admin, domain: 'a.example', ownBundle: () => dirA.lookup('a.example') })).rejects.toThrow(
        /seal i=1 in its original headers does not verify/,
      );
    } finally {
      admin.close();
    }
  });
});

describe('tokens are unlinkable', () => {
  test('two messages from alice carry tokens that differ and share no visible structure beyond the format header', async () => {
    const [t1, t2] = await Promise.all(
      received.map(
        async (m) => (await identifyReportedMessage(m, { lookup: (d) => dirB.lookup(d), ownDomain: 'b.example' })).trackingToken,
      ),
    );
    expect(t1).not.toBe(t2);
    const b1 = Buffer.from(t1!, 'base64url');
    const b2 = Buffer.from(t2!, 'base64url');
    // Bytes 0-2: format version and the organisation's tracking-key version (the same for every user of the org).
    expect(b1.subarray(0, 3)).toEqual(b2.subarray(0, 3));
    const r1 = b1.subarray(3);
    const r2 = b2.subarray(3);
    let same = 0;
    for (let i = 0; i < Math.min(r1.length, r2.length); i++) if (r1[i] === r2[i]) same++;
    expect(same).toBeLessThan(8); // random bytes agree at about 1 in 256 positions
    // No shared run of 6 base64url characters after the 4-character header.
    const s1 = t1!.slice(4);
    const s2 = t2!.slice(4);
    for (let i = 0; i + 6 <= s1.length; i++) expect(s2.includes(s1.slice(i, i + 6))).toBe(false);
  });
});

describe('CLI and HTTP endpoint', () => {
  let config: string;
  beforeAll(() => {
    const A = net.org('a.example');
    const B = net.org('b.example');
    const pem = (name: string, text: string) => {
      const p = join(base, name);
      writeFileSync(p, text);
      return p;
    };
    writeFileSync(join(base, 'root.pem'), net.root.certificate.pem);
    const peers = net.orgs.map((o) => `${o.domain}=${o.bundleUrl}`);
    const hosts = net.orgs.map((o) => `ssmax.${o.domain}=127.0.0.1`);
    config = join(base, 'a-abuse.ini');
    writeFileSync(
      config,
      [
        '[abuse]',
        'domain=a.example',
        'from=abuse@a.example',
        'reporting_mta=mx.a.example',
        '[keyd]',
        `url=https://127.0.0.1:${A.ports.keyd}`,
        'servername=keyd.a.example',
        `ca=${join(A.fx.dir, 'org-ca.pem')},${join(A.fx.dir, 'root.pem')}`,
        `cert=${pem('a-admin.pem', A.fx.clients.admin.cert)}`,
        `key=${pem('a-admin.key', A.fx.clients.admin.key)}`,
        `disclosure_cert=${pem('a-disc.pem', A.fx.clients.disclosure.cert)}`,
        `disclosure_key=${pem('a-disc.key', A.fx.clients.disclosure.key)}`,
        '[directory]',
        'roots=root.pem',
        'dns=off',
        'fetch_timeout_ms=3000',
        '[peers]',
        ...peers,
        '[hosts]',
        ...hosts,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(base, 'b-abuse.ini'),
      [
        '[abuse]',
        'domain=b.example',
        'from=carol@b.example',
        'reporting_mta=mx.b.example',
        '[submit]',
        `host=127.0.0.1`,
        `port=${B.ports.smtp}`,
        'user=carol@b.example',
        `password_file=${pem('carol.pw', 'pw-carol\n')}`,
        '[server]',
        'listen=127.0.0.1:0',
        '[directory]',
        'roots=root.pem',
        'dns=off',
        'fetch_timeout_ms=3000',
        '[peers]',
        ...peers,
        '[hosts]',
        ...hosts,
        '',
      ].join('\n'),
    );
    writeFileSync(join(base, 'received-1.eml'), received[0]!);
  });

  test('ssmax abuse report writes the ARF report; ssmax abuse resolve prints alice without the identity', async () => {
    const io = capture();
    const out = join(base, 'report-1.eml');
    expect(await main(['abuse', 'report', '--config', join(base, 'b-abuse.ini'), '--out', out, join(base, 'received-1.eml')], io)).toBe(0);
    expect(io.text()).toMatch(/a\.example/);
    expect(readFileSync(out, 'utf8')).toMatch(/^X-SSMAX-Tracking-Token: /m);
    const io2 = capture();
    expect(await main(['abuse', 'resolve', '--config', config, out], io2)).toBe(0);
    expect(io2.text()).toMatch(/address: alice@a\.example/);
    expect(io2.text()).toMatch(/message-id matches: yes/);
    expect(io2.text()).toMatch(/seal i=1: verified/);
    expect(io2.text()).not.toMatch(/EMP-1001/);
    const io3 = capture();
    expect(await main(['abuse', 'resolve', '--config', config, '--disclose', out], io3)).toBe(0);
    expect(io3.text()).toMatch(/identity reference: EMP-1001/);
    const io4 = capture();
    expect(await main(['abuse', 'resolve', '--config', config, '--token', 'AQAB' + 'x'.repeat(60)], io4)).not.toBe(0);
    expect(io4.errors()).toMatch(/Cannot resolve tracking token/);
    const io5 = capture();
    expect(await main(['abuse', '--help'], io5)).toBe(0);
    expect(io5.text()).toMatch(/report/);
  });

  test("--send submits the report through the gateway to a.example's abuse contact", async () => {
    const A = net.org('a.example');
    const io = capture();
    const code = await main(['abuse', 'report', '--config', join(base, 'b-abuse.ini'), '--send', join(base, 'received-1.eml')], io);
    expect(io.errors()).toMatch(/Message sealed by a\.example/);
    expect(code).toBe(0);
    expect(io.text()).toMatch(/^Report for a\.example sent to abuse@a\.example: 250/);
    await waitFor(
      () => A.mailbox.for('abuse@a.example').length >= 1,
      30000,
      () => JSON.stringify(A.mailbox.mails.map((m) => m.to)),
    );
    const delivered = A.mailbox.for('abuse@a.example')[0]!.raw;
    const admin = client('a.example', 'admin');
    try {
      // abuse@a.example is a plain mailbox: the report was delivered in transparent mode beneath a.example's seal.
      const r = await resolveReport(delivered, {
        keyd: admin,
        domain: 'a.example',
        ownBundle: () => dirA.lookup('a.example'),
        lookup: (d) => dirA.lookup(d),
      });
      expect(r.user.address).toBe('alice@a.example');
      expect(r.messageIdMatches).toBe(true);
      expect(r.reportChain).toEqual({
        domain: 'b.example',
        summary: expect.stringMatching(/^ssmax-chain=pass header\.d=a\.example header\.i=2 \(transparent copy/) as unknown as string,
      });
      // The same report with b.example's seal altered (its time): the report's own chain fails.
      const text = delivered.toString('latin1');
      const altered = text.replace(
        /(SSMAX-Seal: v=1; i=1; d=b\.example;[\s\S]*?\bt=)(\d)/,
        (_m, a: string, d: string) => `${a}${d === '1' ? '2' : '1'}`,
      );
      expect(altered).not.toBe(text);
      const tampered = Buffer.from(altered, 'latin1');
      await expect(resolveReport(tampered, { keyd: admin, domain: 'a.example', lookup: (d) => dirA.lookup(d) })).rejects.toThrow(
        /^Cannot resolve the report: its own seal chain does not verify \(ssmax-chain=fail/,
      );
    } finally {
      admin.close();
    }
  });

  test('the HTTP endpoint does the same for a web form or a mail-client button', async () => {
    let server: ReportServer | undefined;
    try {
      server = await startReportServer({
        directory: dirB,
        from: 'abuse@b.example',
        ownDomain: 'b.example',
        reportingMta: 'mx.b.example',
        host: '127.0.0.1',
        port: 0,
      });
      const res = await fetch(`http://127.0.0.1:${server.port}/v1/abuse/report`, {
        method: 'POST',
        headers: { 'content-type': 'message/rfc822' },
        body: new Uint8Array(received[1]!),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        sealingDomain: string;
        abuseContact: string;
        trackingToken: string;
        report: string;
        sent: boolean;
      };
      expect(body).toMatchObject({ sealingDomain: 'a.example', abuseContact: 'abuse@a.example', sent: false });
      expect(body.report).toContain(`X-SSMAX-Tracking-Token: ${body.trackingToken}`);
      const bad = await fetch(`http://127.0.0.1:${server.port}/v1/abuse/report`, {
        method: 'POST',
        headers: { 'content-type': 'message/rfc822' },
        body: new Uint8Array(abusive(4)),
      });
      expect(bad.status).toBe(422);
      expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/carries no SSMAX-Seal/);
    } finally {
      await server?.close();
    }
  });

  test('ssmax abuse serve runs the endpoint as a process; --help on every subcommand', async () => {
    const svc = await startService(['abuse', 'serve', '--config', join(base, 'b-abuse.ini')], /abuse endpoint listening on [^:]+:(\d+)/);
    try {
      const res = await fetch(`http://127.0.0.1:${svc.port}/v1/abuse/report?rcpt=carol%40b.example`, {
        method: 'POST',
        body: new Uint8Array(B.mailbox.for('carol@b.example')[0]!.raw),
      });
      const body = (await res.json()) as { sealingDomain: string; chain: string; report: string };
      expect(res.status).toBe(200);
      expect(body.sealingDomain).toBe('a.example');
      expect(body.chain).toMatch(/transparent copy/);
      expect(body.report).toMatch(/^Original-Rcpt-To: carol@b\.example/m);
    } finally {
      await svc.stop();
    }
    for (const sub of ['report', 'resolve', 'serve']) {
      const io = capture();
      expect(await main(['abuse', sub, '--help'], io)).toBe(0);
      expect(io.text()).toMatch(new RegExp(`^Usage: ssmax abuse ${sub}`));
    }
    const io = capture();
    expect(await main(['abuse', 'resolve', '--config', config], io)).toBe(64);
    expect(io.errors()).toMatch(/Give one report file or --token TOKEN/);
  });
});

describe('copies as a real Dovecot stores them (LMTP, the documented deployment): trace fields above the gateway line', () => {
  let dovecot: DovecotLmtp;
  let delivery: LocalDelivery;
  beforeAll(async () => {
    dovecot = await startDovecotLmtp(['carol@b.example', 'abuse@a.example']);
    // the gateway's own delivery code, over LMTP: it adds SSMAX-Delivery-Id on top, Dovecot its Return-Path, Delivered-To, Received
    delivery = new LocalDelivery('127.0.0.1', dovecot.port, 5000, mkdtempSync(join(tmpdir(), 'ssmax-abuse-lmtp-')), 'lmtp');
  });
  afterAll(async () => {
    await delivery?.close();
    await dovecot?.stop();
  });
  /** `raw` handed to Dovecot as the gateway hands a copy over, and read back from the user's Maildir. */
  async function stored(raw: Buffer, rcpt: string): Promise<Buffer> {
    const before = dovecot.mails(rcpt).length;
    await delivery.deliver(raw, 'sender@a.example', [{ rcpts: [rcpt], message: raw, local: true }]);
    const mails = dovecot.mails(rcpt);
    expect(mails).toHaveLength(before + 1);
    const got = mails.at(-1)!;
    // what the finding is about: fields above the gateway's Authentication-Results line
    expect(got.toString('latin1')).toMatch(
      /^Return-Path: [^\n]*\r?\nDelivered-To: [^\n]*\r?\nReceived: [\s\S]*?\r?\nSSMAX-Delivery-Id: [0-9a-f]+\r?\nAuthentication-Results: /,
    );
    return got;
  }

  test("a plain-client user's transparent copy is reported", async () => {
    const original = B.mailbox.for('carol@b.example')[0]!.raw;
    const carolCopy = await stored(original, 'carol@b.example');
    const r = await identifyReportedMessage(carolCopy, { lookup: (d) => dirB.lookup(d), ownDomain: 'b.example' });
    const direct = await identifyReportedMessage(original, { lookup: (d) => dirB.lookup(d), ownDomain: 'b.example' });
    expect(r).toMatchObject({ sealingDomain: 'a.example', trackingToken: direct.trackingToken, messageId: '<spam-1@a.example>' });
    expect(r.chainSummary).toMatch(/transparent copy: every seal verified, content decrypted by b\.example/);
    // another organisation's transparent line is still not ours to vouch for, trace fields or not
    await expect(identifyReportedMessage(carolCopy, { lookup: (d) => dirB.lookup(d), ownDomain: 'a.example' })).rejects.toThrow(
      /does not verify/,
    );
  });

  test('a report delivered to a plain abuse mailbox resolves', async () => {
    const admin = client('a.example', 'admin');
    try {
      const carolCopy = B.mailbox.for('carol@b.example')[0]!.raw;
      const mine = await buildAbuseReport({
        reported: await identifyReportedMessage(carolCopy, { lookup: (d) => dirB.lookup(d), ownDomain: 'b.example' }),
        from: 'carol@b.example',
        reportingMta: 'mx.b.example',
        originalRcptTo: 'carol@b.example',
        comment: 'Phishing',
        now: new Date(),
      });
      // the report, sent through b.example's gateway, as a.example's gateway delivered it to its plain abuse mailbox
      const before = net.org('a.example').mailbox.for('abuse@a.example').length;
      const sent = await submitReport(
        mine,
        { from: 'carol@b.example', to: 'abuse@a.example' },
        { host: '127.0.0.1', port: B.ports.smtp, user: 'carol@b.example', password: 'pw-carol', security: 'none' },
      );
      expect(sent.response).toMatch(/^250 /);
      await waitFor(() => net.org('a.example').mailbox.for('abuse@a.example').length > before, 30000);
      const delivered = await stored(net.org('a.example').mailbox.for('abuse@a.example').at(-1)!.raw, 'abuse@a.example');
      const r = await resolveReport(delivered, {
        keyd: admin,
        domain: 'a.example',
        ownBundle: () => dirA.lookup('a.example'),
        lookup: (d) => dirA.lookup(d),
      });
      expect(r.user.address).toBe('alice@a.example');
      expect(r.reportChain).toEqual({
        domain: 'b.example',
        summary: expect.stringMatching(/^ssmax-chain=pass header\.d=a\.example header\.i=2 \(transparent copy/) as unknown as string,
      });
    } finally {
      admin.close();
    }
  });
});
