/**
 * Inspection of encrypted mail through real gateways (issue 8): DLP at the
 * sending organisation, ClamAV (a real clamd) at the receiving one, both on
 * plaintext obtained by blinded decryption with a verified proof; verdicts in
 * the seals; quarantine kept encrypted and released once; individuals
 * (registered at keyd as such) inspected only with consent.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Encoding from 'encoding-japanese';
import { parse } from 'ini';
import { main } from '../../src/cli/main';
import { freePort } from '../../src/demo/haraka';
import type { Network } from '../../src/demo/network';
import { queuedCopies } from '../../src/gateway/queue-reconcile';
import { QuarantineStore, RELEASE_HEADER, releaseInterrupted, releaseMarker } from '../../src/inspect/quarantine';
import { reinject } from '../../src/mail/release';
import { setupGateway } from '../../src/gateway/setup';
import { submit } from '../../src/gateway/submission';
import { type ClamdProcess, EICAR, startClamd } from '../../src/inspect/clamd-process';
import { openMessage } from '../../src/user/open';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { INDIVIDUALS, consentCases } from '../inspector/cases';
import { ORGS, network, smtp, waitFor, withUsers } from './network-fixture';
import { encryptToOrg } from '../../src/inspect/engine';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

jest.setTimeout(180000);

let net: Network;
/** x.test: a plain host without SSMAX on loopback (a.example routes it here), recording what it receives. */
let plainHost: SMTPServer;
const plainReceived: string[] = [];
let clamd: ClamdProcess;
let clamdDir: string;
let clamdPort: number;
beforeAll(async () => {
  plainHost = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        plainReceived.push(Buffer.concat(chunks).toString('latin1'));
        callback();
      });
    },
  });
  await new Promise<void>((r) => plainHost.listen(0, '127.0.0.1', r));
  const plainPort = (plainHost.server.address() as AddressInfo).port;
  net = await network(
    withUsers(ORGS, INDIVIDUALS).map((o) =>
      o.domain === 'a.example' ? { ...o, gatewayIni: [...(o.gatewayIni ?? []), '[routes]', `x.test=127.0.0.1:${plainPort}`] } : o,
    ),
  );
  clamdDir = mkdtempSync(join(tmpdir(), 'ssmax-gw-clamd-'));
  clamdPort = await freePort();
  clamd = await startClamd(clamdDir, clamdPort);
  const A = net.org('a.example');
  const B = net.org('b.example');
  writeFileSync(join(A.harakaDir, 'config', 'ssmax-inspect.ini'), '[dlp]\nenabled=true\n');
  writeFileSync(
    join(A.harakaDir, 'config', 'ssmax-dlp.ini'),
    `${readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8')}\n[secret]\ntype=keyword\nwords=top secret\naction=quarantine\n`,
  );
  writeFileSync(
    join(B.harakaDir, 'config', 'ssmax-inspect.ini'),
    `[av]\nenabled=true\nclamd=127.0.0.1:${clamdPort}\ntimeout_ms=3000\nclamd_config=${clamd.conf}\n`,
  );
  await A.restartHaraka();
  await B.restartHaraka();
});
afterAll(async () => {
  await clamd?.stop();
  await net?.stop();
  await new Promise<void>((r) => (plainHost ? plainHost.close(() => r()) : r()));
});

const A = () => net.org('a.example');
const B = () => net.org('b.example');
/** Whether a.example's Haraka queue holds a copy for bob@b.example: a held or refused submission has none; a delivered one leaves it. */
const queuedForBob = () => queuedCopies(join(A().harakaDir, 'queue')).some((c) => c.rcpts.includes('bob@b.example'));
let n = 0;
const msg = (from: string, body: Buffer | string, headers = 'Content-Type: text/plain; charset=utf-8') =>
  Buffer.concat([
    Buffer.from(
      `From: ${from}\r\nTo: bob@b.example\r\nSubject: inspect ${++n}\r\nMessage-ID: <i-${n}-${Date.now().toString(36)}@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\n${headers}\r\n\r\n`,
    ),
    Buffer.isBuffer(body) ? body : Buffer.from(body),
  ]);
const dave = { user: 'dave@a.example', pass: 'pw-dave' };

async function aliceSends(body: string): Promise<string> {
  const alice = loadUserProfile(A().profiles['alice@a.example']!);
  const encrypted = await signAndEncrypt(alice, msg('alice@a.example', body), { now: new Date() });
  try {
    return (await submitMessage(alice, encrypted, { to: ['bob@b.example'] })).response;
  } catch (err) {
    return (err as Error).message;
  }
}

describe('DLP at the sending organisation, on encrypted mail', () => {
  test('an encrypted message carrying a card number is rejected, naming the rule and never the number', async () => {
    const r = await aliceSends('Please charge 4111 1111 1111 1111 for the order.\r\n');
    expect(r).toMatch(/550 5\.7\.1 Message refused by a data-loss prevention rule: rule "payment-cards"/);
    expect(r).not.toMatch(/4111/);
  });

  test('a My Number inside ISO-2022-JP text (plain client) is rejected', async () => {
    const jis = Buffer.from(
      Encoding.convert(Encoding.stringToCode('個人番号は１２３４５６７８９０１８です。\r\n'), { to: 'JIS', from: 'UNICODE' }),
    );
    expect(
      await smtp(
        A().ports.smtp,
        'dave@a.example',
        ['bob@b.example'],
        msg('dave@a.example', jis, 'Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit'),
        dave,
      ),
    ).toMatch(/^550 5\.7\.1 .*rule "my-number"/);
  });

  test('a clean encrypted message passes: the seals say dlp=pass at a.example and av=pass at b.example', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    expect(await aliceSends('Lunch on Friday?\r\n')).toMatch(/^250 /);
    await waitFor(() => B().mailbox.for('bob@b.example').length > before);
    const opened = await openMessage(loadUserProfile(B().profiles['bob@b.example']!), B().mailbox.for('bob@b.example').at(-1)!.raw, {
      now: new Date(),
    });
    expect(opened.plaintext.toString()).toContain('Lunch on Friday?');
    expect(opened.hops.map((h) => h.verdicts)).toEqual(['dlp:pass,e2e:pass', 'av:pass,e2e:pass']);
  });

  test('a quarantine rule holds the message encrypted; an operator releases it and it is delivered once', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    const reply = await aliceSends('This is top secret.\r\n');
    expect(reply).toMatch(/Held for review \(quarantine q-/); // the reply itself when it is not
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
    const qdir = join(A().harakaDir, 'ssmax-state', 'quarantine');
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    expect(await main(['quarantine', 'list', '--state', qdir], io)).toBe(0);
    expect(out.join('\n')).toMatch(new RegExp(`${id}  .*outbound  held  secret  alice@a\\.example  bob@b\\.example`));
    expect(queuedForBob()).toBe(false); // held: not queued, so nothing can be relayed
    expect(B().mailbox.for('bob@b.example').length).toBe(before); // nothing relayed while held
    writeFileSync(join(qdir, '..', 'pw-alice'), 'pw-alice\n');
    expect(
      await main(
        [
          'quarantine',
          'release',
          id!,
          '--state',
          qdir,
          '--smtp',
          `127.0.0.1:${A().ports.smtp}`,
          '--user',
          'alice@a.example',
          '--password-file',
          join(qdir, '..', 'pw-alice'),
        ],
        io,
      ),
    ).toBe(0);
    await waitFor(() => B().mailbox.for('bob@b.example').length > before);
    await waitFor(() => !queuedForBob(), 30000); // b.example stores a copy before it answers; then a.example's queue lets it go
    expect(B().mailbox.for('bob@b.example').length).toBe(before + 1);
    const opened = await openMessage(loadUserProfile(B().profiles['bob@b.example']!), B().mailbox.for('bob@b.example').at(-1)!.raw, {
      now: new Date(),
    });
    expect(opened.plaintext.toString()).toContain('top secret');
    expect(opened.hops[0]!.verdicts).toBe('dlp:none,e2e:pass'); // released: not inspected again
  });
});

describe('a plain client held on its way to a domain without SSMAX', () => {
  test('a quarantine rule holds it (encrypted, only to be held); its release goes out in clear as the client sent it, once (it was 550 encryptedNoPeer at every release)', async () => {
    const raw = Buffer.from(
      `From: dave@a.example\r\nTo: someone@x.test\r\nSubject: plain held ${Date.now().toString(36)}\r\nMessage-ID: <ph-${Date.now().toString(36)}@a.example>\r\n` +
        'Date: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is top secret, for x.test.\r\n',
    );
    const reply = await smtp(A().ports.smtp, 'dave@a.example', ['someone@x.test'], raw, dave);
    expect(reply).toMatch(/Held for review \(quarantine q-/); // the reply itself when it is not
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
    expect(plainReceived.filter((m) => m.includes('for x.test'))).toHaveLength(0);
    const qdir = join(A().harakaDir, 'ssmax-state', 'quarantine');
    writeFileSync(join(qdir, '..', 'pw-dave'), 'pw-dave\n');
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    const code = await main(
      ['quarantine', 'release', id!, '--state', qdir, '--smtp', `127.0.0.1:${A().ports.smtp}`, '--user', 'dave@a.example'].concat([
        '--password-file',
        join(qdir, '..', 'pw-dave'),
      ]),
      io,
    );
    expect({ code, out: out.join('\n') }).toEqual({
      code: 0,
      out: expect.stringMatching(/^released q-[0-9a-z-]+: 250 .*transparent mode/) as string,
    });
    await waitFor(() => plainReceived.some((m) => m.includes('for x.test')), 30000);
    const got = plainReceived.filter((m) => m.includes('for x.test'));
    expect(got).toHaveLength(1);
    expect(got[0]).toContain('This is top secret, for x.test.'); // in clear, as sent: not the held ciphertext
    expect(got[0]).not.toMatch(/^SSMAX-Capsule:/im);
    expect(got[0]).not.toMatch(new RegExp(`^${RELEASE_HEADER}:`, 'im'));
  });

  test('a release of such an entry that sends another ciphertext to the organisation (its From the releaser) opens the held entry, never what it sent', async () => {
    const raw = Buffer.from(
      `From: dave@a.example\r\nTo: someone@x.test\r\nSubject: plain held 2\r\nMessage-ID: <ph2-${Date.now().toString(36)}@a.example>\r\n` +
        'Date: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHeld text, top secret: WRAPPED-ENTRY.\r\n',
    );
    const held = await smtp(A().ports.smtp, 'dave@a.example', ['someone@x.test'], raw, dave);
    expect(held).toMatch(/Held for review \(quarantine q-/); // the reply itself when it is not
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(held)?.[1];
    // another message encrypted to a.example's key, as the gateway holds one (e.g. another held entry)
    const ini = parse(readFileSync(join(A().harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    const gwA = setupGateway(ini, A().harakaDir, () => undefined, 'ssmax-state-forged-release');
    let other: Buffer;
    try {
      other = await encryptToOrg(
        gwA.deps.keyd,
        gwA.deps.group,
        Buffer.from(
          'From: dave@a.example\r\nTo: someone@x.test\r\nSubject: other\r\nMessage-ID: <other-1@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\n' +
            'MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nALICE-PRIVATE-TEXT\r\n',
        ),
      );
    } finally {
      await gwA.close();
    }
    const store = new QuarantineStore(join(A().harakaDir, 'ssmax-state', 'quarantine'));
    try {
      const entry = (await store.release(id!, Date.now(), 30000))!;
      const via = { host: '127.0.0.1', port: A().ports.smtp, user: 'dave@a.example', password: 'pw-dave' };
      await reinject({ ...entry, message: other }, RELEASE_HEADER, via, releaseMarker(entry)).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1500));
      expect(plainReceived.some((m) => m.includes('ALICE-PRIVATE-TEXT'))).toBe(false); // never opened and sent out in clear
      expect(plainReceived.filter((m) => m.includes('WRAPPED-ENTRY'))).toHaveLength(1); // the held entry's own text went, once
    } finally {
      await store.close();
    }
  });
});

describe("a sender's retry of a message held already", () => {
  test('(its 250 lost, or its first attempt answered 4xx after the hold) is answered with the entry it has: held once, never twice to be released twice', async () => {
    const raw = Buffer.from(
      `From: dave@a.example\r\nTo: someone@x.test\r\nSubject: retried\r\nMessage-ID: <retry-${Date.now().toString(36)}@a.example>\r\n` +
        'Date: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTop secret, sent twice: RETRY-1.\r\n',
    );
    const store = new QuarantineStore(join(A().harakaDir, 'ssmax-state', 'quarantine'));
    try {
      const before = store.heldCount();
      const heldAs = (reply: string) => /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
      const first = heldAs(await smtp(A().ports.smtp, 'dave@a.example', ['someone@x.test'], raw, dave));
      const again = heldAs(await smtp(A().ports.smtp, 'dave@a.example', ['someone@x.test'], raw, dave));
      expect(first).toBeDefined();
      expect(again).toBe(first); // before: a second entry, and releasing both delivered the message twice
      expect(store.heldCount()).toBe(before + 1);
      // the same message to other recipients is another arrival: held on its own
      const other = heldAs(await smtp(A().ports.smtp, 'dave@a.example', ['someone-else@x.test'], raw, dave));
      expect(other).toBeDefined();
      expect(other).not.toBe(first);
      expect(store.heldCount()).toBe(before + 2);
      // a message without a Date (the gateway adds one, its own at each attempt): still one entry for its retries
      const undated = Buffer.from(
        `From: dave@a.example\r\nTo: someone@x.test\r\nSubject: retried undated\r\nMessage-ID: <retry-nd-${Date.now().toString(36)}@a.example>\r\n` +
          'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTop secret, sent twice without a Date: RETRY-2.\r\n',
      );
      const dated = heldAs(await smtp(A().ports.smtp, 'dave@a.example', ['someone@x.test'], undated, dave));
      await new Promise((r) => setTimeout(r, 1100)); // the next attempt's Date is another second
      expect(heldAs(await smtp(A().ports.smtp, 'dave@a.example', ['someone@x.test'], undated, dave))).toBe(dated);
      expect(store.heldCount()).toBe(before + 3);
    } finally {
      await store.close();
    }
  });
});

describe('a release whose releaser died after the gateway took its mark', () => {
  const qdir = () => join(A().harakaDir, 'ssmax-state', 'quarantine');
  const via = () => ({ host: '127.0.0.1', port: A().ports.smtp, user: 'alice@a.example', password: 'pw-alice' });
  const heldAs = (reply: string) => {
    expect(reply).toMatch(/Held for review \(quarantine q-/); // the reply itself when it is not
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
    return id!;
  };
  const copiesOf = (text: string) =>
    Promise.all(
      B()
        .mailbox.for('bob@b.example')
        .map(async (m) =>
          (await openMessage(loadUserProfile(B().profiles['bob@b.example']!), m.raw, { now: new Date() })).plaintext.toString(),
        ),
    ).then((all) => all.filter((p) => p.includes(text)).length);
  /** `ssmax quarantine release` as an operator runs it; its exit code and output. */
  const releaseCli = async (id: string) => {
    writeFileSync(join(qdir(), '..', 'pw-alice'), 'pw-alice\n');
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    const code = await main(
      ['quarantine', 'release', id, '--state', qdir(), '--smtp', `127.0.0.1:${A().ports.smtp}`, '--user', 'alice@a.example'].concat([
        '--password-file',
        join(qdir(), '..', 'pw-alice'),
      ]),
      io,
    );
    return { code, text: out.join('\n') };
  };

  test('the gateway failed after taking it (keyd down: 4xx): once the lease ended the entry shows held and a new release delivers it, once', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    const id = heldAs(await aliceSends('top secret: the gateway failed after the mark\r\n'));
    const store = new QuarantineStore(qdir());
    try {
      const entry = (await store.release(id, Date.now(), 3000))!;
      await A().keyd.stop();
      try {
        // the releaser sends, the gateway takes the mark, then cannot re-encrypt: 4xx; the releaser dies before holding it again
        await expect(reinject(entry, RELEASE_HEADER, via(), releaseMarker(entry))).rejects.toThrow(/cannot re-inject .*: 4\d\d /);
      } finally {
        await A().restartKeyd();
      }
      expect(store.get(id)?.state).toBe('released'); // taken: before this change it stayed so for good, the message lost
      await waitFor(() => releaseInterrupted(store.get(id)!), 15000);
      const again = await releaseCli(id);
      expect(again).toEqual({ code: 0, text: expect.stringMatching(new RegExp(`^released ${id}: 250 `)) as string });
      expect(store.get(id)).toBeUndefined();
      await waitFor(() => B().mailbox.for('bob@b.example').length > before, 30000);
      await waitFor(() => !queuedForBob(), 30000);
      expect(B().mailbox.for('bob@b.example').length).toBe(before + 1);
      expect(await copiesOf('the gateway failed after the mark')).toBe(1);
    } finally {
      await store.close();
    }
  });

  test('the gateway took it (250), the releaser died before removing it: once the lease ended a new release is answered "already delivered", nothing sent twice', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    const id = heldAs(await aliceSends('top secret: the releaser died after the 250\r\n'));
    const store = new QuarantineStore(qdir());
    try {
      const entry = (await store.release(id, Date.now(), 3000))!;
      // the releaser gets the 250, and dies before it removes the entry
      expect((await reinject(entry, RELEASE_HEADER, via(), releaseMarker(entry))).reply).toMatch(/^250 /);
      expect(store.get(id)?.state).toBe('released');
      await waitFor(() => B().mailbox.for('bob@b.example').length > before, 30000);
      await waitFor(() => !queuedForBob(), 30000);
      await waitFor(() => releaseInterrupted(store.get(id)!), 15000);
      const again = await releaseCli(id);
      expect(again.code).toBe(0);
      expect(again.text).toMatch(
        new RegExp(`^released ${id}: 250 .*Already delivered \\(an earlier attempt of this message handed every copy over`),
      );
      expect(store.get(id)).toBeUndefined();
      expect(queuedForBob()).toBe(false); // nothing queued for bob again
      expect(B().mailbox.for('bob@b.example').length).toBe(before + 1);
      expect(await copiesOf('the releaser died after the 250')).toBe(1);
    } finally {
      await store.close();
    }
  });
});

describe('ClamAV at the receiving organisation, on encrypted mail', () => {
  let sealedFor: (body: string, filename?: string) => Promise<Buffer>;
  let close: () => Promise<void>;
  beforeAll(() => {
    const ini = parse(readFileSync(join(A().harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    const gwA = setupGateway(ini, A().harakaDir, () => undefined, 'ssmax-state-inspect-test');
    close = () => gwA.close();
    sealedFor = async (body, filename) => {
      const content = filename
        ? msg(
            'dave@a.example',
            `--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="${filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from(body).toString('base64')}\r\n--b--\r\n`,
            'Content-Type: multipart/mixed; boundary="b"',
          )
        : msg('dave@a.example', body);
      return (await submit(gwA.deps, content, ['bob@b.example'])).copies[0]!.message;
    };
  });
  afterAll(async () => {
    await close?.();
  });
  const toB = (m: Buffer) => smtp(B().ports.smtp, 'dave@a.example', ['bob@b.example'], m);

  test('EICAR in a base64 attachment of an encrypted message is caught by the real clamd: 550, nothing delivered', async () => {
    const before = B().mailbox.mails.length;
    expect(await toB(await sealedFor(EICAR, 'eicar.txt'))).toMatch(
      /^550 5\.7\.1 Message refused: malware found: rule "av:Eicar-Test-Signature\.UNOFFICIAL"/,
    );
    expect(B().mailbox.mails.length).toBe(before);
  });

  test('clamd killed: 4xx, nothing delivered; after its restart the retried message is delivered once', async () => {
    const copy = await sealedFor('a harmless attachment', 'notes.txt');
    await clamd.stop('SIGKILL');
    const before = B().mailbox.for('bob@b.example').length;
    expect(await toB(copy)).toMatch(/^45\d 4\.7\.5 Inspection unavailable: clamd unreachable/);
    expect(B().mailbox.for('bob@b.example').length).toBe(before);
    clamd = await startClamd(clamdDir, clamdPort);
    expect(await toB(copy)).toMatch(/^250 /);
    expect(await toB(copy)).toMatch(/^250 /); // a second retry of the same message: delivered once all the same
    expect(B().mailbox.for('bob@b.example').length).toBe(before + 1);
  });
});

describe('individuals and consent, with inline inspection', () => {
  let sealed: (message: Buffer, rcpts: string[]) => Promise<Buffer>;
  let close: () => Promise<void>;
  beforeAll(() => {
    const ini = parse(readFileSync(join(A().harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    const gwA = setupGateway(ini, A().harakaDir, () => undefined, 'ssmax-state-consent-test');
    close = () => gwA.close();
    sealed = async (message, rcpts) => (await submit(gwA.deps, message, rcpts)).copies[0]!.message;
  });
  afterAll(async () => {
    await close?.();
  });
  consentCases(
    () => net,
    () => sealed,
  );
});
