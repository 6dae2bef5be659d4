/**
 * A quarantined message's content for the console (docs/console.md), only
 * when the organisation gave the console an inspector-role certificate
 * ([quarantine] inspector_cert): the message stays encrypted in the store;
 * its capsule for this organisation is blinded and sent to keyd's
 * `POST /v1/decrypt` with that certificate (keyd allows it to the inspector
 * role only, and audits it), keyd's DLEQ proof is checked against the
 * organisation's key, and the message is decrypted in memory. The message key
 * is wiped after use; the plaintext goes to the page and nowhere else (never
 * to a log or a file).
 */
import { blindForDecryption, completeBlindedDecryption, defaultGroup, systemRng } from '../crypto';
import { DEFAULT_LIMITS, collect, decryptMessage, listCapsulesIn, parseHead } from '../envelope';
import type { KeydClient } from '../keyd/client';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));

/** The plaintext of an encrypted message held for `domain`. `keyd`: the admin's view (public keys); `inspector`: the inspector-role client. */
export async function quarantinedPlaintext(
  message: Uint8Array,
  domain: string,
  keyd: { call<T>(method: 'GET', path: string): Promise<T> },
  inspector: Pick<KeydClient, 'call'>,
): Promise<Buffer> {
  const raw = Buffer.from(message);
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error('the held message has no header block');
  const capsule = listCapsulesIn(parseHead(raw.subarray(0, end + 2), DEFAULT_LIMITS)).find((c) => c.keyId.startsWith(`${domain}:`));
  if (!capsule) throw new Error(`the held message has no capsule for ${domain}`);
  const pub = await keyd.call<{ keys: { keyId: string; publicKey: string }[] }>('GET', '/v1/public');
  const orgKey = pub.keys.find((k) => k.keyId === capsule.keyId);
  if (!orgKey) throw new Error(`key ${capsule.keyId} is unknown to keyd`);
  const group = defaultGroup;
  const { request, blinding } = blindForDecryption(group, capsule, systemRng);
  const r = await inspector.call<{ z: string; c: string; s: string }>('POST', '/v1/decrypt', { keyId: capsule.keyId, e: b64(request.e) });
  const opened = completeBlindedDecryption(
    group,
    blinding,
    { z: unb64(r.z), proof: { c: unb64(r.c), s: unb64(r.s) } },
    new Uint8Array(Buffer.from(orgKey.publicKey, 'hex')),
  );
  if (!opened.ok) throw new Error(`key service answer refused: ${opened.reason}`);
  try {
    return await collect(decryptMessage(raw, { messageKey: opened.messageKey }, { group }));
  } finally {
    opened.messageKey.fill(0);
  }
}
