import { bodyHash, readMessage } from '../../src/chain/body-hash';
import { CHAIN_LIMITS } from '../../src/chain/limits';
import { decodeCharset, encodeCharset } from './mime-model';

const JAPANESE = '日本語のテキストです。\r\n添付ファイルを確認してください。\r\nカタカナ、ひらがな、漢字。';

function single(contentType: string, cte: string, body: Buffer | string, extra = ''): Buffer {
  const head = `From: a@a.example\r\nSubject: t\r\nMIME-Version: 1.0\r\nContent-Type: ${contentType}\r\nContent-Transfer-Encoding: ${cte}\r\n${extra}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), typeof body === 'string' ? Buffer.from(body, 'latin1') : body]);
}

function b64(bytes: Buffer, width = 76): string {
  return (bytes.toString('base64').match(new RegExp(`.{1,${width}}`, 'g')) ?? []).join('\r\n');
}

describe('structural body hash', () => {
  it('is the same for Japanese text in ISO-2022-JP, Shift_JIS, EUC-JP and UTF-8, in any transfer encoding', async () => {
    const hashes = await Promise.all([
      bodyHash(single('text/plain; charset=ISO-2022-JP', '7bit', encodeCharset(JAPANESE, 'iso-2022-jp'))),
      bodyHash(single('text/plain; charset=Shift_JIS', '8bit', encodeCharset(JAPANESE, 'shift_jis'))),
      bodyHash(single('text/plain; charset=EUC-JP', 'base64', b64(encodeCharset(JAPANESE, 'euc-jp'), 60))),
      bodyHash(single('text/plain; charset=utf-8', 'base64', b64(encodeCharset(JAPANESE, 'utf-8')))),
      bodyHash(single('text/plain; charset="iso-2022-jp"', 'base64', b64(encodeCharset(JAPANESE, 'iso-2022-jp'), 12))),
    ]);
    expect(new Set(hashes).size).toBe(1);
  });

  it('survives a UTF-8 to ISO-2022-JP conversion of signs that JIS and CP932 tables map differently (WAVE DASH, …)', async () => {
    const text = '10時〜12時、−5℃、‖、¢£¬';
    const converted = encodeCharset(text, 'iso-2022-jp');
    // The converter really changed the code points (U+301C comes back as U+FF5E).
    expect(decodeCharset(converted, 'iso-2022-jp')).not.toBe(text);
    const a = await bodyHash(single('text/plain; charset=utf-8', '8bit', Buffer.from(text, 'utf-8')));
    const b = await bodyHash(single('text/plain; charset=ISO-2022-JP', '7bit', converted));
    expect(a).toBe(b);
  });

  it('changes when one character of the Japanese text changes', async () => {
    const a = await bodyHash(single('text/plain; charset=ISO-2022-JP', '7bit', encodeCharset(JAPANESE, 'iso-2022-jp')));
    const b = await bodyHash(
      single('text/plain; charset=ISO-2022-JP', '7bit', encodeCharset(JAPANESE.replace('漢字', '感じ'), 'iso-2022-jp')),
    );
    expect(a).not.toBe(b);
  });

  it('ignores trailing line ends, bare LF versus CRLF, and NFD versus NFC', async () => {
    const a = await bodyHash(single('text/plain; charset=utf-8', '8bit', Buffer.from('Caf\u00e9\r\nline 2\r\n', 'utf-8')));
    const b = await bodyHash(single('text/plain; charset=utf-8', '8bit', Buffer.from('Cafe\u0301\nline 2', 'utf-8')));
    expect(a).toBe(b);
  });

  it('covers Content-ID and Content-Location, through which multipart/related resolves images', async () => {
    const base = await bodyHash(single('image/png', 'base64', 'AAAA', 'Content-ID: <a@x>\r\nContent-Location: logo.png\r\n'));
    expect(await bodyHash(single('image/png', 'base64', 'AAAA', 'Content-ID: <b@x>\r\nContent-Location: logo.png\r\n'))).not.toBe(base);
    expect(await bodyHash(single('image/png', 'base64', 'AAAA', 'Content-ID: <a@x>\r\nContent-Location: other.png\r\n'))).not.toBe(base);
  });

  it('changes with a visible line break, trailing spaces in a line, content type, disposition or filename', async () => {
    const base = await bodyHash(single('text/plain; charset=utf-8', '8bit', 'a b\r\n'));
    const variants = await Promise.all([
      bodyHash(single('text/plain; charset=utf-8', '8bit', 'a\r\nb\r\n')),
      bodyHash(single('text/plain; charset=utf-8', '8bit', 'a b \r\n')),
      bodyHash(single('text/html; charset=utf-8', '8bit', 'a b\r\n')),
      bodyHash(single('text/plain; charset=utf-8', '8bit', 'a b\r\n', 'Content-Disposition: attachment\r\n')),
      bodyHash(single('text/plain; charset=utf-8', '8bit', 'a b\r\n', 'Content-Disposition: attachment; filename="x.txt"\r\n')),
    ]);
    for (const v of variants) expect(v).not.toBe(base);
  });

  it('treats format=flowed soft breaks as the paragraph they encode', async () => {
    const flowed = await bodyHash(single('text/plain; charset=utf-8; format=flowed', '7bit', 'one two \r\nthree\r\n'));
    const reflowed = await bodyHash(single('text/plain; charset=utf-8; format=flowed', '7bit', 'one \r\ntwo three\r\n'));
    const fixed = await bodyHash(single('text/plain; charset=utf-8', '7bit', 'one two three\r\n'));
    expect(flowed).toBe(reflowed);
    expect(flowed).not.toBe(fixed);
  });

  it('hashes a binary leaf by its decoded bytes: base64 and quoted-printable of the same bytes agree', async () => {
    const bytes = Buffer.from([0, 1, 2, 0x0d, 0x0a, 0xff, 0x3d, 0x20]);
    const a = await bodyHash(single('application/octet-stream', 'base64', b64(bytes)));
    const b = await bodyHash(single('application/octet-stream', 'quoted-printable', '=00=01=02=0D=0A=FF=3D=20'));
    const c = await bodyHash(single('application/octet-stream', 'quoted-printable', '=00=01=02=0D=0A=FF=3D=21'));
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('hashes an empty attachment the same in quoted-printable and base64, before a sibling or the closing delimiter', async () => {
    const message = (cte: string, order: 'first' | 'last') => {
      const empty = `Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n`;
      const other = 'Content-Type: text/plain\r\n\r\nhello';
      const [a, b] = order === 'first' ? [empty, other] : [other, empty];
      return Buffer.from(`From: a@a.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n${a}\r\n--x\r\n${b}\r\n--x--\r\n`);
    };
    expect(await bodyHash(message('quoted-printable', 'first'))).toBe(await bodyHash(message('base64', 'first')));
    expect(await bodyHash(message('quoted-printable', 'last'))).toBe(await bodyHash(message('base64', 'last')));
  });

  it('covers the Content-Type name parameter (a client shows it or picks a handler by it), decoded', async () => {
    const base = await bodyHash(
      single('application/pdf; name="report.pdf"', 'base64', 'AAAA', 'Content-Disposition: attachment; filename="report.pdf"\r\n'),
    );
    expect(
      await bodyHash(
        single('application/pdf; name="report.exe"', 'base64', 'AAAA', 'Content-Disposition: attachment; filename="report.pdf"\r\n'),
      ),
    ).not.toBe(base);
    expect(
      await bodyHash(single('application/pdf', 'base64', 'AAAA', 'Content-Disposition: attachment; filename="report.pdf"\r\n')),
    ).not.toBe(base);
    expect(
      await bodyHash(
        single("application/pdf; name*=utf-8''report.pdf", 'base64', 'AAAA', 'Content-Disposition: attachment; filename="report.pdf"\r\n'),
      ),
    ).toBe(base);
  });

  it('decodes RFC 2231 and encoded-word filenames to the same name', async () => {
    const a = await bodyHash(
      single('application/pdf', 'base64', 'AAAA', "Content-Disposition: attachment; filename*=utf-8''%E5%A0%B1%E5%91%8A.pdf\r\n"),
    );
    const b = await bodyHash(
      single('application/pdf', 'base64', 'AAAA', 'Content-Disposition: attachment; filename="=?ISO-2022-JP?B?GyRCSnM5cBsoQg==?=.pdf"\r\n'),
    );
    expect(a).toBe(b);
  });

  it('covers meaningful Content-Type parameters, e.g. those of the encrypted leaf', async () => {
    const a = await bodyHash(single('application/ssmax-encrypted; v=1; chunk=65536', 'base64', 'AAAA'));
    const b = await bodyHash(single('application/ssmax-encrypted; v=1; chunk=16384', 'base64', 'AAAA'));
    expect(a).not.toBe(b);
  });

  it('hashes an embedded message by structure: its inner parts may be re-encoded, its Subject may not change', async () => {
    const inner = (cte: string, body: string, subject = 'Inner') =>
      `From: c@c.example\r\nSubject: ${subject}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n${body}`;
    const wrap = (message: string, disposition: string) =>
      Buffer.from(
        `From: a@a.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\nContent-Disposition: ${disposition}\r\n\r\n${message}\r\n--x--\r\n`,
        'latin1',
      );
    const a = await bodyHash(wrap(inner('quoted-printable', 'Caf=C3=A9'), 'inline'));
    const b = await bodyHash(wrap(inner('base64', Buffer.from('Café').toString('base64')), 'inline'));
    const c = await bodyHash(wrap(inner('base64', Buffer.from('Café').toString('base64'), '=?utf-8?Q?Inner?='), 'inline'));
    const d = await bodyHash(wrap(inner('base64', Buffer.from('Café').toString('base64'), 'Other'), 'inline'));
    expect(a).toBe(b);
    expect(a).toBe(c);
    expect(a).not.toBe(d);
    const structure = (await readMessage(wrap(inner('7bit', 'x'), 'inline'))).structure;
    expect(structure.kind === 'multipart' && structure.children[0]?.kind).toBe('message');
  });

  it('refuses a multipart without body parts (no boundary, or a boundary that never occurs): its content would be uncovered', async () => {
    const noBoundary = Buffer.from('From: a@a.example\r\nContent-Type: multipart/mixed\r\n\r\nvisible text\r\n');
    const wrongBoundary = Buffer.from(
      'From: a@a.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--y\r\nContent-Type: text/plain\r\n\r\nhidden\r\n--y--\r\n',
    );
    await expect(bodyHash(noBoundary)).rejects.toMatchObject({
      reason: 'body-unparseable',
      message: 'Cannot hash body: multipart part 1 has no body parts',
    });
    await expect(bodyHash(wrongBoundary)).rejects.toMatchObject({ reason: 'body-unparseable' });
  });

  it('reports duplicate MIME headers in a part as duplicate-header', async () => {
    const message = Buffer.from(
      'From: a@a.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n\r\nhi\r\n--x--\r\n',
    );
    await expect(bodyHash(message)).rejects.toMatchObject({
      reason: 'duplicate-header',
      message: 'Cannot hash body: part 1.1 has more than one "content-type" field',
    });
  });

  it(`refuses more than ${CHAIN_LIMITS.maxDepth} levels of nesting and more than ${CHAIN_LIMITS.maxParts} parts`, async () => {
    let deep = 'Content-Type: text/plain\r\n\r\nleaf\r\n';
    for (let i = 0; i < CHAIN_LIMITS.maxDepth + 1; i++)
      deep = `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n${deep}\r\n--b${i}--\r\n`;
    await expect(bodyHash(Buffer.from(`From: a@a.example\r\n${deep}`))).rejects.toMatchObject({
      reason: 'limit-exceeded',
      message: `Cannot hash body: MIME parts nest deeper than ${CHAIN_LIMITS.maxDepth} levels`,
    });
    const many = Array.from({ length: CHAIN_LIMITS.maxParts + 1 }, () => '--b\r\nContent-Type: text/plain\r\n\r\nx\r\n').join('');
    await expect(
      bodyHash(Buffer.from(`From: a@a.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n${many}--b--\r\n`)),
    ).rejects.toMatchObject({ reason: 'limit-exceeded' });
  });

  it('refuses a header field longer than the limit', async () => {
    const long = `From: a@a.example\r\nSubject: ${'x'.repeat(CHAIN_LIMITS.maxHeaderFieldLength)}\r\n\r\nbody\r\n`;
    await expect(bodyHash(Buffer.from(long))).rejects.toMatchObject({ reason: 'limit-exceeded' });
  });

  it('hashes text in a charset it cannot decode as bytes, so any byte change is seen', async () => {
    const a = await readMessage(single('text/plain; charset=x-unknown-charset', '8bit', Buffer.from([0x41, 0x81])));
    const b = await bodyHash(single('text/plain; charset=x-unknown-charset', '8bit', Buffer.from([0x41, 0x82])));
    expect(a.structure.kind).toBe('binary');
    expect(a.bodyHash).not.toBe(b);
    const invalidUtf8 = await readMessage(single('text/plain; charset=utf-8', '8bit', Buffer.from([0x41, 0xc3])));
    expect(invalidUtf8.structure.kind).toBe('binary');
  });
});
