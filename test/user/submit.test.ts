/**
 * `send`: SMTP submission with AUTH to a real local SMTP server (smtp-server,
 * loopback, no TLS): the server receives exactly the bytes, with the explicit
 * envelope; a wrong password is refused with 535 and the error says so.
 */
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { issueTlsCertificate } from '../../src/pki/issue';
import { privateKeyToPem } from '../../src/pki/keys';
import { main } from '../../src/cli/main';
import { UserError } from '../../src/user/errors';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { smtpPassword, submitMessage } from '../../src/user/submit';
import { NOW, type Person, type World, makePerson, makeWorld } from './world';

interface Received {
  from: string;
  to: string[];
  user: string;
  method: string;
  data: Buffer;
}

const PASSWORD = 'correct horse battery staple';

let world: World;
let alice: Person;
let server: SMTPServer;
let port: number;
const received: Received[] = [];
const authTries: string[] = [];

beforeAll(async () => {
  world = makeWorld();
  server = new SMTPServer({
    authOptional: false,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth(auth, _session, callback) {
      authTries.push(auth.method);
      if (auth.username === 'alice' && auth.password === PASSWORD) return callback(null, { user: auth.username });
      return callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          user: String(session.user),
          method: authTries[authTries.length - 1] ?? '',
          data: Buffer.concat(chunks),
        });
        callback(null, 'queued as T1');
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.server.address() as AddressInfo).port;
  alice = makePerson(world, world.a, 'alice', {
    smtp: { host: '127.0.0.1', port, user: 'alice', security: 'none', passwordFile: 'smtp-password' },
  });
  writeFileSync(join(alice.profile.dir, 'smtp-password'), `${PASSWORD}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  world.cleanup();
});

function message(): Buffer {
  return Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: hi\r\nMessage-ID: <s1@a.example>\r\n\r\nHello\r\n.leading dot\r\n..two dots\r\n',
  );
}

test('the server receives exactly the bytes, with the explicit envelope, after AUTH', async () => {
  const signed = await signAndEncrypt(alice.profile, message(), { now: NOW });
  received.length = 0;
  const r = await submitMessage(alice.profile, signed, { to: ['bob@b.example', 'carol@b.example'] });
  expect(r.accepted).toEqual(['bob@b.example', 'carol@b.example']);
  expect(r.rejected).toEqual([]);
  expect(r.response).toMatch(/^250 .*queued as T1/);
  expect(received).toHaveLength(1);
  const got = received[0]!;
  expect(got.from).toBe('alice@a.example');
  expect(got.to).toEqual(['bob@b.example', 'carol@b.example']);
  expect(got.user).toBe('alice');
  expect(['PLAIN', 'LOGIN']).toContain(got.method);
  expect(got.data.equals(signed)).toBe(true);
});

test('dot-stuffed lines and a plain message also arrive byte for byte', async () => {
  received.length = 0;
  await submitMessage(alice.profile, message(), { to: ['bob@b.example'], password: PASSWORD });
  expect(received[0]!.data.equals(message())).toBe(true);
});

test('AUTH LOGIN is used when asked for', async () => {
  authTries.length = 0;
  await submitMessage(alice.profile, message(), { to: ['bob@b.example'], password: PASSWORD, authMethod: 'LOGIN' });
  expect(authTries).toEqual(['LOGIN']);
});

test('a wrong password: the error names the 535 reply, not the password', async () => {
  const err = await submitMessage(alice.profile, message(), { to: ['bob@b.example'], password: 'wrong-secret' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UserError);
  expect((err as UserError).code).toBe('smtp');
  expect((err as Error).message).toMatch(
    new RegExp(`^Cannot submit to 127\\.0\\.0\\.1:${port}: authentication was refused: 535 Invalid username or password$`),
  );
  expect((err as Error).message).not.toContain('wrong-secret');
});

test('STARTTLS required but not offered: refused before AUTH', async () => {
  const err = await submitMessage(alice.profile, message(), {
    to: ['bob@b.example'],
    password: PASSWORD,
    smtp: { security: 'starttls' },
  }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UserError);
  expect((err as Error).message).toMatch(/^Cannot submit to 127\.0\.0\.1:\d+: STARTTLS \(required by the profile\) was refused: 500 /);
});

test('no recipients, a bad recipient, no password source', async () => {
  await expect(submitMessage(alice.profile, message(), { to: [] })).rejects.toThrow(/at least one recipient/);
  await expect(submitMessage(alice.profile, message(), { to: ['not an address'] })).rejects.toThrow(
    /Cannot submit to "not an address": not a mail address/,
  );
  const bare = loadUserProfile(alice.profile.dir);
  expect(() => smtpPassword({ ...bare.smtp!, passwordFile: undefined }, bare.dir)).toThrow(/no SMTP password/);
  expect(() => smtpPassword({ ...bare.smtp!, passwordFile: undefined, passwordEnv: 'SSMAX_TEST_UNSET_PW' }, bare.dir, {})).toThrow(
    /"SSMAX_TEST_UNSET_PW" is not set/,
  );
  expect(smtpPassword({ ...bare.smtp!, passwordFile: undefined, passwordEnv: 'PW' }, bare.dir, { PW: 'x' })).toBe('x');
});

test('security "none" to a host that is not a loopback address: refused before connecting, the password never sent', async () => {
  for (const host of ['mx.a.example', 'localhost', '192.0.2.7']) {
    const err = await submitMessage(alice.profile, message(), {
      to: ['bob@b.example'],
      password: PASSWORD,
      smtp: { host, port, user: 'alice', security: 'none' },
      timeoutMs: 2000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      `Cannot submit: security "none" to ${host}, which is not a loopback address: the password and the message would cross the network in cleartext; use starttls or tls, or a loopback address`,
    );
  }
});

test('a closed port: a clear connection error', async () => {
  const err = await submitMessage(alice.profile, message(), {
    to: ['bob@b.example'],
    password: PASSWORD,
    smtp: { port: 1 },
    timeoutMs: 2000,
  }).catch((e: unknown) => e);
  expect((err as Error).message).toMatch(/^Cannot submit to 127\.0\.0\.1:1: .*\((ECONNECTION|ESOCKET|ECONNREFUSED)\)$/);
});

test('STARTTLS: upgraded, certificate checked against the CA given, then AUTH', async () => {
  const kp = generateP256KeyPair();
  const cert = issueTlsCertificate(world.a.ca, {
    role: 'gateway',
    hosts: ['mx.a.example'],
    publicKey: kp.publicKey,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 86400_000),
  });
  let secure = false;
  const tlsServer = new SMTPServer({
    key: privateKeyToPem(kp.privateKey),
    cert: cert.pem + world.a.ca.certificate.pem,
    authMethods: ['PLAIN'],
    logger: false,
    onAuth(auth, session, callback) {
      secure = session.secure;
      callback(auth.password === PASSWORD ? null : new Error('Invalid username or password'), { user: auth.username });
    },
    onData(stream, _session, callback) {
      stream.resume();
      stream.on('end', () => callback(null, 'queued'));
    },
  });
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  const tlsPort = (tlsServer.server.address() as AddressInfo).port;
  try {
    const smtp = { port: tlsPort, security: 'starttls' as const };
    const trusted = { ca: Buffer.from(world.root.certificate.pem), servername: 'mx.a.example' };
    const ok = await submitMessage(alice.profile, message(), { to: ['bob@b.example'], password: PASSWORD, smtp, tls: trusted });
    expect(ok.accepted).toEqual(['bob@b.example']);
    expect(secure).toBe(true);
    // Without the CA, the self-made chain is not trusted: refused before AUTH.
    secure = false;
    const err = await submitMessage(alice.profile, message(), {
      to: ['bob@b.example'],
      password: PASSWORD,
      smtp,
      tls: { servername: 'mx.a.example' },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^Cannot submit to 127\.0\.0\.1:\d+: unable to get local issuer certificate/);
    expect(secure).toBe(false);
  } finally {
    await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
  }
});

test('ssmax user send: password from the environment, bytes as they are; a wrong one exits 1 naming 535', async () => {
  const path = join(world.dir, 'cli-send.eml');
  writeFileSync(path, message());
  const capture = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
  };
  received.length = 0;
  process.env.SSMAX_USER_TEST_PW = PASSWORD;
  try {
    const ok = capture();
    expect(
      await main(
        [
          'user',
          'send',
          '--profile',
          alice.profile.dir,
          '--to',
          'bob@b.example',
          '--to',
          'dan@b.example',
          '--in',
          path,
          '--password-env',
          'SSMAX_USER_TEST_PW',
        ],
        ok.io,
      ),
    ).toBe(0);
    expect(ok.out.join('\n')).toMatch(/^Submitted to bob@b\.example, dan@b\.example: 250 /);
    expect(received[0]!.data.equals(message())).toBe(true);
    expect(received[0]!.to).toEqual(['bob@b.example', 'dan@b.example']);
    process.env.SSMAX_USER_TEST_PW = 'nope-nope';
    const bad = capture();
    expect(
      await main(
        ['user', 'send', '--profile', alice.profile.dir, '--to', 'bob@b.example', '--in', path, '--password-env', 'SSMAX_USER_TEST_PW'],
        bad.io,
      ),
    ).toBe(1);
    expect(bad.err.join('\n')).toMatch(/authentication was refused: 535 /);
    expect(bad.err.join('\n')).not.toContain('nope-nope');
  } finally {
    delete process.env.SSMAX_USER_TEST_PW;
  }
});
