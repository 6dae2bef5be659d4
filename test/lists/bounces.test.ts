/**
 * The list's bounce address (src/lists/bounces.ts): the envelope sender of
 * every copy expanded from a list, and how an address is recognised as one.
 */
import { bounceCandidate, envelopeSenderOf, listBounceAddress, listOf, LIST_NOTE } from '../../src/lists/bounces';

test("a list's bounce address, and back", () => {
  expect(listBounceAddress('staff@a.example')).toBe('staff-bounces@a.example');
  expect(listBounceAddress('Board.Members@A.example')).toBe('board.members-bounces@a.example');
  expect(bounceCandidate('staff-bounces@a.example')).toBe('staff@a.example');
  expect(bounceCandidate('STAFF-Bounces@A.example')).toBe('staff@a.example');
  // not of the form: no list to look up
  for (const a of ['staff@a.example', '-bounces@a.example', 'staff-bounce@a.example', 'staff-bounces', 'staff-bouncesx@a.example'])
    expect(bounceCandidate(a)).toBeUndefined();
});

test("a list's copy leaves with the list's bounce address; any other copy with the message's sender", () => {
  expect(envelopeSenderOf({ list: 'staff@a.example' }, 'alice@a.example')).toBe('staff-bounces@a.example');
  expect(envelopeSenderOf({}, 'alice@a.example')).toBe('alice@a.example');
  expect(envelopeSenderOf({ list: 'staff@a.example' }, '')).toBe('staff-bounces@a.example');
});

test('the queue note names the list; anything else in the notes names none', () => {
  expect(listOf({ [LIST_NOTE]: 'staff@a.example' })).toBe('staff@a.example');
  for (const notes of [undefined, {}, { [LIST_NOTE]: 42 }, { [LIST_NOTE]: 'nolist' }, { [LIST_NOTE]: `${'x'.repeat(400)}@a.example` }])
    expect(listOf(notes)).toBeUndefined();
});
