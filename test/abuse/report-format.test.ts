/**
 * The ARF report format, the config file and the endpoint's HTTP surface,
 * without a network (the end-to-end test has the real thing).
 */
import { join } from 'node:path';
import { loadAbuseConfig } from '../../src/abuse/config';
import { AbuseError } from '../../src/abuse/errors';
import { type ReportedMessage, buildAbuseReport, identifyReportedMessage, parseAbuseReport } from '../../src/abuse/report';
import { startReportServer } from '../../src/abuse/report-server';
import { checkReportSeal, resolveToken } from '../../src/abuse/resolve';
import { seal } from '../../src/chain/seal';
import { verifyUnsealed } from '../../src/chain/verify-chain';
import { DirectoryError } from '../../src/directory/directory';
import type { KeydClient } from '../../src/keyd/client';
import { TRACKING_TOKEN, makeOrg, now, sampleMessage } from '../chain/fixtures';

const reported: ReportedMessage = {
  sealingDomain: 'a.example',
  trackingToken: 'AQABxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  messageId: '<m-1@a.example>',
  abuseContact: 'abuse@a.example',
  chainSummary: 'ssmax-chain=pass header.d=b.example header.i=2',
  sealTime: 1764072000,
  headers: Buffer.from(
    `SSMAX-Seal: v=1; i=1; d=a.example; ${'x'.repeat(300)}\r\nFrom: alice@a.example\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m-1@a.example>\r\n\r\n`,
  ),
};

test('a report round-trips: feedback fields and the original header block, byte for byte', async () => {
  const raw = await buildAbuseReport({
    reported,
    from: 'abuse@b.example',
    reportingMta: 'mx.b.example',
    originalRcptTo: 'bob@b.example',
    comment: 'Phishing — again',
    now: new Date('2026-11-25T12:00:00Z'),
  });
  const p = await parseAbuseReport(raw);
  expect(p).toMatchObject({
    feedbackType: 'abuse',
    sealingDomain: 'a.example',
    trackingToken: reported.trackingToken,
    messageId: '<m-1@a.example>',
    reportingMta: 'dns; mx.b.example',
    reporter: 'abuse@b.example',
  });
  expect(p.originalHeaders!.toString('latin1')).toBe(reported.headers.toString('latin1').replace(/\r\n\r\n$/, '\r\n'));
  expect(raw.toString('latin1')).toMatch(/^Original-Rcpt-To: bob@b\.example$/m);
});

test('feedback field values that could inject fields are refused', async () => {
  for (const messageId of ['<a@b>\r\nX-SSMAX-Tracking-Token: forged', '<ä@b>']) {
    await expect(
      buildAbuseReport({ reported: { ...reported, messageId }, from: 'abuse@b.example', reportingMta: 'mx.b.example', now: new Date() }),
    ).rejects.toThrow(/not printable ASCII/);
  }
});

test('unreadable reports get a clear error', async () => {
  const plain = Buffer.from('From: x@y.example\r\nSubject: hi\r\n\r\nbody\r\n');
  await expect(parseAbuseReport(plain)).rejects.toThrow('Cannot read the abuse report: content type "text/plain" is not multipart/report');
  const noToken = Buffer.from(
    'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n--b--\r\n',
  );
  await expect(parseAbuseReport(noToken)).rejects.toThrow(/has no X-SSMAX-Tracking-Token field/);
  await expect(parseAbuseReport('x' as unknown as Uint8Array)).rejects.toThrow(TypeError);
  await expect(
    identifyReportedMessage(null as unknown as Uint8Array, { lookup: () => Promise.reject(new Error('no')), ownDomain: 'b.example' }),
  ).rejects.toThrow(TypeError);
});

test('a malformed bare token is refused before keyd is asked', async () => {
  const keyd = {
    call: () => {
      throw new Error('keyd must not be called');
    },
  } as unknown as KeydClient;
  const err = await resolveToken('not a token!', { keyd, domain: 'a.example' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(AbuseError);
  expect((err as AbuseError).message).toBe('Cannot resolve token "not a token!": not base64url');
});

test('config/ssmax-abuse.ini loads with its defaults', () => {
  const c = loadAbuseConfig(join(__dirname, '..', '..', 'config', 'ssmax-abuse.ini'));
  expect(c).toMatchObject({
    domain: 'a.example',
    from: 'abuse@a.example',
    reportingMta: 'mx.a.example',
    hasDirectory: true,
    server: { host: '127.0.0.1', port: 8025 },
  });
  expect(c.keyd).toMatchObject({ url: 'https://keyd.a.example:7443', timeoutMs: 5000, cert: '/etc/ssmax/pki/admin.pem' });
  expect(c.submit).toBeUndefined();
  expect(c.registry).toMatchObject({ crlDays: 7, certificateDays: 365 });
});

test('the endpoint: bearer token, paths, methods, empty body, unsealed message', async () => {
  const server = await startReportServer({
    directory: { lookup: () => Promise.reject(new Error('none')) },
    from: 'abuse@b.example',
    ownDomain: 'b.example',
    reportingMta: 'mx.b.example',
    host: '127.0.0.1',
    port: 0,
    bearerToken: 's3cret',
  });
  const url = `http://127.0.0.1:${server.port}`;
  try {
    const auth = { authorization: 'Bearer s3cret' };
    expect((await fetch(`${url}/v1/health`)).status).toBe(401);
    expect((await fetch(`${url}/v1/health`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${url}/nope`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${url}/v1/abuse/report`, { headers: auth })).status).toBe(405);
    expect((await fetch(`${url}/v1/abuse/report`, { method: 'POST', headers: auth, body: '' })).status).toBe(400);
    const sendOff = await fetch(`${url}/v1/abuse/report?send=1`, { method: 'POST', headers: auth, body: 'From: a@b.example\r\n\r\nx' });
    expect(sendOff.status).toBe(400);
    const unsealed = await fetch(`${url}/v1/abuse/report`, {
      method: 'POST',
      headers: auth,
      body: 'From: a@b.example\r\nSubject: x\r\n\r\nx\r\n',
    });
    expect(unsealed.status).toBe(422);
    expect(await unsealed.json()).toEqual({
      error: { code: 'chain', message: 'Cannot report the message: it carries no SSMAX-Seal, so no organisation can trace its sender' },
    });
  } finally {
    await server.close();
  }
});

test("an operator's report of a sealed message whose bundle is unavailable names the directory's reason", async () => {
  const org = makeOrg('a.example');
  const message = sampleMessage();
  const sealed = await seal(message, {
    domain: 'a.example',
    certRef: org.certRef,
    privateKey: org.keys.privateKey,
    now,
    verdicts: [],
    chain: await verifyUnsealed(message, {}),
    trackingToken: TRACKING_TOKEN,
  });
  const reason = 'Cannot fetch "https://ssmax.a.example/bundle": connect ECONNREFUSED 192.0.2.7:443';
  const lookup = (domain: string) => Promise.reject(new DirectoryError('unavailable', domain, reason));
  await expect(identifyReportedMessage(Buffer.from(sealed.message), { lookup, now, ownDomain: 'b.example' })).rejects.toThrow(
    `SSMAX bundle of "a.example" unavailable: ${reason}`,
  );
  // and resolving a report of it, when the organisation's own bundle cannot be had
  const raw = Buffer.from(sealed.message);
  const headers = raw.subarray(0, raw.indexOf('\r\n\r\n') + 4);
  const report = await parseAbuseReport(
    await buildAbuseReport({
      reported: { ...reported, headers, trackingToken: Buffer.from(TRACKING_TOKEN).toString('base64url') },
      from: 'abuse@b.example',
      reportingMta: 'mx.b.example',
      now: new Date(),
    }),
  );
  await expect(checkReportSeal(report, () => lookup('a.example'))).rejects.toThrow(
    `no bundle of a.example to check its seal: SSMAX bundle of "a.example" unavailable: ${reason}`,
  );
});
