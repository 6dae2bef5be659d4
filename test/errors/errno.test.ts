import { readFileSync } from 'node:fs';
import { cannotRead, errnoCode, errnoText } from '../../src/errors/errno';

function thrownBy(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('errno messages (src/errors/errno.ts)', () => {
  const missing = thrownBy(() => readFileSync('/nonexistent/ssmax-errno-test'));

  test('a system error is named by its code, not its message (which repeats the path)', () => {
    expect(errnoCode(missing)).toBe('ENOENT');
    expect(errnoText(missing)).toBe('ENOENT');
  });

  test('an error without a code is named by its message; a thrown non-error by its text', () => {
    expect(errnoCode(new Error('bad thing'))).toBeUndefined();
    expect(errnoText(new Error('bad thing'))).toBe('bad thing');
    expect(errnoText('plain')).toBe('plain');
    expect(errnoText(undefined)).toBe('undefined');
  });

  test('cannotRead: one wording for a file that could not be read', () => {
    expect(cannotRead('keyd config', '/etc/x.ini', missing)).toBe('Cannot read keyd config "/etc/x.ini": ENOENT');
  });
});
