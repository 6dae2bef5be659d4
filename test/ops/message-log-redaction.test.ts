/**
 * What the per-message log line may hold (docs/operations.md, "One log line
 * per message per hop"): no address, ever. The detail of a reply after DATA
 * can name a recipient ("No such local recipient: ADDRESS" when a recipient
 * is refused at delivery); the SMTP client gets the whole reply, the log line
 * writes every address as `<redacted>@domain`. Unit test of message-log.ts.
 */
import { CODES } from '../../src/gateway/fail-closed';
import { REPLY_TEXT_MAX, redactAddresses, startHop } from '../../src/gateway/message-log';

test('redactAddresses: every address keeps its domain only; bounded; linear on hostile text', () => {
  expect(redactAddresses('No such local recipient: carol@b.example')).toBe('No such local recipient: <redacted>@b.example');
  expect(redactAddresses('for <bob.smith+x@B.Example>, "a@x.example".')).toBe('for <<redacted>@B.Example>, "<redacted>@x.example".');
  expect(redactAddresses('user@host: refused')).toBe('<redacted>@host: refused');
  expect(redactAddresses('weird@[10.0.0.1] and x@y@z')).not.toMatch(/weird|x@y/);
  expect(redactAddresses('key b.example:v3, seal i=1 by a.example')).toBe('key b.example:v3, seal i=1 by a.example');
  expect(redactAddresses('x'.repeat(5000)).length).toBeLessThanOrEqual(REPLY_TEXT_MAX + 1);
  const hostile = `${'a'.repeat(200000)}@${'b.'.repeat(100000)}`;
  const t = process.hrtime.bigint();
  redactAddresses(hostile);
  expect(Number(process.hrtime.bigint() - t) / 1e6).toBeLessThan(200);
});

test('a reply naming recipients: the client gets it whole, the log line has <redacted>@domain and no address', () => {
  const lines: string[] = [];
  const answered: unknown[][] = [];
  const hop = startHop(
    'Q1.1',
    'inbound',
    ['carol@b.example', 'dave@b.example'],
    ['b.example'],
    (l) => lines.push(l),
    (...a: unknown[]) => {
      answered.push(a);
    },
  );
  const dsn = { code: 550, sub: 1, det: 1, msg: 'No such local recipient: carol@b.example (and <dave@b.example>)' };
  hop.next(CODES.DENY, dsn);
  expect(answered).toEqual([[CODES.DENY, dsn]]); // the SMTP answer is untouched
  expect(lines).toHaveLength(1);
  const record = JSON.parse(lines[0]!.slice(lines[0]!.indexOf('{'))) as {
    outcome: string;
    rcpts: number;
    reply: { code: number; status: string; text: string };
  };
  expect(record).toMatchObject({
    outcome: 'refused',
    rcpts: 2,
    reply: { code: 550, status: '5.1.1', text: 'No such local recipient: <redacted>@b.example (and <<redacted>@b.example>)' },
  });
  expect(lines[0]).not.toMatch(/carol|dave/);
});
