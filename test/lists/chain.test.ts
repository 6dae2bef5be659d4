/**
 * The receiving side's rule for list seals (src/lists/chain.ts) and the
 * loop checks of the expansion step (src/lists/expand.ts), as units: the end
 * to end cases are in lists.test.ts.
 */
import type { SealReport } from '../../src/chain/seal-reading';
import { listFields, listId, listResealAccepted } from '../../src/lists/chain';
import { LIST_MAX_SEALS, Lists, autoSubmitted, withListFields } from '../../src/lists/expand';
import type { GatewayDeps } from '../../src/gateway/deps';
import type { QuarantineStore } from '../../src/inspect/quarantine';

const seal = (instance: number, domain: string, listAddress?: string): SealReport =>
  ({
    instance,
    domain,
    certRef: 'x',
    time: 0,
    chainValidation: instance === 1 ? 'none' : 'pass',
    verdicts: [],
    signature: `s${instance}`,
    matchesMessage: true,
    outcome: { result: 'pass' },
    ...(listAddress ? { listAddress } : {}),
  }) as SealReport;

const msg = (head: string) => Buffer.from(`${head}\r\n\r\nbody\r\n`);

describe('list seal acceptance (docs/security.md, "Impersonation")', () => {
  const post = msg('From: alice@a.example\r\nTo: Staff <staff@c.example>, bob@b.example\r\nSubject: x');

  test("a seal i>1 by the list's own organisation, for a list the post is addressed to, is accepted", () => {
    expect(listResealAccepted(seal(2, 'c.example', 'staff@c.example'), post)).toBe(true);
  });

  test('refused: no ls=, a list of another domain than the sealer, a list the post was not addressed to', () => {
    expect(listResealAccepted(seal(2, 'c.example'), post)).toBe(false);
    expect(listResealAccepted(seal(2, 'c.example', 'staff@a.example'), post)).toBe(false);
    expect(listResealAccepted(seal(2, 'c.example', 'other@c.example'), post)).toBe(false);
    // a longer address that merely contains the list address does not count
    expect(listResealAccepted(seal(2, 'c.example', 'taff@c.example'), post)).toBe(false);
  });

  test("seal i=1 is never exempt: a list seal cannot stand in for the sender's organisation", () => {
    expect(listResealAccepted(seal(1, 'c.example', 'staff@c.example'), post)).toBe(false);
  });

  test("an earlier list seal vouches for no later sealer: a member's organisation cannot pass as a list nested in the one it received a copy of", () => {
    // seal i=1 of a local member's post carries ls= itself (docs/lists.md); evil.example only holds a member's copy
    expect(listResealAccepted(seal(2, 'evil.example', 'x@evil.example'), post)).toBe(false);
    // nor after a list seal i=2 of another organisation: who received that list's copies is not shown to later hops
    expect(listResealAccepted(seal(3, 'd.example', 'inner@d.example'), post)).toBe(false);
  });

  test('a list address written in a Unicode spelling of its domain (as a mail client shows it) names the list; a look-alike that maps elsewhere does not', () => {
    const unicode = (to: string) => Buffer.from(`From: alice@a.example\r\nTo: ${to}\r\nSubject: x\r\n\r\nbody\r\n`, 'utf8');
    const idn = seal(2, 'xn--bcher-kva.example', 'staff@xn--bcher-kva.example');
    expect(listResealAccepted(idn, unicode('Staff <Staff@BÜCHER.example>'))).toBe(true);
    expect(listResealAccepted(seal(2, 'c.example', 'staff@c.example'), unicode('staff@\uff43.example'))).toBe(true);
    expect(listResealAccepted(idn, unicode('staff@bucher.example'))).toBe(false);
  });

  test('To and Cc are read unfolded, as addresses: a display name or comment spelling the list address names nobody', () => {
    const list = seal(2, 'c.example', 'staff@c.example');
    const folded = msg('From: a@a.example\r\nTo: x@y.example,\r\n  staff@c.example\r\nCc: z@c.example');
    expect(listResealAccepted(list, folded)).toBe(true);
    expect(listResealAccepted(list, msg('From: a@a.example\r\nCc: Staff <STAFF@c.example>'))).toBe(true);
    for (const to of ['"staff@c.example" <bob@b.example>', 'bob@b.example (staff@c.example)', 'xstaff@c.example', 'staff@c.example.org'])
      expect(listResealAccepted(list, msg(`From: a@a.example\r\nTo: ${to}`))).toBe(false);
  });
});

describe('list fields and RFC 3834', () => {
  test("List-Id per RFC 2919; an earlier list's fields are replaced, not repeated; a plain copy keeps them", () => {
    expect(listId('staff@a.example')).toBe('<staff.a.example>');
    expect(listId('a_b+c@a.example')).toBe('<a-b-c.a.example>');
    const once = withListFields(
      msg('List-Id: <old.x.example>\r\nList-Post: <mailto:old@x.example>\r\nFrom: a@a.example'),
      'staff@a.example',
    );
    const text = once.toString();
    expect(text.match(/^List-Id:/gm)).toHaveLength(1);
    expect(text).toContain('List-Id: <staff.a.example>');
    expect(text).not.toContain('old@x.example');
    expect(once.toString('latin1').startsWith(listFields('staff@a.example'))).toBe(true);
    expect(listFields('staff@a.example')).toMatch(
      /^List-Id: <staff\.a\.example>\r\nList-Post: <mailto:staff@a\.example>\r\nList-Unsubscribe: /,
    );
  });

  test('an automatic reply (auto-replied, auto-notified) is dropped by a list; a message an automatic process sent on its own (auto-generated) is a post', () => {
    expect(autoSubmitted(msg('Auto-Submitted: auto-replied\r\nFrom: a@a.example'))).toBe(true);
    expect(autoSubmitted(msg('auto-submitted: Auto-Replied (vacation)\r\nFrom: a@a.example'))).toBe(true);
    expect(autoSubmitted(msg('Auto-Submitted: auto-notified; owner-email="a@a.example"\r\nFrom: a@a.example'))).toBe(true);
    expect(autoSubmitted(msg('Auto-Submitted: auto-generated\r\nFrom: cron@a.example'))).toBe(false);
    expect(autoSubmitted(msg('Auto-Submitted: no\r\nFrom: a@a.example'))).toBe(false);
    expect(autoSubmitted(msg('From: a@a.example'))).toBe(false);
  });
});

describe('loop checks before any copy (5.4.6)', () => {
  const lists = new Lists({ consumeRelease: () => Promise.resolve(false) } as unknown as QuarantineStore, () => undefined);
  const deps = { config: { domain: 'a.example', localDomains: ['a.example'] } } as unknown as GatewayDeps;
  const list = { address: 'staff@a.example', members: ['alice@a.example'], policy: 'open' as const, moderators: [] };
  const arrival = (instances: SealReport[]) => ({
    message: msg('From: bob@b.example\r\nTo: staff@a.example'),
    rcpts: ['staff@a.example'],
    origin: { from: 'peer' as const, chain: { result: 'pass', summary: '', instances } as never },
    verdicts: [],
    sender: 'bob@b.example',
  });

  test('a post that went through this list already', async () => {
    await expect(
      lists.post(deps, { arrival: arrival([seal(1, 'b.example'), seal(2, 'a.example', 'staff@a.example')]), capsules: [], list }),
    ).rejects.toThrow(/5\.4\.6|loop/i);
  });

  test(`a post with ${LIST_MAX_SEALS} seals or more`, async () => {
    const many = Array.from({ length: LIST_MAX_SEALS }, (_, i) => seal(i + 1, 'b.example'));
    await expect(lists.post(deps, { arrival: arrival(many), capsules: [], list })).rejects.toMatchObject({
      reply: { code: 550, status: '5.4.6' },
    });
  });
});
