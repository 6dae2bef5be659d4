import fc from 'fast-check';
import type { NameConstraintsView } from '../../src/pki/certificate';
import { nameAllowed } from '../../src/pki/name-constraints';

const orgA: NameConstraintsView = {
  permitted: [
    { kind: 'dns', value: 'a.example' },
    { kind: 'email', value: 'a.example' },
    { kind: 'email', value: '.a.example' },
  ],
  excluded: [],
  hasOtherForms: false,
};
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const local = fc.stringMatching(/^[a-z0-9._+-]{1,12}$/);

describe('name constraints of an organisation CA (a.example)', () => {
  test('every host at or under a.example is inside', () => {
    fc.assert(
      fc.property(fc.array(label, { maxLength: 3 }), (labels) =>
        nameAllowed({ kind: 'dns', value: [...labels, 'a', 'example'].join('.') }, orgA),
      ),
    );
  });
  test('a label glued to the domain, or the domain as a prefix, is outside', () => {
    fc.assert(
      fc.property(
        label,
        (l) => !nameAllowed({ kind: 'dns', value: `${l}a.example` }, orgA) && !nameAllowed({ kind: 'dns', value: `a.example.${l}` }, orgA),
      ),
    );
  });
  test('mailboxes at the domain and its subdomains are inside, elsewhere outside', () => {
    fc.assert(
      fc.property(
        local,
        fc.array(label, { maxLength: 2 }),
        label,
        (lp, sub, other) =>
          nameAllowed({ kind: 'email', value: `${lp}@${[...sub, 'a', 'example'].join('.')}` }, orgA) &&
          !nameAllowed({ kind: 'email', value: `${lp}@${other}a.example` }, orgA) &&
          !nameAllowed({ kind: 'email', value: `${lp}@a.example.${other}` }, orgA),
      ),
    );
  });
  test('host names compare case-insensitively; a bare word is not a mailbox', () => {
    expect(nameAllowed({ kind: 'dns', value: 'MX.A.Example' }, orgA)).toBe(true);
    expect(nameAllowed({ kind: 'email', value: 'Bob@A.EXAMPLE' }, orgA)).toBe(true);
    expect(nameAllowed({ kind: 'email', value: 'a.example' }, orgA)).toBe(false);
  });
  test('excluded subtrees win over permitted ones; a mailbox constraint matches that mailbox only', () => {
    const nc: NameConstraintsView = {
      ...orgA,
      excluded: [
        { kind: 'dns', value: 'secret.a.example' },
        { kind: 'email', value: 'ceo@a.example' },
      ],
    };
    expect(nameAllowed({ kind: 'dns', value: 'x.secret.a.example' }, nc)).toBe(false);
    expect(nameAllowed({ kind: 'dns', value: 'public.a.example' }, nc)).toBe(true);
    expect(nameAllowed({ kind: 'email', value: 'ceo@a.example' }, nc)).toBe(false);
    expect(nameAllowed({ kind: 'email', value: 'cfo@a.example' }, nc)).toBe(true);
  });
  test('a kind without permitted subtrees is unconstrained', () => {
    const dnsOnly: NameConstraintsView = { permitted: [{ kind: 'dns', value: 'a.example' }], excluded: [], hasOtherForms: false };
    expect(nameAllowed({ kind: 'email', value: 'x@anything.example' }, dnsOnly)).toBe(true);
  });
});
