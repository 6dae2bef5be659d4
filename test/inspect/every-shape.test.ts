/**
 * DLP leaves nothing unread and unlisted: every attachment, every file inside
 * an archive and every part of an office document is either read (by what its
 * bytes are, not by its name or declared type) or listed in `unreadable`, so
 * that `[dlp] on_unreadable` decides. Each shape below once passed with a card
 * number inside: it must now be caught or unreadable, never pass. The near
 * misses (images, binary data, signatures, clean documents) must still pass.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { strToU8, zipSync } from 'fflate';
import { parseDlpRules } from '../../src/inspect/dlp';
import { extractContent } from '../../src/inspect/extract';
import { inspectOutbound } from '../../src/inspect/inspect';
import { docx, xlsx, zip } from '../support/documents';

const rules = parseDlpRules({ cards: { type: 'card', action: 'reject', min: '1' } });
const CARD = '4111 1111 1111 1111';
const SECRET = `card ${CARD}`;
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64').replace(/.{76}/g, '$&\r\n');

/** A message with a harmless text part and one more part, given as its header lines and body. */
function mixed(partHeaders: string, body: string): Buffer {
  return Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: hello\r\nMIME-Version: 1.0\r\n' +
      'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n' +
      `--b1\r\n${partHeaders}\r\n\r\n${body}\r\n--b1--\r\n`,
  );
}
const attached = (type: string, filename: string, content: Buffer | string) =>
  mixed(
    `Content-Type: ${type}; name="${filename}"\r\nContent-Disposition: attachment; filename="${filename}"\r\nContent-Transfer-Encoding: base64`,
    b64(content),
  );

const inner = `From: alice@a.example\r\nTo: x@y.example\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(SECRET)}\r\n`;
const utf16le = (t: string) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(t, 'utf16le')]);

/** An OOXML word package with its main part where `_rels/.rels` says, and more parts. */
function wordPackage(main: string, mainText: string, extra: Record<string, Uint8Array> = {}): Buffer {
  const body = `<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>${mainText}</w:t></w:r></w:p></w:body></w:document>`;
  return Buffer.from(
    zipSync({
      '[Content_Types].xml': strToU8(
        `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/${main}" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`,
      ),
      '_rels/.rels': strToU8(
        `<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="${main}"/></Relationships>`,
      ),
      [main]: strToU8(body),
      ...extra,
    }),
  );
}
const WORD = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
/** A legacy Office (OLE2) file whose text is stored in UTF-16LE, as Word 97-2003 stores it. */
const ole2 = (t: string) =>
  Buffer.concat([
    Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]),
    Buffer.alloc(504),
    Buffer.from(t, 'utf16le'),
    Buffer.alloc(512),
  ]);
/** A PNG signature and a tEXt chunk: text a viewer's properties show. */
const pngWithText = (t: string) =>
  Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]),
    Buffer.from(`tEXtComment\0${t}`),
    Buffer.alloc(64),
  ]);

const shapes: [string, Buffer][] = [
  ['message/global attachment', mixed('Content-Type: message/global\r\nContent-Disposition: attachment; filename="m.eml"', inner)],
  ['message/global without a disposition', mixed('Content-Type: message/global', inner)],
  ['application/json', attached('application/json', 'cards.json', `{"card":"${CARD}"}`)],
  ['application/xml', attached('application/xml', 'c.xml', `<c>${CARD}</c>`)],
  ['a CSV sent as application/vnd.ms-excel', attached('application/vnd.ms-excel', 'cards.csv', `name,card\r\nbob,${CARD}\r\n`)],
  ['application/octet-stream named .dat', attached('application/octet-stream', 'cards.dat', SECRET)],
  ['a UTF-16 text attachment with no charset', attached('application/octet-stream', 'c.txt', utf16le(SECRET))],
  ['an image type holding text', attached('image/png', 'scan.png', SECRET)],
  [
    'a multipart/digest part (a message by default, its text in base64)',
    Buffer.from(
      'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: digest\r\nMIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary="d"\r\n\r\n' +
        `--d\r\n\r\n${inner}\r\n--d--\r\n`,
    ),
  ],
  ['a zip holding an .eml with a base64 part', attached('application/zip', 'a.zip', zip({ 'm.eml': inner }))],
  ['a zip holding a message under another name', attached('application/zip', 'a.zip', zip({ 'm.bak': inner }))],
  ['a zip holding a UTF-16 .txt', attached('application/zip', 'a.zip', zip({ 'c.txt': utf16le(SECRET) }))],
  ['a zip holding text under an unlisted extension', attached('application/zip', 'a.zip', zip({ 'c.dat': SECRET }))],
  ['a zip holding a zip renamed .dat', attached('application/zip', 'a.zip', zip({ 'inner.dat': zip({ 'c.txt': SECRET }) }))],
  ['a zip holding a docx renamed .bin', attached('application/zip', 'a.zip', zip({ 'x.bin': docx([[SECRET]]) }))],
  ['a docx whose main part is word/main.xml', attached(WORD, 'a.docx', wordPackage('word/main.xml', SECRET))],
  [
    'a docx with SmartArt text',
    attached(
      WORD,
      'a.docx',
      wordPackage('word/document.xml', 'see diagram', {
        'word/diagrams/data1.xml': strToU8(
          `<dgm:dataModel xmlns:dgm="d" xmlns:a="a"><dgm:ptLst><dgm:pt><dgm:t><a:p><a:r><a:t>${SECRET}</a:t></a:r></a:p></dgm:t></dgm:pt></dgm:ptLst></dgm:dataModel>`,
        ),
      }),
    ),
  ],
  [
    'a docx with an embedded workbook',
    attached(WORD, 'a.docx', wordPackage('word/document.xml', 'see table', { 'word/embeddings/Sheet.xlsx': xlsx([[CARD]]) })),
  ],
  [
    'a docx with custom XML data',
    attached(
      WORD,
      'a.docx',
      wordPackage('word/document.xml', 'see data', { 'customXml/item1.xml': strToU8(`<data><card>${CARD}</card></data>`) }),
    ),
  ],
  [
    'a docx with text deleted under tracked changes',
    attached(
      WORD,
      'a.docx',
      wordPackage('word/document.xml', `</w:t></w:r><w:del><w:r><w:delText>${SECRET}</w:delText></w:r></w:del><w:r><w:t>`),
    ),
  ],
  ['a legacy Word (OLE2) file', attached('application/msword', 'a.doc', ole2(SECRET))],
  ['a PNG with a text chunk', attached('image/png', 'a.png', pngWithText(SECRET))],
  ['a gzip file', attached('application/gzip', 'c.txt.gz', gzipSync(Buffer.from(SECRET)))],
  ['a gzip file declared text/plain', attached('text/plain', 'c.txt', gzipSync(Buffer.from(SECRET)))],
  ['a zip holding a gzip file', attached('application/zip', 'a.zip', zip({ 'c.gz': gzipSync(Buffer.from(SECRET)) }))],
  ['encrypted-looking data', attached('application/octet-stream', 'vault.bin', randomBytes(4096))],
];

describe('every shape a reader can open: caught or unreadable, never pass', () => {
  test.each(shapes)('%s', async (_name, message) => {
    const r = await inspectOutbound(message, { rules });
    expect(r.decision).not.toEqual({ action: 'pass' });
    expect([
      { action: 'reject', rule: 'cards' },
      { action: 'quarantine', rule: 'unreadable' },
    ]).toContainEqual(r.decision);
  });

  test('what can be read is read (the number itself decides), what cannot is unreadable', async () => {
    const unreadable = new Set(['a gzip file', 'a gzip file declared text/plain', 'a zip holding a gzip file', 'encrypted-looking data']);
    for (const [name, message] of shapes) {
      const r = await inspectOutbound(message, { rules });
      expect([name, r.decision]).toEqual([
        name,
        unreadable.has(name) ? { action: 'quarantine', rule: 'unreadable' } : { action: 'reject', rule: 'cards' },
      ]);
    }
  });
});

describe('near misses: parts with nothing to read still pass, and are not unreadable', () => {
  const clean: [string, Buffer][] = [
    [
      'a PNG image',
      attached('image/png', 'logo.png', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(4096)])),
    ],
    [
      'a JPEG in a zip',
      attached(
        'application/zip',
        'photos.zip',
        zip({ 'p.jpg': Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(4096)]) }),
      ),
    ],
    ['binary data of low entropy', attached('application/octet-stream', 'big.bin', Buffer.alloc(5000, 1))],
    [
      'an S/MIME signature',
      attached('application/pkcs7-signature', 'smime.p7s', Buffer.concat([Buffer.from([0x30, 0x82, 0x10, 0x00]), randomBytes(4096)])),
    ],
    [
      'a docx with printer settings, an image and an embedded font',
      attached(
        WORD,
        'a.docx',
        wordPackage('word/document.xml', 'Dear team', {
          'word/printerSettings/printerSettings1.bin': Buffer.alloc(2000, 0),
          'word/media/image1.png': Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47]), randomBytes(4096)]),
          'word/fonts/font1.odttf': randomBytes(4096),
          'word/styles.xml': strToU8('<w:styles xmlns:w="w"><w:style w:styleId="4111111111111111"/></w:styles>'),
        }),
      ),
    ],
    ['a UTF-16 text with a wrong number', attached('application/octet-stream', 'c.txt', utf16le('card 4111 1111 1111 1112'))],
  ];
  test.each(clean)('%s', async (_name, message) => {
    const r = await extractContent(message);
    expect(r.unreadable).toEqual([]);
    expect((await inspectOutbound(message, { rules })).decision).toEqual({ action: 'pass' });
  });
});

describe('armoured OpenPGP ciphertext (PGP/MIME) is unreadable, however textual', () => {
  const armour = (kind: string) => `-----BEGIN PGP ${kind}-----\r\n\r\nhQEMA${'x9Zq'.repeat(40)}\r\n=abcd\r\n-----END PGP ${kind}-----\r\n`;
  test.each([
    ['PGP/MIME encrypted part (application/octet-stream)', attached('application/octet-stream', 'encrypted.asc', armour('MESSAGE'))],
    ['inline armoured message in text/plain', mixed('Content-Type: text/plain', `hello\r\n${armour('MESSAGE')}`)],
  ])('%s', async (_name, message) => {
    const r = await inspectOutbound(message, { rules });
    expect(r.decision).toEqual({ action: 'quarantine', rule: 'unreadable' });
  });

  test('an armoured signature is not ciphertext: it passes', async () => {
    const r = await inspectOutbound(mixed('Content-Type: application/pgp-signature', armour('SIGNATURE')), { rules });
    expect(r.decision).toEqual({ action: 'pass' });
  });
});
