/**
 * A report and a disclosure are tied to the reported message and to an
 * organisation that received it (docs/abuse.md, "Who may report, what is
 * disclosed"), without a network: a.example seals alice's message for
 * bob@b.example, b.example's gateway seals the copy it delivers to bob, and
 * keyd runs in process, its audit log read back.
 *
 * - Only the receiving organisation reports: the newest seal must be its own
 *   and bind the recipient (`rc=`); c.example, which never received the
 *   message, cannot report b.example's copy.
 * - a.example resolves only reports of an organisation with a genuine seal in
 *   the original headers, and discloses only for the Message-ID the token was
 *   minted for: a genuine token on headers with another Message-ID is refused
 *   by keyd, and audited as refused.
 */
import { AbuseError } from '../../src/abuse/errors';
import { type ReportedMessage, buildAbuseReport, identifyReportedMessage } from '../../src/abuse/report';
import { describeResolution, resolveReport } from '../../src/abuse/resolve';
import { bindRecipients, removeRecipientFields } from '../../src/chain/recipients';
import { seal } from '../../src/chain/seal';
import { verifyChain, verifyUnsealed } from '../../src/chain/verify-chain';
import type { PeerEntry } from '../../src/directory/directory';
import { type KeydClient, KeydClientError } from '../../src/keyd/client';
import { loadKeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, openKeyd } from '../../src/keyd/daemon';
import { KeydError } from '../../src/keyd/errors';
import type { Actor } from '../../src/keyd/service';
import { type Party, makeOrg, now, sampleMessage } from '../chain/fixtures';
import { makeOrgFixture } from '../support/org-fixture';

const fx = makeOrgFixture();
const parts = openKeyd(loadKeydConfig(fx.configFile), () => new Date(now()));
const { service } = parts;
afterAll(() => parts.store.close());

const orgs = new Map<string, Party>(['a.example', 'b.example', 'c.example'].map((d) => [d, makeOrg(d)]));
const entry = (d: string): PeerEntry =>
  ({
    domain: d,
    abuseContact: `mailto:abuse@${d}`,
    sealingCertificate: (ref: string) => {
      const o = orgs.get(d)!;
      return o.certRef === ref ? { publicKey: o.keys.publicKey, domain: d, certificate: '' } : undefined;
    },
  }) as unknown as PeerEntry;
const lookup = (d: string): Promise<PeerEntry> =>
  orgs.has(d) ? Promise.resolve(entry(d)) : Promise.reject(new Error(`no bundle of ${d}`));
const certLookup = (req: { certRef: string; domain?: string }) => {
  const o = orgs.get(req.domain ?? '');
  return o && o.certRef === req.certRef ? { publicKey: o.keys.publicKey, domain: req.domain! } : undefined;
};

/** keyd in process as a client with `role`: its refusals as KeydClientError (what the HTTP client throws); every call kept. */
function keydAs(role: Actor['role']): KeydClient & { calls: string[] } {
  const actor: Actor = { role, name: `test ${role}` };
  const calls: string[] = [];
  const call = async (_method: string, path: string, body: Record<string, unknown>) => {
    calls.push(path);
    try {
      return path.endsWith('/disclose') ? await service.disclose(actor, body) : await service.resolveToken(actor, body);
    } catch (err) {
      if (err instanceof KeydError) throw new KeydClientError(err.code, err.message, err.status);
      throw err;
    }
  };
  return { call, calls } as unknown as KeydClient & { calls: string[] };
}

let outgoing: Buffer; // as a.example's gateway sends it (newest seal a.example's, for bob@b.example)
let bobCopy: Buffer; // as b.example's gateway delivers it to bob
let reported: ReportedMessage;

beforeAll(async () => {
  await service.maintain(KEYD_ACTOR);
  const admin: Actor = { role: 'admin', name: 'test admin' };
  await service.addUser(admin, { address: 'alice@a.example', code: 'U-1', identityRef: 'EMP-1001' });
  const gateway: Actor = { role: 'gateway', name: 'test gateway' };
  const { token } = (await service.mintToken(gateway, { sender: 'alice@a.example', messageId: '<m1@a.example>' })) as { token: string };
  const A = orgs.get('a.example')!;
  const B = orgs.get('b.example')!;
  const message = sampleMessage();
  const toB = bindRecipients(['bob@b.example']);
  const s1 = await seal(message, {
    domain: 'a.example',
    certRef: A.certRef,
    privateKey: A.keys.privateKey,
    now,
    verdicts: [],
    chain: await verifyUnsealed(message, {}),
    trackingToken: Buffer.from(token, 'base64url'),
    recipientCommitment: toB.commitment,
  });
  outgoing = Buffer.concat([Buffer.from(`${toB.field}\r\n`), Buffer.from(s1.message)]);
  const arrived = removeRecipientFields(outgoing);
  const toBob = bindRecipients(['bob@b.example']);
  const s2 = await seal(arrived, {
    domain: 'b.example',
    certRef: B.certRef,
    privateKey: B.keys.privateKey,
    now,
    verdicts: [],
    chain: await verifyChain(arrived, { now, lookup: certLookup }),
    recipientCommitment: toBob.commitment,
  });
  bobCopy = Buffer.concat([Buffer.from(`${toBob.field}\r\n`), Buffer.from(s2.message)]);
  reported = await identifyReportedMessage(bobCopy, { lookup, now, ownDomain: 'b.example', recipient: 'bob@b.example' });
});

const report = (r: ReportedMessage, from: string) =>
  buildAbuseReport({ reported: r, from, reportingMta: `mx.${from.split('@')[1]}`, now: new Date(now()) });
const resolving = { domain: 'a.example', ownBundle: () => lookup('a.example'), lookup };

describe('only an organisation that received the message reports it', () => {
  test("the recipient's organisation reports its copy", () => {
    expect(reported).toMatchObject({ sealingDomain: 'a.example', messageId: '<m1@a.example>', abuseContact: 'abuse@a.example' });
  });

  test("c.example cannot report b.example's copy, nor b.example one it did not receive or for another recipient", async () => {
    const byC = await identifyReportedMessage(bobCopy, { lookup, now, ownDomain: 'c.example' }).catch((e: unknown) => e);
    expect(byC).toBeInstanceOf(AbuseError);
    expect((byC as AbuseError).code).toBe('foreign');
    expect((byC as AbuseError).message).toBe(
      'Cannot report the message: its newest seal (i=2) is by "b.example", not by c.example: this is not a copy c.example received; report only mail c.example received',
    );
    // a.example's outgoing copy: its newest seal is a.example's, not b.example's
    await expect(identifyReportedMessage(outgoing, { lookup, now, ownDomain: 'b.example' })).rejects.toThrow(
      /newest seal \(i=1\) is by "a\.example", not by b\.example/,
    );
    // a recipient the newest seal does not bind, or of another organisation
    await expect(identifyReportedMessage(bobCopy, { lookup, now, ownDomain: 'b.example', recipient: 'carol@b.example' })).rejects.toThrow(
      /does not bind the recipient carol@b\.example/,
    );
    await expect(identifyReportedMessage(bobCopy, { lookup, now, ownDomain: 'b.example', recipient: 'bob@c.example' })).rejects.toThrow(
      /not an address of b\.example/,
    );
    // the copy without its SSMAX-Recipients field: nothing shows whom b.example's seal was for
    await expect(identifyReportedMessage(removeRecipientFields(bobCopy), { lookup, now, ownDomain: 'b.example' })).rejects.toThrow(
      /expected one SSMAX-Recipients field beside the newest seal, found 0/,
    );
  });

  test("a.example refuses a report by c.example of b.example's copy (its report, built by hand): keyd is not asked", async () => {
    const keyd = keydAs('admin');
    const err = await resolveReport(await report(reported, 'abuse@c.example'), { ...resolving, keyd }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbuseError);
    expect((err as AbuseError).message).toBe(
      'Cannot resolve the report: the reporting organisation c.example has no seal in the original headers (it never received the message)',
    );
    expect(keyd.calls).toEqual([]);
  });
});

describe('disclosure only for the reported message', () => {
  test("b.example's report: seal i=1 and b.example's seal verified, Message-ID matching: disclosed", async () => {
    const r = await resolveReport(await report(reported, 'abuse@b.example'), { ...resolving, keyd: keydAs('disclosure'), disclose: true });
    expect(r.identityRef).toBe('EMP-1001');
    expect(r.messageIdMatches).toBe(true);
    expect(r.seal?.result).toBe('verified');
    expect(r.reporterSeal).toEqual({ domain: 'b.example', result: 'verified', instance: 2 });
    expect(describeResolution(r)).toContain("reporter's seal: b.example i=2: verified");
    expect(parts.audit.tail(1)[0]).toMatchObject({
      op: 'tracking.disclose',
      result: 'ok',
      reason: expect.stringMatching(/: matches; identity disclosed$/),
    });
  });

  test('a genuine token on headers with another Message-ID: keyd refuses the disclosure and audits the refusal', async () => {
    const forged: ReportedMessage = {
      ...reported,
      messageId: '<threat@a.example>',
      headers: Buffer.from(reported.headers.toString('latin1').replace('<m1@a.example>', '<threat@a.example>'), 'latin1'),
    };
    const keyd = keydAs('disclosure');
    const err = await resolveReport(await report(forged, 'abuse@b.example'), { ...resolving, keyd, disclose: true }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AbuseError);
    expect((err as AbuseError).code).toBe('refused');
    expect((err as AbuseError).message).toMatch(/not the one the token was minted for/);
    expect(keyd.calls).toEqual(['/v1/tracking/disclose']);
    const rec = parts.audit.tail(1)[0]!;
    expect(rec).toMatchObject({ op: 'tracking.disclose', result: 'refused' });
    expect(rec.reason).toContain(`message-id ${parts.audit.digest('<threat@a.example>')}`);
    // without disclosure the operator still sees the mismatch
    const seen = await resolveReport(await report(forged, 'abuse@b.example'), { ...resolving, keyd: keydAs('admin') });
    expect(describeResolution(seen)).toContain('message-id matches: NO');
  });

  test('disclosure when seal i=1 cannot be checked, or the report has no original headers: refused before keyd is asked', async () => {
    const keyd = keydAs('disclosure');
    const raw = await report(reported, 'abuse@b.example');
    await expect(resolveReport(raw, { keyd, domain: 'a.example', disclose: true })).rejects.toThrow(
      /^Cannot disclose the identity: seal i=1 of the original headers was not checked/,
    );
    await expect(resolveReport(raw, { keyd, domain: 'a.example', ownBundle: () => lookup('a.example'), disclose: true })).rejects.toThrow(
      /^Cannot disclose the identity: the seal of the reporting organisation b\.example was not checked/,
    );
    const noHeaders = Buffer.from(raw.toString('latin1').replace(/text\/rfc822-headers/g, 'text/plain'), 'latin1');
    await expect(resolveReport(noHeaders, { ...resolving, keyd, disclose: true })).rejects.toThrow(/carries no original headers/);
    expect(keyd.calls).toEqual([]);
  });
});
