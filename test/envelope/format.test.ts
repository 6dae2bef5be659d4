import fc from 'fast-check';
import libqp from 'libqp';
import { readMessage } from '../../src/chain/body-hash';
import {
  CryptoError,
  blindForReencryption,
  decapsulate,
  deriveContentKey,
  groups,
  openContent,
  transformBlinded,
  unblindReencryption,
} from '../../src/crypto';
import {
  DEFAULT_LIMITS,
  type DecryptionKey,
  collect,
  decryptMessage,
  encryptMessage,
  encryptParts,
  listCapsules,
  parseCapsule,
  parseContentType,
  replaceCapsules,
} from '../../src/envelope';
import { keyring, multipartMessage, plainMessage } from '../support/messages';
import { seededRng } from '../support/seeded-rng';

const group = groups.libsecp256k1;
const rng = seededRng('format');
const [alice, bob, org, peer] = keyring(group, rng, 4) as [
  ReturnType<typeof keyring>[number],
  ReturnType<typeof keyring>[number],
  ReturnType<typeof keyring>[number],
  ReturnType<typeof keyring>[number],
];
const opts = { group, rng, chunkSize: 1024 };
const enc = (m: Buffer, r = [org.recipient]) => collect(encryptMessage(m, r, opts));
const dec = (m: Buffer, key: DecryptionKey = org.key) => collect(decryptMessage(m, key, { group }));
async function failure(p: Promise<unknown>): Promise<CryptoError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CryptoError);
    return err as CryptoError;
  }
  throw new Error('expected a CryptoError');
}

describe('profile "message": the whole message encrypted', () => {
  test('property: decryption gives back the original bytes exactly, for any body', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 6000 }), async (body) => {
        const m = Buffer.concat([plainMessage(''), body]);
        expect(await dec(await enc(m))).toEqual(m);
      }),
      { numRuns: 25 },
    );
  });

  test('the outer message shows addressing headers, capsules and ciphertext only: no Bcc, no body', async () => {
    const m = plainMessage('TOP SECRET merger plans\r\n');
    const c = (await enc(m)).toString('latin1');
    const head = c.slice(0, c.indexOf('\r\n\r\n'));
    expect(head).toMatch(/^From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: Q3 figures\r\n/);
    expect(head).toMatch(/\r\nSSMAX-Version: 1\r\nSSMAX-Capsule: v=1; kid=/);
    expect(head).toMatch(/Content-Type: application\/ssmax-encrypted; profile=message; v=1; cid=[A-Za-z0-9_-]{22}; chunk=1024/);
    expect(head).not.toMatch(/Bcc|carol/);
    expect(c).not.toMatch(/merger/);
  });

  test('each recipient opens its own capsule; others get "no-key"', async () => {
    const m = plainMessage();
    const c = await enc(m, [org.recipient, bob.recipient]);
    expect(await dec(c, bob.key)).toEqual(m);
    expect(await dec(c, org.key)).toEqual(m);
    const err = await failure(dec(c, alice.key));
    expect(err.code).toBe('no-key');
    expect(err.message).toMatch(/no capsule for key id/);
  });

  test('a message key recovered elsewhere (the inspector path) opens the message', async () => {
    const m = plainMessage();
    const c = await enc(m);
    const [capsule] = await listCapsules(c);
    expect(await dec(c, { messageKey: decapsulate(group, capsule!, org.privateKey) })).toEqual(m);
  });

  test('an already encrypted message is not encrypted again', async () => {
    expect((await failure(enc(await enc(plainMessage())))).message).toMatch(/already carries SSMAX-Capsule/);
  });
});

describe('transfer encodings of the ciphertext', () => {
  const requoted = (c: Buffer): Buffer => {
    const text = c.toString('latin1');
    const at = text.indexOf('\r\n\r\n') + 4;
    const qp = libqp.wrap(libqp.encode(Buffer.from(text.slice(at).replace(/\r\n/g, ''), 'base64')), 76);
    return Buffer.from(
      `${text.slice(0, at).replace('Content-Transfer-Encoding: base64', 'Content-Transfer-Encoding: quoted-printable')}${qp}\r\n`,
      'latin1',
    );
  };

  test('re-encoded from base64 to quoted-printable in transit, the body hash holds and the message still decrypts', async () => {
    const m = plainMessage('QP relay body.\r\n'.repeat(300));
    const c = await enc(m);
    const q = requoted(c);
    expect(q.toString('latin1')).toMatch(/Content-Transfer-Encoding: quoted-printable\r\n\r\n[^\r]*=[0-9A-F]{2}/);
    expect((await readMessage(q)).bodyHash).toBe((await readMessage(c)).bodyHash);
    expect(await dec(q)).toEqual(m);
  });

  test('a transfer encoding other than base64 or quoted-printable is refused', async () => {
    const c = (await enc(plainMessage('x\r\n')))
      .toString('latin1')
      .replace('Content-Transfer-Encoding: base64', 'Content-Transfer-Encoding: 8bit');
    expect((await failure(dec(Buffer.from(c, 'latin1')))).message).toMatch(
      /Content-Transfer-Encoding "8bit", expected base64 or quoted-printable/,
    );
  });
});

describe('re-encryption replaces capsules and never touches content', () => {
  test('org -> peer via the blinded protocol: the body bytes are unchanged and the peer decrypts', async () => {
    const m = plainMessage();
    const c = await enc(m);
    const [capsule] = await listCapsules(c);
    const { request, blinding } = blindForReencryption(group, capsule!, rng);
    const answer = transformBlinded(group, org.privateKey, request, peer.publicKey, rng);
    const moved = await collect(replaceCapsules(c, [unblindReencryption(group, blinding, answer, peer.recipient)]));
    const body = (b: Buffer) => b.subarray(b.indexOf('\r\n\r\n'));
    expect(body(moved)).toEqual(body(c));
    expect((await listCapsules(moved)).map((x) => x.keyId)).toEqual([peer.recipient.keyId]);
    expect(await dec(moved, peer.key)).toEqual(m);
    expect((await failure(dec(moved, org.key))).code).toBe('no-key');
  });
});

describe('profile "part": chosen attachments encrypted inside a plain message', () => {
  test('the byte extent of an encrypted part (docs/format.md): its header block through its content, without the CRLF before the next delimiter', async () => {
    const m = Buffer.from(
      'From: a@a.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\npre\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n' +
        '--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="x.pdf"\r\n\r\nPDFDATA\r\n\r\n--b--\r\nepi\r\n',
    );
    const c = (await collect(encryptParts(m, [org.recipient], opts))).toString('latin1');
    const part = /cid=([A-Za-z0-9_-]+); chunk=(\d+)\r\n[\s\S]*?\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--b--\r\nepi\r\n$/.exec(c)!;
    const [capsule] = await listCapsules(Buffer.from(c, 'latin1'));
    const P = decapsulate(group, capsule!, (org.key as { privateKey: Uint8Array }).privateKey);
    const plain = openContent(
      deriveContentKey(P, Buffer.from(part[1]!, 'base64url'), Number(part[2])),
      Buffer.from(part[3]!.replace(/\r\n/g, ''), 'base64'),
    );
    expect(plain.toString('latin1')).toBe(
      'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="x.pdf"\r\n\r\nPDFDATA\r\n',
    );
  });

  test('decryption gives back the original message byte for byte', async () => {
    const m = multipartMessage();
    const c = await collect(encryptParts(m, [org.recipient], opts));
    expect(await dec(c)).toEqual(m);
  });

  test('only the attachments are encrypted; text, preamble, epilogue and filenames of others stay; original filenames are hidden', async () => {
    const c = (await collect(encryptParts(multipartMessage(), [org.recipient], opts))).toString('latin1');
    expect(c).toMatch(/^SSMAX-Version: 1\r\nSSMAX-Capsule: /);
    expect(c).toContain('see attached');
    expect(c).toContain('preamble');
    expect(c).toContain('epilogue');
    expect(c).not.toContain('q3.pdf');
    expect(c).not.toContain('1,2');
    expect(c.match(/profile=part/g)).toHaveLength(2);
  });

  test('a custom selector encrypts just the chosen part', async () => {
    const m = multipartMessage();
    const c = await collect(encryptParts(m, [org.recipient], { ...opts, select: (p) => p.contentType === 'text/csv' }));
    expect(c.toString('latin1')).toContain('q3.pdf');
    expect(c.toString('latin1')).not.toContain('1,2');
    expect(await dec(c)).toEqual(m);
  });

  test('no matching part is an error', async () => {
    expect((await failure(collect(encryptParts(plainMessage(), [org.recipient], opts)))).message).toMatch(/no part matched/);
  });
});

describe('tampering is detected with a clean error', () => {
  test('property: any single-bit change in the capsule header, a chunk or a tag fails', async () => {
    const m = plainMessage('x'.repeat(3000));
    const c = await enc(m);
    const headEnd = c.indexOf('\r\n\r\n') + 4;
    const capStart = c.indexOf('SSMAX-Capsule:') + 'SSMAX-Capsule: '.length;
    const capEnd = c.indexOf('\r\n', capStart);
    const body = Buffer.from(c.subarray(headEnd).toString('latin1').replace(/\r\n/g, ''), 'base64');
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.nat(), async (inCapsule, n) => {
        let bad: Buffer;
        if (inCapsule) {
          // change one character of the capsule value to another legal character
          const i = capStart + (n % (capEnd - capStart));
          bad = Buffer.from(c);
          const ch = String.fromCharCode(bad[i]!);
          bad[i] = (/[A-Za-z0-9]/.test(ch) ? (ch === 'A' ? 'B' : 'A') : 'x').charCodeAt(0);
        } else {
          const flipped = Buffer.from(body);
          const bit = n % (flipped.length * 8);
          flipped[bit >> 3] = flipped[bit >> 3]! ^ (1 << (bit & 7));
          bad = Buffer.concat([c.subarray(0, headEnd), Buffer.from(flipped.toString('base64').replace(/.{76}/g, '$&\r\n'))]);
        }
        const err = await failure(dec(bad));
        expect(['bad-capsule', 'bad-point', 'auth-failed', 'no-key', 'bad-format']).toContain(err.code);
      }),
      { numRuns: 60 },
    );
  });

  test('a truncated body fails authentication', async () => {
    const c = await enc(plainMessage('y'.repeat(5000)));
    expect((await failure(dec(c.subarray(0, c.length - 200)))).code).toBe('auth-failed');
  });

  test('non-base64 characters in the body are reported, not skipped', async () => {
    const c = Buffer.from(await enc(plainMessage()));
    const at = c.indexOf('\r\n\r\n') + 10;
    c[at] = '*'.charCodeAt(0);
    expect((await failure(dec(c))).message).toMatch(/character "\*" at \d+ is not base64/);
  });
});

describe('strict header grammar', () => {
  const good = 'v=1; kid=abc; e=' + Buffer.alloc(33, 2).toString('base64url') + '; f=' + Buffer.alloc(33, 3).toString('base64url');
  test.each([
    ['a missing tag', good.replace(/; f=.*/, ''), /tag "f" missing/],
    ['an unknown tag', `${good}; x=1`, /unknown tag "x"/],
    ['a repeated tag', `${good}; v=1`, /tag "v" repeated/],
    ['another version', good.replace('v=1', 'v=2'), /version "2" is not supported/],
    ['a key id with a space', good.replace('kid=abc', 'kid=a b'), /key id "a b"/],
    ['a short point', good.replace(/e=[^;]+/, 'e=AAAA'), /expected 33 bytes/],
    ['standard base64 instead of base64url', good.replace(/e=[^;]+/, 'e=' + Buffer.alloc(33, 255).toString('base64')), /not base64url/],
    ['a bare word', 'garbage', /is not tag=value/],
  ])('a capsule with %s is refused precisely', (_n, value, msg) => {
    expect(() => parseCapsule(value)).toThrow(msg);
  });
  test('a folded capsule header parses', () => {
    expect(parseCapsule(good.replace('; e=', ';\r\n e=')).keyId).toBe('abc');
  });
  test.each([
    ['profile=x; v=1; cid=AAAAAAAAAAAAAAAAAAAAAA; chunk=1024', /profile "x"/],
    ['profile=part; v=9; cid=AAAAAAAAAAAAAAAAAAAAAA; chunk=1024', /version "9"/],
    ['profile=part; v=1; cid=AAAA; chunk=1024', /expected 16 bytes/],
    ['profile=part; v=1; cid=AAAAAAAAAAAAAAAAAAAAAA; chunk=12', /chunk size "12"/],
    ['profile=part; v=1; cid=AAAAAAAAAAAAAAAAAAAAAA; chunk=-5', /chunk "-5" is not a number/],
  ])('Content-Type parameters "%s" are refused', (params, msg) => {
    expect(() => parseContentType(`application/ssmax-encrypted; ${params}`)).toThrow(msg);
  });
  test('other media types are not encrypted entities', () => {
    expect(parseContentType('text/plain; charset=utf-8')).toBeNull();
  });
});

describe('hard limits, each with a clear error', () => {
  const nested = (depth: number) => {
    let open = '';
    let close = '';
    for (let i = 0; i < depth; i++) {
      open += `Content-Type: multipart/mixed; boundary="d${i}"\r\n\r\n--d${i}\r\n`;
      close = `\r\n--d${i}--\r\n${close}`;
    }
    return Buffer.from(
      `From: a@a.example\r\nMIME-Version: 1.0\r\n${open}Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nx${close}`,
    );
  };
  test('nesting deeper than the limit', async () => {
    const err = await failure(collect(encryptParts(nested(DEFAULT_LIMITS.maxDepth + 2), [org.recipient], opts)));
    expect(err.code).toBe('limit');
    expect(err.message).toMatch(/nesting depth exceeds the limit of 16/);
  });
  test('more parts than the limit', async () => {
    const parts = Array.from({ length: 30 }, (_, i) => `--p\r\nContent-Disposition: attachment\r\n\r\n${i}\r\n`).join('');
    const m = Buffer.from(`From: a@a.example\r\nContent-Type: multipart/mixed; boundary="p"\r\n\r\n${parts}--p--\r\n`);
    const err = await failure(collect(encryptParts(m, [org.recipient], { ...opts, limits: { ...DEFAULT_LIMITS, maxParts: 10 } })));
    expect(err.message).toMatch(/number of MIME parts exceeds the limit of 10/);
  });
  test('more header fields than the limit', async () => {
    const m = Buffer.from(`${'X-A: 1\r\n'.repeat(DEFAULT_LIMITS.maxHeaders + 1)}\r\nbody`);
    expect((await failure(enc(m))).message).toMatch(/header count of the message exceeds the limit of 400/);
  });
  test('a header field longer than the limit', async () => {
    const m = Buffer.from(`Subject: ${'a'.repeat(DEFAULT_LIMITS.maxHeaderLength)}\r\n\r\nbody`);
    expect((await failure(enc(m))).message).toMatch(/header "subject" of the message exceeds the limit/);
  });
  test('a header block without end larger than the limit', async () => {
    const m = Buffer.from(`X: ${'a'.repeat(DEFAULT_LIMITS.maxHeaderBlock + 10)}`);
    expect((await failure(enc(m))).message).toMatch(/header block exceeds the limit/);
  });
  test('more capsules than the limit', async () => {
    const many = Array.from({ length: DEFAULT_LIMITS.maxCapsules + 1 }, () => org.recipient);
    expect((await failure(enc(plainMessage(), many))).message).toMatch(/number of recipients exceeds the limit/);
  });
});
