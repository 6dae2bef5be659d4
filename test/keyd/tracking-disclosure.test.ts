/**
 * Disclosure is tied to the message the token was minted for: keyd reveals
 * the identity reference only when the request names that message's
 * Message-ID, and refuses (and audits the refusal) otherwise. Every resolve
 * and disclose record holds the token's digest, the Message-ID's digest (the
 * one the token's mint record holds) and whether it matched — never the
 * token or the Message-ID themselves.
 */
import { loadKeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, openKeyd } from '../../src/keyd/daemon';
import { KeydError } from '../../src/keyd/errors';
import type { Actor } from '../../src/keyd/service';
import { makeOrgFixture } from '../support/org-fixture';

const gateway: Actor = { role: 'gateway', name: 'test gateway' };
const admin: Actor = { role: 'admin', name: 'test admin' };
const disclosure: Actor = { role: 'disclosure', name: 'test disclosure' };

describe('disclosure needs the Message-ID the token was minted for', () => {
  const fx = makeOrgFixture();
  const parts = openKeyd(loadKeydConfig(fx.configFile), () => new Date());
  const { service } = parts;
  let token: string;
  afterAll(() => parts.store.close());
  beforeAll(async () => {
    await service.maintain(KEYD_ACTOR);
    await service.addUser(admin, { address: 'alice@a.example', code: 'U-1', identityRef: 'EMP-1001' });
    ({ token } = (await service.mintToken(gateway, { sender: 'alice@a.example', messageId: '<m1@a.example>' })) as { token: string });
  });

  const refusal = (p: Promise<unknown>): Promise<KeydError> =>
    p.then(
      () => {
        throw new Error('expected a refusal');
      },
      (e: unknown) => e as KeydError,
    );
  const last = () => parts.audit.tail(1)[0]!;

  test('another Message-ID (a genuine token copied onto another message): refused, audited as refused with both digests', async () => {
    const err = await refusal(service.disclose(disclosure, { token, messageId: '<threat@a.example>' }));
    expect(err).toBeInstanceOf(KeydError);
    expect(err.code).toBe('target-refused');
    expect(err.message).toMatch(/not the one the token was minted for/);
    expect(JSON.stringify(err)).not.toContain('EMP-1001');
    const rec = last();
    expect(rec).toMatchObject({ op: 'tracking.disclose', role: 'disclosure', result: 'refused', digest: parts.audit.digest(token) });
    expect(rec.reason).toContain(`message-id ${parts.audit.digest('<threat@a.example>')}`);
    expect(rec.reason).toMatch(/not the one the token was minted for/);
    expect(JSON.stringify(rec)).not.toContain(token);
    expect(JSON.stringify(rec)).not.toContain('threat@');
  });

  test('no Message-ID: refused and audited', async () => {
    const err = await refusal(service.disclose(disclosure, { token }));
    expect(err.code).toBe('bad-request');
    expect(err.message).toMatch(/names no Message-ID/);
    expect(last()).toMatchObject({ op: 'tracking.disclose', result: 'refused', digest: parts.audit.digest(token) });
    expect(last().reason).toMatch(/^message-id none: /);
  });

  test('the right Message-ID: disclosed, and the record says it matched (the same digest as the mint record)', async () => {
    const r = await service.disclose(disclosure, { token, messageId: '<m1@a.example>' });
    expect(r.identityRef).toBe('EMP-1001');
    expect(r.messageIdMatches).toBe(true);
    const mid = parts.audit.digest('<m1@a.example>');
    expect(last()).toMatchObject({
      op: 'tracking.disclose',
      result: 'ok',
      target: 'alice@a.example',
      digest: parts.audit.digest(token),
      reason: `message-id ${mid}: matches; identity disclosed`,
    });
    expect(parts.audit.tail(50).some((x) => x.op === 'tracking.mint' && x.digest === mid)).toBe(true);
  });

  test('resolve records the digests and the match result too', async () => {
    const r = await service.resolveToken(admin, { token, messageId: '<other@a.example>' });
    expect(r.messageIdMatches).toBe(false);
    expect(last()).toMatchObject({
      op: 'tracking.resolve',
      result: 'ok',
      digest: parts.audit.digest(token),
      reason: `message-id ${parts.audit.digest('<other@a.example>')}: does not match`,
    });
    await service.resolveToken(admin, { token });
    expect(last()).toMatchObject({ op: 'tracking.resolve', reason: 'message-id none: not asked' });
  });
});
