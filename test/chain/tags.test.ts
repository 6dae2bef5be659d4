import { parseSeal, parseUserSignature, renderField, signedForm } from '../../src/chain/tags';
import { PROTECTED_HEADERS } from '../../src/chain/protected-headers';
import { CHAIN_LIMITS } from '../../src/chain/limits';
import { canonicalizeRelaxed } from '../../src/chain/canonicalize';

const H32 = Buffer.alloc(32, 7).toString('base64url');
const B64 = Buffer.alloc(64, 9).toString('base64url');
const H = PROTECTED_HEADERS.join(':');
const TT = Buffer.from('token').toString('base64url');

function sealValue(overrides: Record<string, string | undefined> = {}): string {
  const tags: Record<string, string | undefined> = {
    v: '1',
    i: '1',
    d: 'a.example',
    c: H32,
    t: '1764072000',
    cv: 'none',
    vd: 'dlp:pass,av:none',
    tt: TT,
    h: H,
    hh: H32,
    bh: H32,
    b: B64,
    ...overrides,
  };
  return ` ${Object.entries(tags)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join('; ')}`;
}

function userValue(overrides: Record<string, string | undefined> = {}): string {
  const tags: Record<string, string | undefined> = {
    v: '1',
    u: 'alice@a.example',
    c: H32,
    t: '1764072000',
    h: H,
    hh: H32,
    bh: H32,
    b: B64,
    ...overrides,
  };
  return ` ${Object.entries(tags)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join('; ')}`;
}

describe('seal grammar', () => {
  it('parses a well-formed seal, folded anywhere between tags', () => {
    const folded = sealValue().replace(/; /g, ';\r\n\t ');
    const seal = parseSeal(folded);
    expect(seal).toMatchObject({
      instance: 1,
      domain: 'a.example',
      chainValidation: 'none',
      trackingToken: TT,
      verdicts: [
        { name: 'dlp', result: 'pass' },
        { name: 'av', result: 'none' },
      ],
      time: 1764072000,
    });
    expect(seal.signedHeaders).toEqual(PROTECTED_HEADERS);
  });

  it('gives a seal read again the same answer, which no caller can change; a malformed one is refused every time', () => {
    const value = sealValue({ vd: 'dlp:pass' });
    const first = parseSeal(value);
    const again = parseSeal(`${value}`);
    expect(again).toEqual(first);
    expect(Object.isFrozen(again) && Object.isFrozen(again.tags) && Object.isFrozen(again.tags[0])).toBe(true);
    expect(Object.isFrozen(again.verdicts) && Object.isFrozen(again.verdicts[0]) && Object.isFrozen(again.signedHeaders)).toBe(true);
    expect(() => (again.verdicts as unknown as { name: string }[]).push({ name: 'x' })).toThrow(TypeError);
    expect(parseSeal(value).verdicts).toEqual([{ name: 'dlp', result: 'pass' }]);
    for (let n = 0; n < 2; n++) expect(() => parseSeal(sealValue({ i: '0' }))).toThrow('tag "i" is not a positive integer');
    // more distinct seals than are kept: each still parses to its own fields
    const many = Array.from({ length: 300 }, (_, k) => sealValue({ t: String(1764072000 + k) }));
    for (const v of many) parseSeal(v);
    expect(many.map((v) => parseSeal(v).time)).toEqual(many.map((_, k) => 1764072000 + k));
  });

  it('accepts an empty verdict list', () => {
    expect(parseSeal(sealValue({ vd: '' })).verdicts).toEqual([]);
  });

  it.each([
    [{ i: '0' }, 'Cannot parse seal "i=0": tag "i" is not a positive integer'],
    [{ i: '01' }, 'Cannot parse seal "i=01": tag "i" is not a positive integer'],
    [{ i: 'x' }, 'Cannot parse seal "i=x": tag "i" is not a positive integer'],
    [{ i: '17', tt: undefined }, `Cannot parse seal "i=17": tag "i" exceeds the limit of ${CHAIN_LIMITS.maxSeals} seals`],
    [{ v: '2' }, 'Cannot parse seal "v=2": tag "v" is not "1"'],
    [{ d: 'A.example' }, 'Cannot parse seal "d=A.example": tag "d" is not a lowercase domain name'],
    [{ d: 'localhost' }, 'Cannot parse seal "d=localhost": tag "d" is not a lowercase domain name'],
    [{ c: 'abc' }, 'Cannot parse seal "c=abc": tag "c" is not 32 bytes'],
    [{ c: `${H32.slice(0, -1)}+` }, `Cannot parse seal "c=${H32.slice(0, -1)}+": tag "c" is not canonical base64url`],
    [{ t: '-5' }, 'Cannot parse seal "t=-5": tag "t" is not a Unix time in seconds'],
    [{ cv: 'neutral' }, 'Cannot parse seal "cv=neutral": tag "cv" is not one of none, pass, fail'],
    [
      { vd: 'dlp:ok' },
      'Cannot parse seal "vd=dlp:ok": tag "vd" has a result "ok" for "dlp" that is not one of pass, fail, none, no-consent, temperror',
    ],
    [{ vd: 'dlp:pass,dlp:fail' }, 'Cannot parse seal "vd=dlp:pass,dlp:fail": tag "vd" names "dlp" twice'],
    [
      { vd: 'DLP:pass' },
      'Cannot parse seal "vd=DLP:pass": tag "vd" has a verdict name "DLP" that is not 1-32 lowercase letters, digits and "-"',
    ],
    [{ b: H32 }, `Cannot parse seal "b=${H32}": tag "b" is not 64 bytes`],
  ])('rejects %j with a precise error', (overrides, message) => {
    expect(() => parseSeal(sealValue(overrides))).toThrow(message);
  });

  it('quotes a long offending tag shortened to 80 characters', () => {
    const value = `h=${H}:from`;
    expect(() => parseSeal(sealValue({ h: `${H}:from` }))).toThrow(
      `Cannot parse seal "${value.slice(0, 79)}…": tag "h" names "from" twice`,
    );
  });

  it('rejects structural malformations with a precise error', () => {
    expect(() => parseSeal(sealValue({ bh: undefined }))).toThrow(
      `Cannot parse seal "${sealValue({ bh: undefined }).trim().slice(0, 79)}…": tag "bh" is missing`,
    );
    expect(() => parseSeal(`${sealValue()};`)).toThrow('it ends with ";"');
    expect(() => parseSeal(sealValue().replace('; d=', '; ; d='))).toThrow('tag 3 is empty');
    expect(() => parseSeal(sealValue().replace('d=a.example', 'd a.example'))).toThrow('Cannot parse seal "d a.example": tag 3 has no "="');
    expect(() => parseSeal(sealValue().replace('d=a.example', 'd=a.example; d=b.example'))).toThrow(
      'Cannot parse seal "d=b.example": tag "d" appears twice',
    );
    expect(() => parseSeal(`${sealValue()}; l=100`)).toThrow('Cannot parse seal "l=100": tag "l" is unknown in version 1');
    expect(() => parseSeal(sealValue().replace(' v=1; i=1;', ' i=1; v=1;'))).toThrow('Cannot parse seal "i=1": the first tag is not "v"');
    expect(() => parseSeal(sealValue().replace('d=a.example', 'd=a. example'))).toThrow('tag "d" contains whitespace');
    expect(() => parseSeal(sealValue().replace('d=a.example', 'd=a.ex\u00e4mple'))).toThrow(
      'it contains a character outside printable ASCII',
    );
    expect(() => parseSeal(sealValue().replace('; d=', ';\r\nd='))).toThrow('a line break is not followed by whitespace');
    expect(() => parseSeal(sealValue().replace('D=', 'd='))).not.toThrow();
    expect(() => parseSeal(sealValue().replace('d=', 'D='))).toThrow('tag name "D" is not lowercase letters');
  });

  it('gives the reason tracking-token-position for a token outside instance 1, or none at 1', () => {
    expect(() => parseSeal(sealValue({ i: '2', cv: 'pass' }))).toThrow(
      expect.objectContaining({
        reason: 'tracking-token-position',
        message: `Cannot parse seal "tt=${TT}": tag "tt" is only allowed at instance 1`,
      }),
    );
    expect(() => parseSeal(sealValue({ tt: undefined }))).toThrow(
      expect.objectContaining({
        reason: 'tracking-token-position',
        message: 'Cannot parse seal "i=1": tag "tt" is required at instance 1',
      }),
    );
  });

  it('gives the reason protected-header-uncovered when h= leaves out a protected header', () => {
    const h = PROTECTED_HEADERS.filter((n) => n !== 'cc').join(':');
    expect(() => parseSeal(sealValue({ h }))).toThrow(expect.objectContaining({ reason: 'protected-header-uncovered' }));
    expect(() => parseSeal(sealValue({ h: `${H}:ssmax-seal` }))).toThrow('tag "h" names the chain field "ssmax-seal"');
  });

  it('gives the reason limit-exceeded for an over-long field, too many verdicts or too long a token', () => {
    expect(() => parseSeal(`${sealValue()}${' '.repeat(CHAIN_LIMITS.maxAuthHeaderLength)}`)).toThrow(
      expect.objectContaining({ reason: 'limit-exceeded' }),
    );
    const vd = Array.from({ length: CHAIN_LIMITS.maxVerdicts + 1 }, (_, i) => `x${i}:pass`).join(',');
    expect(() => parseSeal(sealValue({ vd }))).toThrow(expect.objectContaining({ reason: 'limit-exceeded' }));
    expect(() => parseSeal(sealValue({ tt: 'A'.repeat(CHAIN_LIMITS.maxTrackingTokenChars + 4) }))).toThrow(
      expect.objectContaining({ reason: 'limit-exceeded' }),
    );
  });
});

describe('user signature grammar', () => {
  it('parses a well-formed user signature', () => {
    expect(parseUserSignature(userValue())).toMatchObject({ signer: 'alice@a.example', certRef: H32 });
  });

  it.each([
    [{ u: 'alice' }, 'Cannot parse user signature "u=alice": tag "u" is not an addr-spec with a lowercase domain'],
    [{ u: 'alice@A.example' }, 'Cannot parse user signature "u=alice@A.example": tag "u" is not an addr-spec with a lowercase domain'],
    [{ i: '1' }, 'Cannot parse user signature "i=1": tag "i" is unknown in version 1'],
  ])('rejects %j', (overrides, message) => {
    expect(() => parseUserSignature(userValue(overrides))).toThrow(message);
  });
});

describe('signed form and rendering', () => {
  it('renders folded lines of at most 78 characters, or one tag alone, that parse back to the same tags', () => {
    const seal = parseSeal(sealValue());
    const field = renderField('seal', seal.tags);
    for (const line of field.split('\r\n')) expect(line.length <= 78 || /^ [a-z]+=[^ ;]+;?$/.test(line)).toBe(true);
    expect(parseSeal(field.slice(field.indexOf(':') + 1)).tags).toEqual(seal.tags);
  });

  it('empties only b= in the signed form, whatever the folding', () => {
    const seal = parseSeal(sealValue().replace(/; /g, ';\r\n '));
    expect(signedForm('seal', seal.tags, true)).toBe(`ssmax-seal:${sealValue().trim().replace(`b=${B64}`, 'b=')}`);
  });

  it('canonicalises header fields relaxed as in DKIM (RFC 6376 §3.4.2)', () => {
    expect(canonicalizeRelaxed('SubJect \t:  Hello \t World \r\n\t again  ')).toBe('subject:Hello World again\r\n');
    expect(canonicalizeRelaxed('From:a@b')).toBe('from:a@b\r\n');
  });
});
