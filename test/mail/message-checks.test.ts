import { type Capsule, encapsulate, generateEncryptionKeyPair, groups, newMessageKey, systemRng } from '../../src/crypto';
import {
  MAX_SENDER_ADDRESSES,
  canonicalAddress,
  capsuleFor,
  checkMessage,
  domainOf,
  senderOf,
  shownSenders,
} from '../../src/mail/message-checks';
import { GatewayError } from '../../src/mail/replies';

function refusal(raw: string): GatewayError {
  try {
    checkMessage(Buffer.from(raw, 'latin1'));
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return err as GatewayError;
  }
  throw new Error('accepted');
}

describe('checks every message passes before the protocol steps', () => {
  test('a bare CR or a bare LF inside a header field: 550 5.6.0 naming the field', () => {
    for (const raw of [
      'From: a@a.example\r\nSubject: x\rBcc: m@evil.example\r\n\r\nbody',
      'From: a@a.example\r\nSubject: x\nBcc: m@evil.example\r\n\r\nbody',
    ]) {
      const e = refusal(raw);
      expect([e.reply.code, e.reply.status]).toEqual([550, '5.6.0']);
      expect(e.reply.text).toMatch(/Bare CR or LF inside a header field: in "Subject"/);
    }
  });
  test('a NUL byte in a header field: 550 5.6.0 naming the field (the address parser drops it: "alice\\0@a.example" read as alice@a.example)', () => {
    for (const [raw, field] of [
      ['From: alice\0@a.example\r\nTo: b@b.example\r\nMessage-ID: <n1@a.example>\r\n\r\nbody\r\n', 'From'],
      ['From: alice@a.example\0@evil.example\r\nTo: b@b.example\r\n\r\nbody\r\n', 'From'],
      ['From: a@a.example\r\nSubject: x\0y\r\nTo: b@b.example\r\n\r\nbody\r\n', 'Subject'],
    ] as const) {
      const e = refusal(raw);
      expect(`${e.reply.code} ${e.reply.status} ${e.reply.text}`).toBe(`550 5.6.0 Header field holds a NUL byte: in "${field}"`);
    }
    // on a continuation line (of a decrypted header too): the field named, never the line's text
    const e = refusal('To: b@b.example\r\nSubject: x\r\n  quarterly loss 40M\0 y\r\nFrom: a@a.example\r\n\r\nb\r\n');
    expect(e.reply.text).toBe('Header field holds a NUL byte: in "Subject"');
    expect(refusal('X\0Y: 1\r\n\r\nb\r\n').reply.text).toBe('Header field holds a NUL byte: in a header field');
    expect(refusal('To: b@b.example\r\nSubject: a\r\n\tsecret text\rinner\r\n\r\nb\r\n').reply.text).toBe(
      'Bare CR or LF inside a header field: in "Subject"',
    );
    // a NUL in the body is the body's (binary content is encoded; the chain's parsers read it)
    expect(() => checkMessage(Buffer.from('From: a@a.example\r\nTo: b@b.example\r\n\r\nx\0y\r\n', 'latin1'))).not.toThrow();
  });

  test('raw header bytes that are not UTF-8: 550 5.6.0 naming the field (never its value); raw UTF-8 is fine (RFC 6532)', () => {
    for (const [raw, field] of [
      ['From: a@a.example\r\nSubject: caf\xe9\r\n\r\nbody', 'Subject'],
      ['From: "Ren\xe9" <a@a.example>\r\nSubject: x\r\n\r\nbody', 'From'],
      ['From: a@a.example\r\nSubject: x\r\n \xff continued\r\n\r\nbody', 'Subject'], // in a continuation line: its field
      ['From: a@a.example\r\nX-Half: \xc3\r\n\r\nbody', 'X-Half'], // a UTF-8 sequence cut short
    ]) {
      const e = refusal(raw!);
      expect([e.reply.code, e.reply.status]).toEqual([550, '5.6.0']);
      expect(e.reply.text).toContain(`not UTF-8 (use RFC 2047 encoded words): in "${field}"`);
      expect(e.reply.text).not.toMatch(/caf|Ren|continued/);
    }
    const utf8 = Buffer.from(
      'From: "Ren\u00e9" <a@a.example>\r\nSubject: caf\u00e9 \u65e5\u672c\r\n\r\n\xe9 body bytes are not header bytes',
      'utf8',
    );
    expect(checkMessage(Buffer.concat([utf8, Buffer.from([0xe9, 0xff])])).from).toBe('a@a.example');
  });
  test('the UTF-8 check is linear: a 600 kB header block of 20 000 UTF-8 fields, only the last one Latin-1, is refused naming the last in well under a second', () => {
    // every field but the last is valid UTF-8 ("café" as its two-byte form), so the per-line scan runs over all of them
    const fields = Array.from({ length: 19999 }, (_, i) => `X-F${i}: caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9\r\n`).join('');
    const t0 = process.hrtime.bigint();
    const e = refusal(`From: a@a.example\r\n${fields}X-Last: caf\xe9\r\n\r\nbody`);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    expect(e.reply.status).toBe('5.6.0');
    expect(e.reply.text).toContain('in "X-Last"');
    expect(ms).toBeLessThan(1000);
  });
  test('a bare CR anywhere in the body (a CR not followed by LF) is refused 550 5.6.0 naming the line: "<CR>.<CR>" could end the DATA at a next hop (SMTP smuggling)', () => {
    const smuggle = 'From: a@a.example\r\nSubject: x\r\n\r\nx\r.\rMAIL FROM:<ceo@a.example>\r\nRCPT TO:<v@b.example>\r\n';
    const e = refusal(smuggle);
    expect([e.reply.code, e.reply.status]).toEqual([550, '5.6.0']);
    expect(e.reply.text).toContain('Bare CR in the message (a CR not followed by LF); end every line with CRLF: at line 4');
    expect(refusal('From: a@a.example\r\n\r\nok\r\nlast line ends in CR\r').reply.text).toContain('at line 4');
    expect(checkMessage(Buffer.from('From: a@a.example\r\n\r\nx\r\n.\r\n..\r\n', 'latin1')).from).toBe('a@a.example');
  });
  test('the bare CR check is linear: 4 MB of CRLF lines with one bare CR at the end is refused in well under a second', () => {
    const body = 'line of text\r\n'.repeat(300000);
    const t0 = process.hrtime.bigint();
    const e = refusal(`From: a@a.example\r\n\r\n${body}x\ry\r\n`);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    expect(e.reply.text).toContain('at line 300003');
    expect(ms).toBeLessThan(1000);
  });
  test('duplicate singleton fields: 550 5.6.7; several Received fields are fine', () => {
    expect(refusal('From: a@a.example\r\nSubject: 1\r\nSubject: 2\r\n\r\nx').reply.status).toBe('5.6.7');
    expect(checkMessage(Buffer.from('Received: a\r\nReceived: b\r\nFrom: a@a.example\r\n\r\nx')).from).toBe('a@a.example');
  });
  test('no From, or a From with two mailboxes: 550 5.6.0', () => {
    expect(refusal('Subject: x\r\n\r\nbody').reply.text).toMatch(/no From field/);
    expect(refusal('From: a@a.example, b@a.example\r\n\r\nbody').reply.text).toMatch(/exactly one address/);
  });
  test('a Message-ID folded before a comment is read unfolded (keyd records it); one longer than a line: 550 5.6.0', () => {
    const folded = checkMessage(Buffer.from('From: a@a.example\r\nMessage-ID: <x@a.example>\r\n (sent by a client)\r\n\r\nbody', 'latin1'));
    expect(folded.messageId).toBe('<x@a.example> (sent by a client)');
    const e = refusal(`From: a@a.example\r\nMessage-ID: <${'x'.repeat(1000)}@a.example>\r\n\r\nbody`);
    expect(e.reply).toMatchObject({ code: 550, status: '5.6.0', text: 'Malformed message: Message-ID longer than 998 characters' });
  });

  test('replies never carry a line break or control characters', () => {
    const e = new GatewayError('badFormat', 'evil\r\n250 OK\x00');
    expect([...e.reply.text].some((ch) => ch.charCodeAt(0) < 0x20)).toBe(false);
  });
});

describe('the capsule for this organisation (capsuleFor)', () => {
  const g = groups.libsecp256k1;
  const org = generateEncryptionKeyPair(g, systemRng);
  const capsule = (keyId: string): Capsule => encapsulate(g, newMessageKey(g, systemRng), { keyId, publicKey: org.publicKey }, systemRng);

  test('exactly one capsule for a key of the domain: that one, among foreign ones', () => {
    const mine = capsule('a.example:v2');
    expect(capsuleFor('a.example', [capsule('b.example:v1'), mine])).toBe(mine);
  });

  test('a capsule whose point is not on the curve: 550 5.7.5 naming the point, before any key operation takes it (451 for ever before)', () => {
    // x = 5: 5^3 + 7 = 132 is no square modulo p, so no point of secp256k1 has this x
    const offCurve = new Uint8Array(33);
    offCurve[0] = 0x02;
    offCurve[32] = 5;
    for (const bad of [
      { ...capsule('a.example:v2'), e: offCurve },
      { ...capsule('a.example:v2'), f: offCurve },
    ]) {
      let err: unknown;
      try {
        capsuleFor('a.example', [bad]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).reply).toMatchObject({ code: 550, status: '5.7.5' });
      expect((err as GatewayError).reply.text).toMatch(
        /^Malformed or foreign SSMAX capsule: Cannot parse capsule point [EF]: not a point on secp256k1$/,
      );
    }
  });

  test('none, two, or a look-alike domain: 550 5.7.5 saying how many were found', () => {
    for (const [capsules, found] of [
      [[], 0],
      [[capsule('b.example:v1')], 0],
      [[capsule('a.example:v1'), capsule('a.example:v2')], 2],
      [[capsule('xa.example:v1'), capsule('a.example.evil:v1')], 0],
    ] as const) {
      let err: unknown;
      try {
        capsuleFor('a.example', capsules);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).reply).toMatchObject({ code: 550, status: '5.7.5' });
      expect((err as GatewayError).reply.text).toContain(`found ${found} (of ${capsules.length})`);
    }
  });

  test('a From domain with a trailing dot or an empty label: 550 5.6.0 (every check compares one spelling of a domain)', () => {
    for (const from of ['x@b.example.', 'x@B.EXAMPLE.', 'x@b..example', 'x@.b.example', 'x@'])
      expect([refusal(`From: ${from}\r\nSubject: s\r\n\r\nx`).reply.status, from]).toEqual(['5.6.0', from]);
    expect(checkMessage(Buffer.from('From: X@B.Example\r\n\r\nx')).from).toBe('x@b.example');
  });

  test('an internationalised From domain, written unencoded in UTF-8, is read in its ASCII form; one that maps to none: 550 5.6.0', () => {
    const utf8 = (from: string) => checkMessage(Buffer.from(`From: ${from}\r\nSender: Boss <Boss@BÜCHER.example>\r\n\r\nx`, 'utf8'));
    expect(utf8('Ceo <CEO@bücher.example>').from).toBe('ceo@xn--bcher-kva.example');
    expect(utf8('ceo@\uff42.example').from).toBe('ceo@b.example');
    expect(senderOf(utf8('ceo@b.example').headers)).toBe('boss@xn--bcher-kva.example');
    for (const from of ['x@xn--zz.example', 'x@b\u200d.example', 'x@bücher%2eexample'])
      expect([refusal(Buffer.from(`From: ${from}\r\n\r\nx`, 'utf8').toString('latin1')).reply.text, from]).toEqual([
        expect.stringMatching(/^Malformed message: From domain .* is not a domain name/),
        from,
      ]);
    expect(domainOf('x@BÜCHER.example')).toBe('xn--bcher-kva.example');
    expect(domainOf('x@xn--zz.example')).toBe('');
    expect(canonicalAddress('Ceo@\uff42.Example')).toBe('ceo@b.example');
    expect(canonicalAddress('no-domain')).toBeUndefined();
  });
});

test('a Sender field naming many mailboxes is malformed (RFC 5322 allows one): each would cost a lookup of its organisation in turn', () => {
  const head = (sender: string) => checkMessage(Buffer.from(`From: a@a.example\r\nSender: ${sender}\r\nSubject: s\r\n\r\nbody\r\n`));
  const many = (n: number) => Array.from({ length: n }, (_, i) => `x@${i}.evil.example`).join(', ');
  expect(shownSenders(head(many(MAX_SENDER_ADDRESSES))).map(([f]) => f)).toEqual([
    'From',
    ...Array<string>(MAX_SENDER_ADDRESSES).fill('Sender'),
  ]);
  // the same address spelt again counts once
  expect(shownSenders(head('x@b.example, X@B.example, x@b.example'))).toEqual([
    ['From', 'a@a.example'],
    ['Sender', 'x@b.example'],
  ]);
  try {
    shownSenders(head(many(100)));
    throw new Error('accepted');
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).reply).toMatchObject({ code: 550, status: '5.6.0' });
    expect((err as GatewayError).message).toMatch(/the Sender field names 100 mailboxes, where RFC 5322 §3\.6\.2 allows one/);
  }
});
