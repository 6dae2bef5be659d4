/**
 * DLP reads every part a reader could see (issue 17), and every rule has an
 * example it must catch and a near miss it must not. Real extraction
 * (mailparser, html-to-text, fflate + htmlparser2 for OOXML) on messages and
 * documents made here; PDFs are read through pdf.js in the gateway's own
 * build (test/gateway/inspection-every-part.test.ts), which Jest cannot load.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Encoding from 'encoding-japanese';
import { parse } from 'ini';
import { parseDlpRules } from '../../src/inspect/dlp';
import { EXTRACT_DEFAULTS, extractContent, htmlText } from '../../src/inspect/extract';
import { inspectOutbound } from '../../src/inspect/inspect';
import { MAX_ZIP_ENTRIES, documentText } from '../../src/inspect/documents';
import { docx, pptx, xlsx, zip } from '../support/documents';

const shipped = parseDlpRules(
  parse(readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8')) as Record<string, Record<string, unknown>>,
);
const extra = parseDlpRules(
  parse(`
[secret]
type=keyword
words=極秘,top secret
action=quarantine
[project]
type=regex
pattern=PRJ-[0-9]{4}\\b
action=tag
[spreadsheets]
type=attachment
content_types=text/csv
action=quarantine
[huge]
type=size
max_bytes=100000
action=reject
`) as Record<string, Record<string, unknown>>,
);
const rules = [...shipped, ...extra];

let n = 0;
function mail(body: Buffer | string, headers = 'Content-Type: text/plain; charset=utf-8', subject = `note ${++n}`): Buffer {
  return Buffer.concat([
    Buffer.from(`From: a@a.example\r\nTo: b@b.example\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\n${headers}\r\n\r\n`),
    Buffer.isBuffer(body) ? body : Buffer.from(body),
  ]);
}
/** A text part and one attachment (base64). */
function withAttachment(filename: string, contentType: string, content: Buffer | string, text = 'see attached'): Buffer {
  const b64 = Buffer.from(content).toString('base64').replace(/.{76}/g, '$&\r\n');
  return mail(
    `--b\r\nContent-Type: text/plain\r\n\r\n${text}\r\n--b\r\nContent-Type: ${contentType}; name="${filename}"\r\nContent-Disposition: attachment; filename="${filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n--b--\r\n`,
    'Content-Type: multipart/mixed; boundary="b"',
  );
}
/** multipart/alternative: a harmless text part and an HTML part. */
function alternative(html: string, text = 'Please see the HTML version.', cte = '7bit'): Buffer {
  return mail(
    `--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${text}\r\n--a\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n${html}\r\n--a--\r\n`,
    'Content-Type: multipart/alternative; boundary="a"',
  );
}
const decision = async (m: Buffer, r = rules) => (await inspectOutbound(m, { rules: r })).decision;
const PASS = { action: 'pass' };

describe('every rule: an example it must catch, a near miss it must not', () => {
  test('payment-cards (card, Luhn): caught; a check digit wrong, and number-like strings in other contexts, pass', async () => {
    expect(await decision(mail('Charge 4111 1111 1111 1111 please.\r\n'))).toEqual({ action: 'reject', rule: 'payment-cards' });
    expect(await decision(mail('Charge 5500-0000-0000-0004 please.\r\n'))).toEqual({ action: 'reject', rule: 'payment-cards' });
    expect(await decision(mail('Charge 4111 1111 1111 1112 please.\r\n'))).toEqual(PASS); // Luhn wrong by one digit
    expect(await decision(mail('Parcel 1Z 9999 9999 9999 9990 is on its way.\r\n'))).toEqual(PASS); // a tracking number (Luhn wrong)
    expect(await decision(mail('Call +81 3 1234 5678 or 090-1234-5678, meet 2026-12-06 10:30, invoice INV-2026-000123.\r\n'))).toEqual(
      PASS,
    );
    // two cells side by side are not one number
    expect(
      await decision(
        withAttachment(
          'parts.xlsx',
          'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
          xlsx([['4111 1111', '1111 1111']]),
        ),
      ),
    ).toEqual(PASS);
  });

  test('my-number (check digit): caught; a check digit wrong and a 12-digit order number pass', async () => {
    expect(await decision(mail('個人番号: 1234 5678 9018\r\n'))).toEqual({ action: 'reject', rule: 'my-number' });
    expect(await decision(mail('個人番号: 1234 5678 9012\r\n'))).toEqual(PASS); // check digit wrong
    expect(await decision(mail('Order 2026 1206 0315 shipped.\r\n'))).toEqual(PASS);
  });

  test('executables (attachment by extension): caught; a name that only contains .exe passes', async () => {
    expect(await decision(withAttachment('setup.exe', 'application/octet-stream', 'MZ...'))).toEqual({
      action: 'reject',
      rule: 'executables',
    });
    expect(await decision(withAttachment('setup.exe.txt', 'text/plain', 'how to run setup'))).toEqual(PASS);
    expect(await decision(withAttachment('executive-summary.pdf.zip', 'application/zip', zip({ 'summary.txt': 'all well' })))).toEqual(
      PASS,
    );
  });

  test('secret (keyword): caught in any case and width; the words apart pass', async () => {
    expect(await decision(mail('This is TOP SECRET.\r\n'))).toEqual({ action: 'quarantine', rule: 'secret' });
    expect(await decision(mail('この資料は極秘です。\r\n'))).toEqual({ action: 'quarantine', rule: 'secret' });
    expect(await decision(mail('The secret is at the top of the page.\r\n'))).toEqual(PASS);
  });

  test('project (regex): caught; a shorter id passes', async () => {
    expect(await decision(mail('see PRJ-1234 for details\r\n'))).toEqual({ action: 'tag', rule: 'project' });
    expect(await decision(mail('see PRJ-12 and PRJ-12345 for details\r\n'))).toEqual(PASS);
  });

  test('spreadsheets (attachment by type) and huge (size): caught; other types and smaller sizes pass', async () => {
    expect(await decision(withAttachment('q3.csv', 'text/csv', 'a,b\r\n1,2\r\n'))).toEqual({ action: 'quarantine', rule: 'spreadsheets' });
    expect(await decision(withAttachment('q3.txt', 'text/plain', 'a,b\r\n1,2\r\n'))).toEqual(PASS);
    expect(await decision(withAttachment('big.bin', 'application/octet-stream', Buffer.alloc(100001, 1)))).toEqual({
      action: 'reject',
      rule: 'huge',
    });
    expect(await decision(withAttachment('big.bin', 'application/octet-stream', Buffer.alloc(99999, 1)))).toEqual(PASS);
  });
});

describe('text is taken from every part a reader could see', () => {
  const caught = { action: 'reject', rule: 'payment-cards' };

  test('the HTML alternative is read even when a harmless text part exists: a number split by tags, by entities, by a soft line break', async () => {
    expect(await decision(alternative('<p>Card <span>41111111</span><span>11111111</span></p>'))).toEqual(caught);
    expect(await decision(alternative('<div>Card &#52;111&nbsp;1111&#x20;1111 1111</div>'))).toEqual(caught);
    const qp = '<p>Card <b>4111</b>=\r\n<i>1111</i><u>1111</u>1111</p>';
    expect(await decision(alternative(qp, 'hello', 'quoted-printable'))).toEqual(caught);
    // block elements are lines: two halves in two paragraphs are not one number
    expect(await decision(alternative('<p>41111111</p><p>11111111</p>'))).toEqual(PASS);
    // what a reader never sees does not count as text, and is not joined with what they see
    expect(
      (
        await extractContent(alternative('<a href="https://x.example/4111111111111111">link</a><img src="4111111111111111.png">'))
      ).texts.join(' '),
    ).not.toMatch(/4111/);
  });

  test('Subject, attachment file names, text attachments in their own charset', async () => {
    expect(await decision(mail('hello\r\n', 'Content-Type: text/plain', 'Card 4111 1111 1111 1111'))).toEqual(caught);
    expect(await decision(withAttachment('card 4111 1111 1111 1111.txt', 'application/octet-stream', 'x'))).toEqual(caught);
    const sjis = Buffer.from(Encoding.convert(Encoding.stringToCode('極秘の資料'), { to: 'SJIS', from: 'UNICODE' }));
    expect(await decision(withAttachment('memo.txt', 'text/plain; charset=Shift_JIS', sjis))).toEqual({
      action: 'quarantine',
      rule: 'secret',
    });
    expect(await decision(withAttachment('page.html', 'text/html', '<b>4111</b><i>1111 1111 1111</i>'))).toEqual(caught);
  });

  test('an attached message, and one attached inside it', async () => {
    const inner = mail('Card 4111 1111 1111 1111\r\n');
    const once = mail(
      `--m\r\nContent-Type: text/plain\r\n\r\nforwarding\r\n--m\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="fwd.eml"\r\n\r\n${inner.toString()}\r\n--m--\r\n`,
      'Content-Type: multipart/mixed; boundary="m"',
    );
    expect(await decision(once)).toEqual(caught);
    const twice = mail(
      `--n\r\nContent-Type: text/plain\r\n\r\nagain\r\n--n\r\nContent-Type: message/rfc822\r\n\r\n${once.toString()}\r\n--n--\r\n`,
      'Content-Type: multipart/mixed; boundary="n"',
    );
    expect(await decision(twice)).toEqual(caught);
  });

  test('office documents: a docx paragraph (the number split over runs), an xlsx cell, a pptx slide; clean ones pass', async () => {
    const wordType = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
    expect(
      await decision(withAttachment('order.docx', wordType, docx([['Dear team,'], ['Card ', '4111 11', '11 1111 1111', ' exp 12/29']]))),
    ).toEqual(caught);
    expect(await decision(withAttachment('order.docx', wordType, docx([['Dear team,'], ['Card ', '4111 11', '11 1111 1112']])))).toEqual(
      PASS,
    );
    expect(
      await decision(
        withAttachment(
          'cards.xlsx',
          'application/octet-stream',
          xlsx([
            ['name', 'card'],
            ['Alice', '4111111111111111'],
          ]),
        ),
      ),
    ).toEqual(caught);
    expect(
      await decision(
        withAttachment(
          'cards.xlsx',
          'application/octet-stream',
          xlsx([
            ['name', 'amount'],
            ['Alice', 1234.5],
          ]),
        ),
      ),
    ).toEqual(PASS);
    expect(
      await decision(
        withAttachment(
          'deck.pptx',
          'application/vnd.openxmlformats-officedocument.presentationml.presentation',
          pptx([['My Number ', '1234 5678 9018']]),
        ),
      ),
    ).toEqual({ action: 'reject', rule: 'my-number' });
    // a renamed document is still read (by its bytes)
    expect(await decision(withAttachment('notes.bin', 'application/octet-stream', docx([['4111 1111 1111 1111']])))).toEqual(caught);
  });
});

describe('hostile markup costs its length', () => {
  test('HTML nested 200,000 deep, left open, or a table of 100,000 rows: read in linear time, the number inside still found', async () => {
    const n = 200000;
    const cases = [
      '<div>'.repeat(n) + 'card 4111 1111 1111 1111' + '</div>'.repeat(n),
      '<span>'.repeat(n) + 'card 4111 1111 1111 1111',
      `<table>${'<tr><td>1</td><td>x</td></tr>'.repeat(n / 2)}</table>`,
    ];
    for (const html of cases) {
      const t0 = performance.now();
      const text = htmlText(html);
      expect(performance.now() - t0).toBeLessThan(5000); // htmlparser2's tree builder took 35 s for 100,000 nested (then overflowed the stack)
      expect(text.length).toBeGreaterThan(0);
    }
    expect(await decision(alternative('<div>'.repeat(n) + 'card 4111 1111 1111 1111' + '</div>'.repeat(n)))).toEqual({
      action: 'reject',
      rule: 'payment-cards',
    });
  });

  test('a docx whose XML is nested 200,000 deep is read in linear time', async () => {
    const t0 = performance.now();
    const doc = Buffer.from(
      zip({
        '[Content_Types].xml': '<Types/>',
        'word/document.xml': `<w:document>${'<w:sdt>'.repeat(200000)}<w:p><w:r><w:t>4111 1111 1111 1111</w:t></w:r></w:p>${'</w:sdt>'.repeat(200000)}</w:document>`,
      }),
    );
    expect(await decision(withAttachment('deep.docx', 'application/octet-stream', doc))).toEqual({
      action: 'reject',
      rule: 'payment-cards',
    });
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});

describe('what zip archives hold', () => {
  test('a text file, an HTML file, a docx inside a zip, a zip inside a zip: read; file names inside count; clean archives pass', async () => {
    const caught = { action: 'reject', rule: 'payment-cards' };
    expect(
      await decision(withAttachment('export.zip', 'application/zip', zip({ 'cards.csv': 'name,card\r\nAlice,4111 1111 1111 1111\r\n' }))),
    ).toEqual(caught);
    expect(
      await decision(
        withAttachment('site.zip', 'application/zip', zip({ 'index.html': '<p><span>4111111111</span><span>111111</span></p>' })),
      ),
    ).toEqual(caught);
    expect(
      await decision(
        withAttachment('docs.zip', 'application/octet-stream', zip({ 'order.docx': docx([['card ', '4111 1111 1111 1111']]) })),
      ),
    ).toEqual(caught);
    expect(
      await decision(withAttachment('outer.zip', 'application/zip', zip({ 'inner.zip': zip({ 'memo.txt': 'TOP SECRET plans' }) }))),
    ).toEqual({ action: 'quarantine', rule: 'secret' });
    expect(await decision(withAttachment('pack.zip', 'application/zip', zip({ 'setup.exe': 'MZ' })))).toEqual(PASS); // the executables rule is about attachments, not archive members
    expect(
      await decision(
        withAttachment(
          'export.zip',
          'application/zip',
          zip({ 'cards.csv': 'name,card\r\nAlice,4111 1111 1111 1112\r\n', 'photo.jpg': Buffer.alloc(1000, 9) }),
        ),
      ),
    ).toEqual(PASS);
  });

  test('a member that states a smaller size than it inflates to: the archive is unreadable (never read cut short, nor inflated to its end)', async () => {
    // the central directory (what office programs and the reader go by) says 1 byte; the data inflates to 4 MB holding a card number
    const lying = (archive: Buffer, member: string): Buffer => {
      const out = Buffer.from(archive);
      for (
        let at = out.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
        at >= 0;
        at = out.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), at + 4)
      ) {
        const nameLength = out.readUInt16LE(at + 28);
        if (out.toString('latin1', at + 46, at + 46 + nameLength) === member) out.writeUInt32LE(1, at + 24);
      }
      return out;
    };
    const cards = `name,card\r\nAlice,4111 1111 1111 1111\r\n${' '.repeat(4 << 20)}`;
    const honest = zip({ 'cards.csv': cards });
    expect(await decision(withAttachment('export.zip', 'application/zip', honest))).toEqual({ action: 'reject', rule: 'payment-cards' });
    const r = await extractContent(withAttachment('export.zip', 'application/zip', lying(honest, 'cards.csv')));
    expect(r.unreadable).toEqual(['document']);
    // the same inside an office package: one of its XML parts lies
    const book = xlsx([
      ['name', 'card'],
      ['Alice', '4111 1111 1111 1111'],
    ]);
    const parts = [...book.toString('latin1').matchAll(/xl\/(?:sharedStrings|worksheets\/sheet1)\.xml/g)].map((m) => m[0]);
    expect(parts.length).toBeGreaterThan(0);
    let bad = book;
    for (const part of new Set(parts)) bad = lying(bad, part);
    expect((await extractContent(withAttachment('cards.xlsx', 'application/octet-stream', bad))).unreadable).toEqual(['document']);
  });

  test('the deadline is checked at every entry of an archive, folders and entries past the size limit included', async () => {
    const folders = zip(Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`f${i}/`, ''])));
    const late = await documentText('zip', folders, { maxBytes: 10 << 20, deadline: Date.now() - 1 });
    expect(late.unreadable).toBe('time');
    const inTime = await documentText('zip', folders, { maxBytes: 10 << 20, deadline: Date.now() + 60_000 });
    expect(inTime.unreadable).toBeUndefined();
    expect(inTime.text.split('\n')).toHaveLength(3000);
  });

  test('an archive or office package of more than MAX_ZIP_ENTRIES entries is unreadable, read no further (its members would each be sorted and scanned)', async () => {
    const entries = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}.xml`, '<a/>']));
    const limits = { maxBytes: 10 << 20, deadline: Date.now() + 60_000 };
    expect((await documentText('zip', zip(entries(MAX_ZIP_ENTRIES)), limits)).unreadable).toBeUndefined();
    expect((await documentText('zip', zip(entries(MAX_ZIP_ENTRIES + 1)), limits)).unreadable).toBe('document');
    expect((await documentText('ooxml', zip(entries(MAX_ZIP_ENTRIES + 1)), limits)).unreadable).toBe('document');
  });

  test('a damaged zip, archives nested deeper than max_depth: unreadable', async () => {
    expect(
      (await extractContent(withAttachment('a.zip', 'application/zip', zip({ 'a.txt': 'hello' }).subarray(0, 30)))).unreadable,
    ).toEqual(['document']);
    let deep = zip({ 'memo.txt': 'hello' });
    for (let i = 0; i < 5; i++) deep = zip({ [`level${i}.zip`]: deep });
    expect((await extractContent(withAttachment('deep.zip', 'application/zip', deep))).unreadable).toEqual(['document']);
  });
});

describe('limits: a part that cannot be read in full is a verdict the policy decides, never a crash', () => {
  const nested = (depth: number): Buffer => {
    let m = mail('Card 4111 1111 1111 1111\r\n');
    for (let i = 0; i < depth; i++)
      m = mail(
        `--z${i}\r\nContent-Type: text/plain\r\n\r\nfwd\r\n--z${i}\r\nContent-Type: message/rfc822\r\n\r\n${m.toString()}\r\n--z${i}--\r\n`,
        `Content-Type: multipart/mixed; boundary="z${i}"`,
      );
    return m;
  };

  test('attached messages deeper than max_depth: unreadable; quarantine by default, or the configured action', async () => {
    expect((await extractContent(nested(5))).unreadable).toEqual(['depth']);
    expect(await inspectOutbound(nested(5), { rules: shipped })).toEqual({
      verdict: { name: 'dlp', result: 'fail' },
      decision: { action: 'quarantine', rule: 'unreadable' },
    });
    expect((await inspectOutbound(nested(5), { rules: shipped, onUnreadable: 'tag' })).decision).toEqual({
      action: 'tag',
      rule: 'unreadable',
    });
    expect((await inspectOutbound(nested(5), { rules: shipped, onUnreadable: 'reject' })).decision).toEqual({
      action: 'reject',
      rule: 'unreadable',
    });
    // within the depth the number itself decides; a rule's reject is stricter than the unreadable quarantine
    expect((await inspectOutbound(nested(3), { rules: shipped })).decision).toEqual({ action: 'reject', rule: 'payment-cards' });
  });

  test('a damaged document, a document over max_document_bytes, text over max_text_chars', async () => {
    const broken = docx([['hello']]).subarray(0, 200);
    expect((await extractContent(withAttachment('broken.docx', 'application/octet-stream', broken))).unreadable).toEqual(['document']);
    const doc = docx([['hello world '.repeat(1000)]]);
    expect(
      (
        await extractContent(withAttachment('a.docx', 'application/octet-stream', doc), {
          ...EXTRACT_DEFAULTS,
          maxDocumentBytes: doc.length - 1,
        })
      ).unreadable,
    ).toEqual(['size']);
    const small = docx([['hello world '.repeat(1000)]]);
    // the unpacked XML is bounded too (a small zip of a large text)
    expect(
      (
        await extractContent(withAttachment('a.docx', 'application/octet-stream', small), {
          ...EXTRACT_DEFAULTS,
          maxDocumentBytes: small.length + 100,
        })
      ).unreadable,
    ).toEqual(['size']);
    expect((await extractContent(mail('x'.repeat(5000)), { ...EXTRACT_DEFAULTS, maxTextChars: 1000 })).unreadable).toEqual(['text']);
  });

  test('what one message unpacks in all is bounded (a multiple of max_document_bytes), also when an attached message starts the document levels again', async () => {
    const limits = { ...EXTRACT_DEFAULTS, maxDocumentBytes: 100_000 };
    // four archive levels, each unpacking 90 KB (within the limit), inside a message attached inside another archive
    let chain = zip({ 'a.txt': 'a'.repeat(90_000) });
    for (const n of ['b', 'c', 'd']) chain = zip({ [`${n}.txt`]: n.repeat(90_000), [`inner-${n}.zip`]: chain });
    const forwarded = withAttachment('chain.zip', 'application/zip', chain);
    const outer = zip({ 'pad.txt': 'p'.repeat(90_000), 'forwarded.eml': forwarded });
    expect(outer.length).toBeLessThan(20_000); // a small message
    const got = await extractContent(withAttachment('outer.zip', 'application/zip', outer), limits);
    expect(got.unreadable).toContain('size'); // 90 KB + 4 × 90 KB unpacked: over 4 × 100 KB
    // control: the same chain alone (four levels, 360 KB) is within the budget, read to its innermost text
    const alone = await extractContent(withAttachment('chain.zip', 'application/zip', chain), limits);
    expect(alone.unreadable).toEqual([]);
    expect(alone.texts.some((t) => t.startsWith('aaaa'))).toBe(true);
    // archives side by side are read one after another, each let go before the next: six of 90 KB (540 KB) are read
    const side = Array.from({ length: 6 }, (_, i) => zip({ [`export-${i}.csv`]: `${i}`.repeat(90_000) }));
    const parts = side
      .map((z, i) => {
        const b64 = z.toString('base64').replace(/.{76}/g, '$&\r\n');
        return `--b\r\nContent-Type: application/zip; name="e${i}.zip"\r\nContent-Disposition: attachment; filename="e${i}.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n`;
      })
      .join('');
    const sideBySide = await extractContent(mail(`${parts}--b--\r\n`, 'Content-Type: multipart/mixed; boundary="b"'), limits);
    expect(sideBySide.unreadable).toEqual([]);
    expect(sideBySide.texts.filter((t) => /^(\d)\1{1000}/.test(t))).toHaveLength(6);
  });

  test('time: extraction stops at its deadline', async () => {
    const many = mail(
      Array.from(
        { length: 200 },
        (_, i) =>
          `--y\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename="${i}.txt"\r\n\r\n${'words '.repeat(2000)}\r\n`,
      ).join('') + '--y--\r\n',
      'Content-Type: multipart/mixed; boundary="y"',
    );
    const r = await extractContent(many, { ...EXTRACT_DEFAULTS, timeoutMs: 1 });
    await new Promise((res) => setTimeout(res, 5));
    const late = await extractContent(many, { ...EXTRACT_DEFAULTS, timeoutMs: 1 });
    expect([...r.unreadable, ...late.unreadable]).toContain('time');
  });
});
