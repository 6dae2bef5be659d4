/**
 * What a plain-client recipient sees of a decrypted message
 * (src/mail/sealed-header.ts): the display fields are always the sealed outer
 * ones. The outer messages here are what src/envelope/encrypt.ts writes for
 * the inner one, so the first case is the sender side's own output.
 */
import { simpleParser } from 'mailparser';
import { randomBytes } from 'node:crypto';
import { defaultGroup as g } from '../../src/crypto/backend';
import { generateEncryptionKeyPair } from '../../src/crypto/keys';
import { systemRng } from '../../src/crypto/random';
import { collect, encryptMessage } from '../../src/envelope';
import { compareHeaders, underSealedHeader } from '../../src/mail/sealed-header';
import { splitHeaderBlock } from '../../src/mail/header-block';
import { seal } from '../../src/chain/seal';
import { verifyChain } from '../../src/chain/verify-chain';
import { ALICE, TRACKING_TOKEN, directory, makeOrg, makeUser, now } from '../chain/fixtures';

const org = generateEncryptionKeyPair(g, systemRng);
const SECRET = 'sealed-header-secret-2093';

function mail(head: string, body = `${SECRET}\r\n`): Buffer {
  return Buffer.from(`${head.replace(/\n/g, '\r\n')}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${body}`, 'latin1');
}

const HEAD =
  'From: Alice <alice@a.example>\nSender: sec@a.example\nReply-To: alice@a.example\nTo: bob@b.example\nCc: carol@b.example\n' +
  'Subject: Q3\n  figures\nDate: Sun, 6 Dec 2026 10:00:00 +0000\nMessage-ID: <q3@a.example>';

/** The encrypted form of `inner` as the sender side writes it (its outer header copied from the inner one). */
function encrypted(inner: Buffer): Promise<Buffer> {
  return collect(encryptMessage(inner, [{ keyId: 'a.example:v1', publicKey: org.publicKey }], { group: g, rng: systemRng }));
}

/** `outer` with its field `name` replaced by `line` (or removed when line is ''). */
function withOuter(outer: Buffer, name: string, line: string): Buffer {
  const { fields, bodyStart } = splitHeaderBlock(outer);
  const out = fields.flatMap((f) => (f.toLowerCase().startsWith(`${name}:`) ? (line ? [line] : []) : [f]));
  return Buffer.concat([Buffer.from(`${out.join('\r\n')}\r\n\r\n`, 'latin1'), outer.subarray(bodyStart)]);
}

const fieldsOf = (m: Buffer) => splitHeaderBlock(m).fields;

test("the sender side's own message (outer fields copied from the inner ones): delivered byte for byte", async () => {
  const inner = mail(HEAD);
  const outer = await encrypted(inner);
  expect(compareHeaders(outer, inner).differing).toEqual([]);
  expect(underSealedHeader(outer, inner)).toBe(inner);
});

test('folding and spacing do not count as a difference', async () => {
  const inner = mail(HEAD);
  const outer = withOuter(await encrypted(inner), 'subject', 'Subject:   Q3 figures');
  expect(underSealedHeader(outer, inner)).toBe(inner);
});

test('a Subject, To, Cc, Reply-To or Date inside that the seals did not cover is replaced by the sealed one; a Date missing inside is added', async () => {
  const inner = mail(
    'From: Alice <alice@a.example>\nSender: sec@a.example\nReply-To: thief@evil.example\nTo: ceo@b.example\nCc: all@b.example\n' +
      'Subject: Urgent: wire 1M\nMessage-ID: <q3@a.example>\nX-Other: kept',
  );
  const outer = await encrypted(mail(HEAD));
  const cmp = compareHeaders(outer, inner);
  expect(cmp.otherAuthor).toBe(false);
  expect([...cmp.differing].sort()).toEqual(['cc', 'date', 'reply-to', 'subject', 'to']);
  const out = underSealedHeader(outer, inner);
  const text = out.toString('latin1');
  for (const bad of ['thief@evil.example', 'ceo@b.example', 'all@b.example', 'wire 1M']) expect(text).not.toContain(bad);
  const parsed = await simpleParser(out);
  expect(parsed.subject).toBe('Q3 figures');
  expect(parsed.replyTo?.text).toBe('alice@a.example');
  expect(parsed.date?.toISOString()).toBe('2026-12-06T10:00:00.000Z');
  expect(fieldsOf(out)).toContain('X-Other: kept');
  expect(parsed.text?.trim()).toBe(SECRET);
  // the display fields appear once each: the sealed one
  expect(fieldsOf(out).filter((f) => /^subject:/i.test(f))).toHaveLength(1);
});

describe('the inner From or Sender is not the sealed one: the inner message attached under the sealed header', () => {
  const NO_SENDER = HEAD.replace('Sender: sec@a.example\n', '');
  const cases: [string, string, string][] = [
    ['a forged From', HEAD, HEAD.replace('From: Alice <alice@a.example>', 'From: CEO <ceo@b.example>')],
    ['a forged Sender', HEAD, HEAD.replace('Sender: sec@a.example', 'Sender: ceo@b.example')],
    ['a Sender only inside', NO_SENDER, NO_SENDER.replace('Reply-To:', 'Sender: ceo@b.example\nReply-To:')],
    ['a second From inside', HEAD, `${HEAD}\nFrom: ceo@b.example`],
  ];
  test.each(cases)('%s', async (_name, sealedHead, innerHead) => {
    const outer = await encrypted(mail(sealedHead));
    const inner = mail(innerHead);
    expect(compareHeaders(outer, inner).otherAuthor).toBe(true);
    const out = underSealedHeader(outer, inner);
    const parsed = await simpleParser(out);
    // what a mail client shows as the author is the sealed From (and Sender)
    expect(parsed.from?.value).toEqual([{ address: 'alice@a.example', name: 'Alice' }]);
    const senders = (m: Buffer) => fieldsOf(m).filter((f) => /^sender:/i.test(f));
    expect(senders(out)).toEqual(senders(outer));
    expect(parsed.subject).toBe('Q3 figures');
    // the inner message is there, whole, as an attached message/rfc822
    const att = parsed.attachments.find((a) => a.contentType === 'message/rfc822');
    expect(att).toBeDefined();
    expect(att!.content.equals(inner)).toBe(true);
    // nothing of the inner header reaches the top-level header block
    expect(fieldsOf(out).join('\n')).not.toContain('ceo@b.example');
  });

  test('8-bit content is declared 8bit; a boundary found in the message is not used', () => {
    const inner = mail('From: ceo@b.example\nTo: bob@b.example', `caf\xe9 ${randomBytes(4).toString('hex')}\r\n`);
    const outer = mail('From: alice@a.example\nTo: bob@b.example');
    const text = underSealedHeader(outer, inner).toString('latin1');
    expect(text).toMatch(/Content-Type: message\/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n/);
    // the multipart around it declares 8bit too (a 7bit composite cannot hold an 8bit part)
    expect(text.slice(0, text.indexOf('\r\n\r\n'))).toMatch(/\r\nContent-Transfer-Encoding: 8bit\r\n/);
    const boundary = /boundary="([^"]+)"/.exec(text)![1]!;
    expect(text.split(`--${boundary}`)).toHaveLength(4); // preamble, note, message, closing
  });
});

test('a bare-LF inner message: the replaced fields keep its line ends', () => {
  const inner = Buffer.from('From: alice@a.example\nTo: ceo@b.example\nSubject: x\n\nbody\n', 'latin1');
  const outer = mail('From: alice@a.example\nTo: bob@b.example\nSubject: x');
  const out = underSealedHeader(outer, inner).toString('latin1');
  expect(out).toBe('From: alice@a.example\nTo: bob@b.example\nSubject: x\n\nbody\n');
});

describe('the copy never carries a verdict the inner header claims', () => {
  const planted = [
    'Authentication-Results: b.example; ssmax-chain=pass; ssmax-av=pass; ssmax-dlp=pass',
    'ARC-Authentication-Results: i=1; b.example; ssmax-chain=pass',
    'SSMAX-Seal: i=1; d=b.example',
    'X-SSMAX-Chain: pass',
    'Resent-From: ceo@b.example',
    'Received-SPF: pass',
  ];
  test('same display fields inside: the copy is not the inner message byte for byte, and has none of them; other fields stay', async () => {
    const clean = mail(HEAD);
    const outer = await encrypted(clean);
    const inner = mail(`${HEAD}\n${planted.join('\n')}\nX-Other: kept`);
    const out = underSealedHeader(outer, inner);
    expect(out).not.toBe(inner);
    const names = fieldsOf(out).map((f) => f.slice(0, f.indexOf(':')).toLowerCase());
    for (const f of planted) expect(names).not.toContain(f.slice(0, f.indexOf(':')).toLowerCase());
    expect(names).toContain('x-other');
    expect(out.toString('latin1')).toContain(SECRET);
  });
  test('a display field replaced too: none of them either', async () => {
    const outer = await encrypted(mail(HEAD));
    const inner = mail(`${HEAD.replace('Subject: Q3\n  figures', 'Subject: wire 1M')}\n${planted.join('\n')}`);
    const out = underSealedHeader(outer, inner);
    expect(fieldsOf(out).join('\n')).not.toMatch(/authentication-results|ssmax|resent-|received-spf/i);
    expect((await simpleParser(out)).subject).toBe('Q3 figures');
  });
});

describe('the note above an attached inner message', () => {
  const alice = makeUser(ALICE);
  const orgA = makeOrg('a.example');
  const orgL = makeOrg('lists.c.example');
  const dir = directory(alice, orgA, orgL);
  async function sealBy(message: Buffer, org: typeof orgA, first: boolean): Promise<Buffer> {
    const chain = await verifyChain(message, { lookup: dir.lookup, now });
    const out = await seal(message, {
      domain: org.certificate.domain ?? '',
      certRef: org.certRef,
      privateKey: org.keys.privateKey,
      now,
      verdicts: [],
      chain,
      ...(first ? { trackingToken: TRACKING_TOKEN } : {}),
    });
    return Buffer.from(out.message);
  }
  test("names the newest sealer's organisation (a list's that re-sealed), not the author's", async () => {
    const outer = await sealBy(await sealBy(await encrypted(mail(HEAD)), orgA, true), orgL, false);
    const inner = mail(HEAD.replace('From: Alice <alice@a.example>', 'From: ceo@b.example'));
    const text = underSealedHeader(outer, inner).toString('latin1');
    expect(text).toContain('The organisation lists.c.example sealed the header of this message');
    expect(text).not.toContain("The sender's organisation sealed");
  });
  test('with only seal i=1, names its organisation', async () => {
    const outer = await sealBy(await encrypted(mail(HEAD)), orgA, true);
    const inner = mail(HEAD.replace('From: Alice <alice@a.example>', 'From: ceo@b.example'));
    expect(underSealedHeader(outer, inner).toString('latin1')).toContain('The organisation a.example sealed the header');
  });
});
