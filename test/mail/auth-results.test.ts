/**
 * Authentication-Results in our name that we did not write (RFC 8601 §5,
 * src/mail/auth-results.ts), as a unit; through real gateways:
 * gateway/inspection-every-part.test.ts.
 */
import { authservIdOf, withoutOwnResults } from '../../src/mail/auth-results';

const OURS = ['b.example', 'xn--bcher-kva.example', 'gw.hosting.example'];

test('the authserv-id: after comments and folding, quoted or not, of an ARC field after its instance', () => {
  expect(authservIdOf(' b.example; spf=pass')).toBe('b.example');
  expect(authservIdOf(' (a (nested) comment)\r\n\t"B.Example" 1; none')).toBe('b.example');
  expect(authservIdOf(' B.EXAMPLE(no space);spf=pass')).toBe('b.example');
  expect(authservIdOf(' i=1; b.example; ssmax-chain=pass', true)).toBe('b.example');
  expect(authservIdOf(' (unclosed b.example; spf=pass')).toBe('');
});

test('our fields go (any spelling, a name below ours, the server name, ARC too); every other byte stays', () => {
  const head = [
    'Authentication-Results: b.example; ssmax-chain=pass; ssmax-mode=transparent',
    'Received: from x by y',
    'Authentication-Results: (checked)\r\n "B.Example"; ssmax-av=pass',
    'authentication-results : mx.b.example; spf=pass',
    'Authentication-Results: bücher.example; spf=pass',
    'Authentication-Results: \uff42.example.; spf=pass',
    'ARC-Authentication-Results: i=1; b.example; ssmax-chain=pass',
    'Authentication-Results: gw.hosting.example; dkim=pass',
    'Authentication-Results: other.example; spf=pass',
    'Authentication-Results: b.example.other.example; spf=pass',
    'Authentication-Results: hosting.example; spf=pass',
    'From: x@y.example',
  ].join('\r\n');
  const message = Buffer.from(`${head}\r\n\r\nAuthentication-Results: b.example; in the body\r\n`, 'utf8');
  const out = withoutOwnResults(message, OURS).toString('utf8');
  expect(out).toBe(
    'Received: from x by y\r\n' +
      'Authentication-Results: other.example; spf=pass\r\n' +
      'Authentication-Results: b.example.other.example; spf=pass\r\n' +
      'Authentication-Results: hosting.example; spf=pass\r\n' +
      'From: x@y.example\r\n\r\nAuthentication-Results: b.example; in the body\r\n',
  );
  const none = Buffer.from('From: x@y.example\r\nAuthentication-Results: other.example; spf=pass\r\n\r\nbody');
  expect(withoutOwnResults(none, OURS)).toBe(none);
});

test('hostile input costs linear time: 200 kB of nested comment openers in a field', () => {
  const message = Buffer.from(`Authentication-Results: ${'('.repeat(200000)}\r\nFrom: x@y.example\r\n\r\nx`);
  const start = process.hrtime.bigint();
  expect(withoutOwnResults(message, OURS)).toBe(message);
  expect(Number(process.hrtime.bigint() - start) / 1e6).toBeLessThan(1000);
});
