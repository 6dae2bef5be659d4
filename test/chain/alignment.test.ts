/**
 * The parent-domain rule of sender-domain alignment (src/chain/alignment.ts),
 * as a unit: `aligned` for sealed mail, `organisationOf` for the domain an
 * unsealed message claims (a subdomain without a bundle of its own belongs to
 * its parent's organisation), each lookup counted, so the bound on a From
 * domain of many labels is asserted.
 */
import { MAX_PARENT_LOOKUPS, aligned, canonicalDomain, organisationOf, parentsOf, withinDomain } from '../../src/chain/alignment';

/** A bundle answer over `bundles`, recording every domain asked about. */
function directory(bundles: readonly string[]): { asked: string[]; has: (d: string) => Promise<boolean> } {
  const asked: string[] = [];
  return { asked, has: (d) => (asked.push(d), Promise.resolve(bundles.includes(d))) };
}

test('parentsOf: the parents of at least two labels, nearest first', () => {
  expect(parentsOf('a.hr.b.example')).toEqual(['hr.b.example', 'b.example']);
  expect(parentsOf('b.example')).toEqual([]);
  expect(parentsOf('example')).toEqual([]);
});

describe('organisationOf (an unsealed message claiming a domain)', () => {
  test('a subdomain without a bundle of its own is its parent organisation: hr.b.example and a.b.c.hr.b.example are b.example', async () => {
    const dir = directory(['b.example']);
    expect(await organisationOf('hr.b.example', dir.has)).toBe('b.example');
    expect(await organisationOf('a.b.c.hr.b.example', dir.has)).toBe('b.example');
    expect(await organisationOf('b.example', dir.has)).toBe('b.example');
  });

  test('a subdomain with a bundle of its own is its own organisation; a domain with no SSMAX above it is none', async () => {
    const dir = directory(['b.example', 'hr.b.example']);
    expect(await organisationOf('x.hr.b.example', dir.has)).toBe('hr.b.example');
    expect(await organisationOf('mail.plain.example', dir.has)).toBeUndefined();
    expect(dir.asked.slice(-2)).toEqual(['mail.plain.example', 'plain.example']);
  });

  test(`a From domain of 120 labels costs at most ${MAX_PARENT_LOOKUPS + 1} lookups, and labels added below b.example do not hide it`, async () => {
    const deep = `${Array.from({ length: 118 }, () => 'a').join('.')}.b.example`;
    const none = directory([]);
    expect(await organisationOf(deep, none.has)).toBeUndefined();
    expect(none.asked.length).toBe(MAX_PARENT_LOOKUPS + 1);
    expect(none.asked).toContain('b.example');
    const dir = directory(['b.example']);
    expect(await organisationOf(deep, dir.has)).toBe('b.example');
    expect(dir.asked.length).toBeLessThanOrEqual(MAX_PARENT_LOOKUPS + 1);
  });

  test('a lookup that cannot be answered fails the whole (the caller answers 4xx)', async () => {
    await expect(
      organisationOf('hr.b.example', (d) => (d === 'b.example' ? Promise.reject(new Error('down')) : Promise.resolve(false))),
    ).rejects.toThrow('down');
  });
});

describe('aligned (sealed mail), the same parent rule', () => {
  test('the sealer itself and its subdomains without a bundle; not a subdomain with its own, not another domain', async () => {
    expect(await aligned('b.example', 'b.example', directory([]).has)).toBe(true);
    expect(await aligned('x.hr.b.example', 'b.example', directory(['b.example']).has)).toBe(true);
    expect(await aligned('x.hr.b.example', 'b.example', directory(['b.example', 'hr.b.example']).has)).toBe(false);
    expect(await aligned('b.example', 'c.example', directory([]).has)).toBe(false);
    expect(await aligned('xb.example', 'b.example', directory([]).has)).toBe(false);
  });

  test('only the domains between the From domain and the sealer are asked about', async () => {
    const dir = directory([]);
    await aligned('x.hr.b.example', 'b.example', dir.has);
    expect(dir.asked).toEqual(['x.hr.b.example', 'hr.b.example']);
  });

  test(`a From domain of 120 labels under the sealer costs at most ${MAX_PARENT_LOOKUPS + 1} lookups`, async () => {
    const labels = Array.from({ length: 118 }, (_, i) => `l${i}`).join('.');
    const dir = directory(['b.example']);
    expect(await aligned(`${labels}.b.example`, 'b.example', dir.has)).toBe(true);
    expect(dir.asked.length).toBeLessThanOrEqual(MAX_PARENT_LOOKUPS + 1);
    expect(dir.asked).not.toContain('b.example');
    // the parents nearest the sealer are the ones asked about: an organisation just below it still counts
    const sub = directory(['b.example', 'hr.b.example']);
    expect(await aligned(`${labels}.hr.b.example`, 'b.example', sub.has)).toBe(false);
  });

  test('a From domain spelt with a trailing dot or an empty label is aligned with nothing (one spelling of a name)', async () => {
    for (const from of ['b.example.', 'x.b.example.', 'x..b.example', '.b.example'])
      expect(await aligned(from, 'b.example', directory([]).has)).toBe(false);
  });
});

describe('one spelling of a domain (canonicalDomain): what every comparison and lookup uses', () => {
  test('an internationalised name in any spelling is its ASCII form; ASCII is only lowercased', () => {
    for (const spelt of ['bücher.example', 'BÜCHER.example', 'xn--bcher-kva.example', 'XN--BCHER-KVA.Example', 'bücher\u3002example'])
      expect([spelt, canonicalDomain(spelt)]).toEqual([spelt, 'xn--bcher-kva.example']);
    // what a mail client shows as "b.example": full-width letters, a soft hyphen inside a label
    for (const spelt of ['\uff42.example', 'b\u00ad.example', 'B.EXAMPLE', 'b.example'])
      expect([spelt, canonicalDomain(spelt)]).toEqual([spelt, 'b.example']);
    // an ASCII spelling is never mapped: a percent sign or a number stays as written
    expect(canonicalDomain('b%2eexample')).toBe('b%2eexample');
    expect(canonicalDomain('0x7f.1')).toBe('0x7f.1');
  });

  test("'' for what is no domain name: the mapping refuses it, a Unicode spelling with %, an empty label, a trailing dot, a Unicode spelling over 253 characters", () => {
    for (const spelt of [
      '',
      'xn--zz.example',
      'b\u200d.example',
      'bü cher.example',
      'bücher%2eexample',
      'bücher.example.',
      'bücher..example',
      'b.example.',
      'x..b.example',
      `${'ü'.repeat(250)}.example`,
    ])
      expect([spelt.slice(0, 30), canonicalDomain(spelt)]).toEqual([spelt.slice(0, 30), '']);
  });

  test('hostile input costs linear time: a 253-character Unicode spelling of distinct code points maps in well under a millisecond each', () => {
    const label = Array.from({ length: 60 }, (_, i) => String.fromCodePoint(0x4e00 + i)).join('');
    const spelt = `${label}.${label}.${label}.${label.slice(0, 40)}.example`.slice(0, 253);
    const start = process.hrtime.bigint();
    for (let i = 0; i < 1000; i++) canonicalDomain(spelt);
    expect(Number(process.hrtime.bigint() - start) / 1e6).toBeLessThan(1000);
  });

  test('alignment and the organisation of a From domain across spellings', async () => {
    expect(withinDomain('ceo@x'.slice(4) + '.bücher.example', 'xn--bcher-kva.example')).toBe(true);
    expect(withinDomain('\uff41.example', 'a.example')).toBe(true);
    expect(await aligned('bücher.example', 'xn--bcher-kva.example', directory([]).has)).toBe(true);
    expect(await aligned('hr.\uff41.example', 'a.example', directory([]).has)).toBe(true);
    expect(await aligned('\uff41.example', 'c.example', directory([]).has)).toBe(false);
    const dir = directory(['xn--bcher-kva.example']);
    expect(await organisationOf('mail.bücher.example', dir.has)).toBe('xn--bcher-kva.example');
    // asked about in the ASCII form only
    expect(dir.asked).toEqual(['mail.xn--bcher-kva.example', 'xn--bcher-kva.example']);
    await expect(organisationOf('bü cher.example', dir.has)).rejects.toThrow(/not a domain name/);
  });
});
