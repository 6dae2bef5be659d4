/**
 * A release logs in (SMTP AUTH, when a user is configured) only for a held submission: logging in makes Haraka
 * relay the message as a submission of this organisation, which refuses an arrival held on its way in (it
 * carries seals, its sender is no user here) or a list's held post every time it is released; those go back
 * without logging in, the way they came.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { reinject } from '../../src/mail/release';

let server: SMTPServer;
let port: number;
const seen: { user: string | undefined; from: string }[] = [];

beforeAll(async () => {
  server = new SMTPServer({
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === 'releaser' && auth.password === 'pw') return callback(null, { user: auth.username });
      return callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        seen.push({
          user: session.user === undefined ? undefined : String(session.user),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        });
        callback(null, 'queued');
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const held = (direction: 'outbound' | 'inbound' | undefined, from: string) => ({
  id: `q-${from}`,
  from,
  rcpts: ['carol@b.example'],
  message: Buffer.from(`From: ${from}\r\nTo: carol@b.example\r\nSubject: held\r\n\r\nbody\r\n`),
  ...(direction ? { direction } : {}),
});

test('a held submission (outbound, or an entry of an earlier version without a direction) is released logged in', async () => {
  const via = { host: '127.0.0.1', port, user: 'releaser', password: 'pw' };
  await reinject(held('outbound', 'dave@a.example'), 'SSMAX-Release', via);
  await reinject(held(undefined, 'erin@a.example'), 'SSMAX-Release', via);
  expect(seen.filter((s) => s.from === 'dave@a.example' || s.from === 'erin@a.example').map((s) => s.user)).toEqual([
    'releaser',
    'releaser',
  ]);
});

test('an arrival held on its way in (or a held list post) is released without logging in, whatever user is configured', async () => {
  await reinject(held('inbound', 'bob@c.example'), 'SSMAX-Release', { host: '127.0.0.1', port, user: 'releaser', password: 'pw' });
  expect(seen.find((s) => s.from === 'bob@c.example')).toEqual({ user: undefined, from: 'bob@c.example' });
});
