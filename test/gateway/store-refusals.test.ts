/**
 * Which recipients a mailbox store refused while it took the message for
 * others (delivery.ts `refusalsOf`): a refusal matched to its recipient keeps
 * the store's reply; one that names no recipient of the copy can never make a
 * refused recipient count as delivered.
 */
import { refusalsOf } from '../../src/gateway/delivery';

const failure = (response: string, responseCode: number, recipient?: string) =>
  Object.assign(new Error(response), { response, responseCode, ...(recipient !== undefined ? { recipient } : {}) });

describe('refusalsOf', () => {
  test('each refusal under the recipient it names, in the case the copy was addressed with', () => {
    const r = refusalsOf(['Alice@a.example', 'dave@a.example'], {
      accepted: ['dave@a.example'],
      rejected: ['alice@a.example'],
      rejectedErrors: [failure('550 5.1.1 no such user', 550, 'alice@a.example')],
    });
    expect(r).toEqual([{ rcpt: 'Alice@a.example', code: 550, reply: '550 5.1.1 no such user' }]);
  });

  test('without `recipient`, the parallel `rejected` entry names it', () => {
    const r = refusalsOf(['alice@a.example', 'dave@a.example'], {
      accepted: ['dave@a.example'],
      rejected: ['alice@a.example'],
      rejectedErrors: [failure('550 5.1.1 no such user', 550)],
    });
    expect(r).toEqual([{ rcpt: 'alice@a.example', code: 550, reply: '550 5.1.1 no such user' }]);
  });

  test('a refusal naming nobody: every recipient not listed as accepted is refused for now (4xx), none counts as delivered', () => {
    const r = refusalsOf(['alice@a.example', 'dave@a.example', 'hana@a.example'], {
      accepted: ['dave@a.example'],
      rejected: [],
      rejectedErrors: [failure('550 5.1.1 no such user', 550)],
    });
    expect(r.map((x) => x.rcpt)).toEqual(['alice@a.example', 'hana@a.example']);
    for (const x of r) {
      expect(x.code).toBeLessThan(500);
      expect(x.reply).toMatch(/^4\.0\.0 550 5\.1\.1 no such user/);
    }
  });

  test('a refusal naming an address this copy was not sent to is treated the same way', () => {
    const r = refusalsOf(['alice@a.example'], {
      accepted: [],
      rejected: ['mallory@a.example'],
      rejectedErrors: [failure('550 5.1.1 no such user', 550, 'mallory@a.example')],
    });
    expect(r).toEqual([expect.objectContaining({ rcpt: 'alice@a.example', code: 450 })]);
  });

  test('nothing refused: nothing returned', () => {
    expect(refusalsOf(['alice@a.example'], { accepted: ['alice@a.example'], rejected: [] })).toEqual([]);
  });
});
