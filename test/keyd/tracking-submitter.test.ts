/**
 * Tracking tokens name the From (a registered user) and, when the gateway
 * knows it, who authenticated the submission (an SMTP AUTH login, or the
 * sender a trusted relay vouched for): both come back on resolution, the
 * submitter is sealed inside the token like the rest, bad values are refused.
 */
import { describeResolution } from '../../src/abuse/resolve';
import { loadKeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, openKeyd } from '../../src/keyd/daemon';
import { KeydError } from '../../src/keyd/errors';
import type { Actor } from '../../src/keyd/service';
import { makeOrgFixture } from '../support/org-fixture';

const gateway: Actor = { role: 'gateway', name: 'test gateway' };
const admin: Actor = { role: 'admin', name: 'test admin' };

describe('tracking tokens with the submitter', () => {
  const fx = makeOrgFixture();
  const parts = openKeyd(loadKeydConfig(fx.configFile), () => new Date());
  const { service } = parts;
  afterAll(() => parts.store.close());
  beforeAll(async () => {
    await service.maintain(KEYD_ACTOR);
    await service.addUser(admin, { address: 'alice@a.example', code: 'U-1', identityRef: 'EMP-1' });
  });

  test('From and submitter both come back; the submitter is not readable in the token', async () => {
    const { token } = (await service.mintToken(gateway, {
      sender: 'alice@a.example',
      messageId: '<m1@a.example>',
      submitter: 'dave@a.example',
      submittedVia: 'trusted-relay',
    })) as { token: string };
    expect(Buffer.from(token, 'base64url').toString('latin1')).not.toMatch(/dave|trusted/);
    const r = await service.resolveToken(admin, { token });
    expect(r.user).toMatchObject({ address: 'alice@a.example', code: 'U-1' });
    expect(r.submitter).toEqual({ id: 'dave@a.example', via: 'trusted-relay' });
    const auth = (await service.mintToken(gateway, {
      sender: 'alice@a.example',
      messageId: '<m2@a.example>',
      submitter: 'alice',
      submittedVia: 'smtp-auth',
    })) as { token: string };
    expect((await service.resolveToken(admin, { token: auth.token })).submitter).toEqual({ id: 'alice', via: 'smtp-auth' });
  });

  test("the longest submitter still gives a token within the seal's tt= limit and resolve's", async () => {
    const id = `${'é'.repeat(60)}12345678`; // 128 bytes
    const { token } = (await service.mintToken(gateway, {
      sender: 'alice@a.example',
      messageId: `<${'m'.repeat(900)}@a.example>`,
      submitter: id,
      submittedVia: 'trusted-relay',
    })) as { token: string };
    expect(token.length).toBeLessThanOrEqual(400);
    expect((await service.resolveToken(admin, { token })).submitter).toEqual({ id, via: 'trusted-relay' });
  });

  test('without a submitter (as tokens minted before): resolution has none', async () => {
    const { token } = (await service.mintToken(gateway, { sender: 'alice@a.example', messageId: '<m3@a.example>' })) as { token: string };
    const r = await service.resolveToken(admin, { token });
    expect(r.user).toMatchObject({ address: 'alice@a.example' });
    expect(r).not.toHaveProperty('submitter');
  });

  test("the mail system's token (failure reports to peers): resolves to mailer-daemon, not a user; nothing to disclose; other unregistered senders still refused", async () => {
    const { token } = (await service.mintToken(gateway, { mailSystem: true, messageId: '<r1@a.example>' })) as { token: string };
    const r = await service.resolveToken(admin, { token, messageId: '<r1@a.example>' });
    expect(r.user).toEqual({ address: 'mailer-daemon@a.example', code: '#mail-system', status: 'mail-system', kind: 'mail-system' });
    expect(r.messageIdMatches).toBe(true);
    await expect(service.disclose({ role: 'disclosure', name: 'test disclosure' }, { token, messageId: '<r1@a.example>' })).rejects.toThrow(
      /mail system .*no identity to disclose/,
    );
    await expect(service.mintToken(gateway, { sender: 'mailer-daemon@elsewhere.example', messageId: '<r2@a.example>' })).rejects.toThrow(
      /not a registered user/,
    );
    // naming the mail system's address is not asking for its token: a user's From: MAILER-DAEMON@<own domain> stays unregistered
    await expect(service.mintToken(gateway, { sender: 'MAILER-DAEMON@a.example', messageId: '<r4@a.example>' })).rejects.toThrow(
      /not a registered user/,
    );
    await expect(service.mintToken(gateway, { mailSystem: true, sender: 'dave@a.example', messageId: '<r5@a.example>' })).rejects.toThrow(
      /names no sender/,
    );
    await expect(service.mintToken(gateway, { mailSystem: 'yes', sender: 'dave@a.example', messageId: '<r6@a.example>' })).rejects.toThrow(
      /must be true/,
    );
    await expect(service.mintToken(gateway, { sender: 'postmaster@a.example', messageId: '<r3@a.example>' })).rejects.toThrow(
      /not a registered user/,
    );
  });

  test.each([
    [{ submitter: 'dave@a.example', submittedVia: 'carrier-pigeon' }, /"submittedVia" must be "smtp-auth" or "trusted-relay"/],
    [{ submitter: 'dave@a.example' }, /"submittedVia" must be/],
    [{ submitter: 'x'.repeat(129), submittedVia: 'smtp-auth' }, /"submitter" must be a string of 1-128 characters/],
    [{ submitter: 'é'.repeat(65), submittedVia: 'smtp-auth' }, /"submitter" must be at most 128 bytes of UTF-8/],
    [{ submitter: 'dave\tx', submittedVia: 'smtp-auth' }, /without control characters/],
    [{ submitter: 'dave\r\nX: y', submittedVia: 'smtp-auth' }, /"submitter" must be a string/],
    [{ submitter: '', submittedVia: 'smtp-auth' }, /"submitter" must be a string/],
  ])('a bad submitter is refused: %#', async (extra, message) => {
    let err: unknown;
    try {
      await service.mintToken(gateway, { sender: 'alice@a.example', messageId: '<m4@a.example>', ...extra });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KeydError);
    expect((err as KeydError).code).toBe('bad-request');
    expect((err as Error).message).toMatch(message);
  });
});

test('ssmax abuse resolve prints the From and the submitter', () => {
  const lines = describeResolution({
    user: { address: 'alice@a.example', code: 'U-1', status: 'active' },
    time: '2026-12-06T03:00:00.000Z',
    keyVersion: 1,
    submitter: { id: 'dave@a.example', via: 'trusted-relay' },
  });
  expect(lines.slice(0, 2)).toEqual(['address: alice@a.example (From)', 'submitted by: dave@a.example (trusted-relay)']);
  expect(
    describeResolution({
      user: { address: 'alice@a.example', code: 'U-1', status: 'active' },
      time: '2026-12-06T03:00:00.000Z',
      keyVersion: 1,
    }).join('\n'),
  ).not.toMatch(/submitted by/);
});
