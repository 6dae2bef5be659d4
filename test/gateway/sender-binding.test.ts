/**
 * The sender binding of a submission authenticated at the gateway
 * (src/gateway/submission.ts checkSenderBinding, src/mail/message-checks.ts
 * senderOf), as a unit: the From, the Sender field and the envelope sender
 * must all be the login's address.
 */
import { checkSenderBinding, type Submitter } from '../../src/gateway/submission';
import { checkMessage, senderOf } from '../../src/mail/message-checks';
import { GatewayError } from '../../src/mail/replies';

const ALICE: Submitter = { id: 'alice@a.example', via: 'smtp-auth' };

function answer(head: string, submitter: Submitter | undefined = ALICE, envelope = 'alice@a.example'): string {
  const checked = checkMessage(Buffer.from(`${head}\r\nSubject: s\r\n\r\nx`, 'latin1'));
  try {
    checkSenderBinding(submitter, checked.from, envelope, senderOf(checked.headers));
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return `${err.reply.code} ${err.reply.status} ${err.reply.text}`;
  }
  return 'accepted';
}

test('a Sender field naming another user: 550 5.7.1 senderNotLogin, naming it', () => {
  expect(answer('From: alice@a.example\r\nSender: ceo@a.example')).toMatch(
    /^550 5\.7\.1 Sender address not owned by the authenticated user: Sender ceo@a\.example, logged in as alice@a\.example/,
  );
});

test('a Sender field of two addresses or none: 550 5.7.1', () => {
  expect(answer('From: alice@a.example\r\nSender: alice@a.example, ceo@a.example')).toMatch(/^550 5\.7\.1 .*Sender \(not one address\)/);
  expect(answer('From: alice@a.example\r\nSender: nobody')).toMatch(/^550 5\.7\.1 /);
});

test('control: no Sender, or the login itself in any case: accepted; a trusted relay is not checked here (its Sender: checkRelayedSender, gateway/postfix-dovecot)', () => {
  expect(answer('From: alice@a.example')).toBe('accepted');
  expect(answer('From: Alice <alice@a.example>\r\nSender: Alice <ALICE@A.example>')).toBe('accepted');
  expect(answer('From: alice@a.example\r\nSender: ceo@a.example', { id: 'relay', via: 'trusted-relay' })).toBe('accepted');
});
