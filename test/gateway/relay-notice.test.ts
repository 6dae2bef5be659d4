/**
 * What null-sender mail from a trusted relay must be to be delivered as a
 * notice (src/gateway/relay-notice.ts), as a unit with keyd's answers
 * stubbed; through a real Postfix and gateway: postfix-dovecot.test.ts.
 */
import type { GatewayDeps } from '../../src/gateway/deps';
import { checkRelayNotice, isDeliveryReport } from '../../src/gateway/relay-notice';
import { DirectoryError } from '../../src/directory/directory';
import { GatewayError } from '../../src/mail/replies';

test('a delivery status report is multipart/report with report-type=delivery-status, in any case, quoted or with comments', () => {
  for (const v of [
    ' multipart/report; report-type=delivery-status; boundary="x"',
    ' Multipart/Report; boundary=x;\r\n\treport-type="Delivery-Status"',
    ' multipart/report (a bounce); report-type=delivery-status',
  ])
    expect([v, isDeliveryReport(v)]).toEqual([v, true]);
  for (const v of [
    undefined,
    ' text/plain',
    ' multipart/report; report-type=disposition-notification',
    ' multipart/report; report-type=feedback-report',
    ' multipart/mixed; report-type=delivery-status',
    ' multipart/report',
  ])
    expect([v, isDeliveryReport(v)]).toEqual([v, false]);
});

describe('checkRelayNotice', () => {
  const users = new Set(['alice@a.example']);
  const lists = new Set(['staff@a.example']);
  const asked: string[] = [];
  const deps = {
    config: { domain: 'a.example', localDomains: ['a.example'] },
    // b.example is an SSMAX organisation (it publishes a bundle); plain.example is not
    directory: {
      lookup: (d: string) =>
        d === 'b.example' ? Promise.resolve({ domain: 'b.example' }) : Promise.reject(new DirectoryError('none', d, 'no record')),
    },
    keyd: {
      kind: (a: string) => (
        asked.push(a),
        Promise.resolve(users.has(a) ? { kind: 'user', status: 'active' } : lists.has(a) ? { kind: 'list' } : { kind: 'none' })
      ),
    },
  } as unknown as GatewayDeps;
  const report = (from: string, type = 'multipart/report; report-type=delivery-status; boundary="b"') =>
    Buffer.from(`From: ${from}\r\nTo: alice@a.example\r\nSubject: Undelivered\r\nContent-Type: ${type}\r\n\r\n--b--\r\n`);
  const refusal = async (raw: Buffer): Promise<string> => {
    try {
      await checkRelayNotice(deps, raw);
    } catch (err) {
      expect(err).toBeInstanceOf(GatewayError);
      const r = (err as GatewayError).reply;
      return `${r.code} ${r.status} ${r.text}`;
    }
    return 'accepted';
  };

  test("a mail system's report is a notice; keyd is asked only about a From of a local domain", async () => {
    asked.length = 0;
    expect(await refusal(report('Mail Delivery System <MAILER-DAEMON@mta.a.example>'))).toBe('accepted');
    expect(await refusal(report('MAILER-DAEMON@a.example'))).toBe('accepted');
    expect(asked).toEqual(['mailer-daemon@a.example']);
  });

  test('anything else is refused 550 5.7.1 with the reason: not a report, or a report whose From is a user or list (any spelling)', async () => {
    expect(await refusal(report('ceo@a.example', 'text/plain'))).toMatch(
      /^550 5\.7\.1 Null-sender mail from a trusted relay must be a delivery status report of a mail system: its Content-Type is not/,
    );
    expect(await refusal(report('Alice <ALICE@a.example>'))).toMatch(/^550 5\.7\.1 .*: its From alice@a\.example is a user or list/);
    expect(await refusal(report('alice@\uff41.example'))).toMatch(/^550 5\.7\.1 .*: its From alice@a\.example is a user or list/);
    expect(await refusal(report('staff@a.example'))).toMatch(/^550 5\.7\.1 .*: its From staff@a\.example is a user or list/);
    // an address of this organisation that is no user (keyd knows no aliases) speaks for its mail system only as MAILER-DAEMON or postmaster
    for (const from of ['ceo+x@a.example', 'CEO <ceo@mail.a.example>', 'noreply@a.example'])
      expect(await refusal(report(from))).toMatch(
        /^550 5\.7\.1 .*: its From \S+ is an address of this organisation other than its mail system's/,
      );
    expect(await refusal(report('postmaster@mta.a.example'))).toBe('accepted');
  });

  test('a report in the name of another SSMAX organisation is refused (its mail carries its seal); one of a mail system elsewhere is a notice', async () => {
    expect(await refusal(report('ceo@b.example'))).toMatch(
      /^550 5\.7\.1 .*: its From ceo@b\.example is of the SSMAX organisation b\.example/,
    );
    expect(await refusal(report('MAILER-DAEMON@mx.b.example'))).toMatch(/of the SSMAX organisation b\.example/);
    expect(await refusal(report('MAILER-DAEMON@mail.plain.example'))).toBe('accepted');
  });

  test('a Sender field is checked as the From is: a user of this organisation or an address of another SSMAX organisation there is refused', async () => {
    const withSender = (sender: string) =>
      Buffer.from(report('MAILER-DAEMON@mta.a.example').toString('latin1').replace('\r\nTo: ', `\r\nSender: ${sender}\r\nTo: `), 'latin1');
    expect(await refusal(withSender('ceo@b.example'))).toMatch(
      /^550 5\.7\.1 .*: its Sender ceo@b\.example is of the SSMAX organisation b\.example/,
    );
    expect(await refusal(withSender('x@mail.plain.example, Alice <alice@a.example>'))).toMatch(
      /^550 5\.7\.1 .*: its Sender alice@a\.example is a user or list/,
    );
    expect(await refusal(withSender('postmaster@mail.plain.example'))).toBe('accepted');
  });
});
