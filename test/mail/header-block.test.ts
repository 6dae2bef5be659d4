import {
  findHeaderEnd,
  firstValue,
  foldedField,
  isField,
  splitHeaderBlock,
  unfoldedValue,
  withoutField,
} from '../../src/mail/header-block';

const m = (s: string) => Buffer.from(s, 'latin1');

describe('the root header block splitter (src/mail/header-block.ts)', () => {
  test('fields keep their folded lines; header end and body start are found at the first empty line', () => {
    const msg = m('From: a@a.example\r\nSubject: one\r\n two\r\n\tthree\r\nTo: b@b.example\r\n\r\nbody\r\n\r\nX: not a field\r\n');
    const b = splitHeaderBlock(msg);
    expect(b.fields).toEqual(['From: a@a.example', 'Subject: one\r\n two\r\n\tthree', 'To: b@b.example']);
    expect(b.separated).toBe(true);
    expect(msg.subarray(b.headEnd, b.bodyStart).toString()).toBe('\r\n');
    expect(msg.subarray(b.bodyStart).toString()).toBe('body\r\n\r\nX: not a field\r\n');
    expect(unfoldedValue(b.fields[1]!)).toBe(' one two three');
    expect(firstValue(b.fields, 'SUBJECT')).toBe('one two three');
    expect(firstValue(b.fields, 'cc')).toBeUndefined();
  });

  test('a message without an empty line is all header', () => {
    const msg = m('From: a@a.example\r\nSubject: x');
    const b = splitHeaderBlock(msg);
    expect(b).toEqual({ fields: ['From: a@a.example', 'Subject: x'], headEnd: msg.length, bodyStart: msg.length, separated: false });
  });

  test('bare LF ends lines only when asked, and the first empty line of either kind ends the block', () => {
    const msg = m('A: 1\nB: 2\n continued\n\nbody\r\n\r\n');
    expect(splitHeaderBlock(msg).separated).toBe(true);
    expect(splitHeaderBlock(msg).fields).toHaveLength(1); // CRLF only: the bare-LF lines are one field
    const lf = splitHeaderBlock(msg, { bareLf: true });
    expect(lf.fields).toEqual(['A: 1', 'B: 2\n continued']);
    expect(msg.subarray(lf.bodyStart).toString()).toBe('body\r\n\r\n');
  });

  test('isField: the name case-insensitively, spaces or tabs before the colon, nothing else', () => {
    expect(isField('SSMAX-Delivery-Id: x', 'ssmax-delivery-id')).toBe(true);
    expect(isField('ssmax-delivery-id \t: x', 'SSMAX-Delivery-Id')).toBe(true);
    expect(isField('ssmax-delivery-idx: x', 'ssmax-delivery-id')).toBe(false);
    expect(isField('ssmax-delivery-id', 'ssmax-delivery-id')).toBe(false);
    expect(isField('X-ssmax-delivery-id: x', 'ssmax-delivery-id')).toBe(false);
  });

  test('withoutField removes every field of that name with its folds and keeps every other byte', () => {
    const msg = m('Bcc: x@a.example,\r\n y@a.example\r\nTo: b@b.example\r\nbcc : z@a.example\r\n\r\nBcc: in the body\r\n');
    expect(withoutField(msg, 'bcc').toString('latin1')).toBe('To: b@b.example\r\n\r\nBcc: in the body\r\n');
    const lf = m('To: b\nBcc: x\n\nbody');
    expect(withoutField(lf, 'BCC').toString('latin1')).toBe('To: b\n\nbody');
    expect(withoutField(msg, 'cc')).toBe(msg); // none: the message itself
  });

  test('findHeaderEnd agrees with splitHeaderBlock', () => {
    for (const s of ['A: 1\r\n\r\nb', 'A: 1\n\nb\r\n\r\n', 'A: 1', '']) {
      for (const bareLf of [false, true]) {
        const { fields: _f, ...ends } = splitHeaderBlock(m(s), { bareLf });
        expect(findHeaderEnd(m(s), { bareLf })).toEqual(ends);
      }
    }
  });
});

describe('foldedField: a generated field in lines near 78 characters, never over 998 (src/mail/header-block.ts)', () => {
  const unfold = (field: string) => field.replace(/\r\n /g, ' ');
  test.each([
    ['Subject', 'short'],
    ['Subject', `Fwd: ${'word '.repeat(300)}end`],
    ['To', Array.from({ length: 60 }, (_, i) => `user${i}@b.example`).join(', ')],
    ['Subject', 'two  spaces   and more    '],
    ['Subject', ''],
  ])('%s: every line at most 78 characters when its words allow, unfolding gives the value back', (name, value) => {
    const field = foldedField(name, value)!;
    expect(unfold(field)).toBe(`${name}: ${value}`);
    for (const line of field.split('\r\n')) {
      expect(line.length).toBeLessThanOrEqual(78);
      expect(line.trim()).not.toBe(''); // no line of whitespace alone
    }
  });
  test('a word longer than a line stands alone on its line; past 998 characters it cannot be folded', () => {
    const long = 'x'.repeat(500);
    const field = foldedField('Subject', `a ${long} b`)!;
    expect(field.split('\r\n')).toEqual(['Subject: a', ` ${long}`, ' b']);
    expect(foldedField('Subject', `a ${'x'.repeat(998)}`)).toBeUndefined();
  });
});
