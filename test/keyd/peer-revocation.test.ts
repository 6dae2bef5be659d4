/**
 * keyd re-encrypts to a peer organisation only while the peer's key
 * validates against keyd's own CRLs ([pki] crls, read when they change) as
 * well as those the gateway sends (src/pki/known-crls.ts): when the root
 * revokes the peer's org CA, a request carrying the peer's older root CRL
 * is refused, and a local file replaced by an older CRL does not undo it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blindForReencryption, encapsulate, groups, newMessageKey, systemRng } from '../../src/crypto';
import { loadKeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, openKeyd } from '../../src/keyd/daemon';
import { KeydError } from '../../src/keyd/errors';
import { KeydClientError } from '../../src/keyd/client';
import { fromKeyd } from '../../src/keyd/client-ops';
import { GatewayError } from '../../src/mail/replies';
import type { Actor } from '../../src/keyd/service';
import { createCrl } from '../../src/pki/crl';
import { DAY, makeOrg, wholeSecondNow } from '../directory/fixtures';

const g = groups.libsecp256k1;
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64url');
const gateway: Actor = { role: 'gateway', name: 'test gateway' };

test('a peer whose org CA the local root CRL revokes is refused as a target, whatever older root CRL the request carries', async () => {
  const a = makeOrg('a.example');
  const b = makeOrg('b.example', a.fx.root);
  const now = wholeSecondNow();
  const rootCrl = (n: number, revokeB: boolean) =>
    createCrl(a.fx.root, {
      entries: revokeB ? [{ serial: b.fx.orgCa.certificate.serial, revokedAt: new Date(now - 500), reason: 'cACompromise' }] : [],
      thisUpdate: new Date(now - 500),
      nextUpdate: new Date(now + 7 * DAY),
      crlNumber: n,
    }).pem;
  const parts = openKeyd(loadKeydConfig(a.fx.configFile), () => new Date(now));
  try {
    await parts.service.maintain(KEYD_ACTOR);
    const current = parts.keyring.current(new Date(now))!;
    const capsule = encapsulate(
      g,
      newMessageKey(g, systemRng),
      { keyId: current.keyId, publicKey: new Uint8Array(Buffer.from(current.publicKey, 'hex')) },
      systemRng,
    );
    // the target as the gateway sends it: b's key certificate, its chain, the CRLs of b's bundle (root CRL 2)
    const target = { kind: 'peer', domain: 'b.example', certificate: b.encV1.pem, chain: [b.fx.orgCa.certificate.pem], crls: b.crls };
    const reencrypt = () => {
      const { request } = blindForReencryption(g, capsule, systemRng);
      return parts.service.reencrypt(gateway, { keyId: capsule.keyId, e: b64(request.e), f: b64(request.f), target });
    };
    expect((await reencrypt()).targetKeyId).toBe('b.example:v1');
    // the root revokes b's org CA: keyd's [pki] crls gets root CRL 3
    const rootFile = join(a.fx.dir, 'root.crl.pem');
    writeFileSync(rootFile, rootCrl(3, true));
    const refused = async () => {
      try {
        await reencrypt();
      } catch (err) {
        expect(err).toBeInstanceOf(KeydError);
        return err as KeydError;
      }
      throw new Error('expected a refusal');
    };
    const err = await refused();
    expect(err.code).toBe('target-refused');
    expect(err.message).toMatch(/Peer certificate for "b.example" refused: .*revoked .*\(cACompromise\)/);
    // a refusal for good, said so in `details` (the gateway answers a direct recipient 550 5.7.5: fromKeyd)
    expect(err.details).toEqual({
      domain: 'b.example',
      validation: 'revoked',
      final: expect.stringMatching(/^revoked \(cACompromise, at /) as unknown,
    });
    const answer = fromKeyd(new KeydClientError(err.code, err.message, err.status, err.details));
    expect(answer).toBeInstanceOf(GatewayError);
    expect((answer as GatewayError).reply).toMatchObject({ code: 550, status: '5.7.5' });
    expect((answer as GatewayError).reply.text).toMatch(
      /^SSMAX keys of the recipient's domain refused for good: b\.example: the key service refuses its certificate, revoked \(cACompromise, at /,
    );
    // without `final` (an older keyd, or a refusal that may pass later): for now, as before
    const { final: _final, ...later } = err.details!;
    void _final;
    expect((fromKeyd(new KeydClientError(err.code, err.message, err.status, later)) as GatewayError).reply.code).toBe(451);
    // the file replaced by an older root CRL: the revocation seen stays
    writeFileSync(rootFile, rootCrl(2, false));
    expect((await refused()).message).toMatch(/revoked/);
  } finally {
    await parts.store.close();
  }
});
