/**
 * Inspection on decrypted messages: DLP with charsets decoded (ISO-2022-JP,
 * Shift_JIS), linear-time regexes; ClamAV through a real clamd with a
 * generated signature database, including clamd going away and coming back.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Encoding from 'encoding-japanese';
import { parse } from 'ini';
import { freePort } from '../../src/demo/haraka';
import { ClamdClient } from '../../src/inspect/clamd';
import { type ClamdProcess, EICAR, startClamd } from '../../src/inspect/clamd-process';
import { DlpConfigError, parseDlpRules } from '../../src/inspect/dlp';
import { inspectInbound, inspectOutbound } from '../../src/inspect/inspect';
import { clamdSettingsFindings } from '../../src/inspect/clamd-settings';
import { GatewayError } from '../../src/mail/replies';

jest.setTimeout(60000);

const rules = parseDlpRules(
  parse(`
[cards]
type=card
action=reject
[mynumber]
type=mynumber
action=reject
[secret]
type=keyword
words=極秘,top secret
action=quarantine
[project]
type=regex
pattern=PRJ-[0-9]{4}
action=tag
[executables]
type=attachment
extensions=.exe,.scr
action=reject
[huge]
type=size
max_bytes=100000
action=reject
`) as Record<string, Record<string, unknown>>,
);

function mail(
  body: Buffer | string,
  headers = 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit',
  extra = '',
): Buffer {
  return Buffer.concat([
    Buffer.from(`From: a@a.example\r\nTo: b@b.example\r\nSubject: test\r\nMIME-Version: 1.0\r\n${headers}\r\n${extra}\r\n`),
    Buffer.isBuffer(body) ? body : Buffer.from(body),
  ]);
}

function japanese(text: string, charset: 'JIS' | 'SJIS'): Buffer {
  return Buffer.from(Encoding.convert(Encoding.stringToCode(text), { to: charset, from: 'UNICODE' }));
}

describe('DLP outbound', () => {
  test('a card number is rejected naming the rule, not the number', async () => {
    const r = await inspectOutbound(mail('Please charge 4111 1111 1111 1111 today.\r\n'), { rules });
    expect(r).toEqual({ verdict: { name: 'dlp', result: 'fail' }, decision: { action: 'reject', rule: 'cards' } });
    expect(JSON.stringify(r)).not.toMatch(/4111/);
  });

  test('a My Number inside ISO-2022-JP text is rejected', async () => {
    const body = japanese('申請書の個人番号は１２３４５６７８９０１８です。\r\n', 'JIS');
    expect(body.includes(Buffer.from('1234'))).toBe(false); // not visible as ASCII digits in the raw bytes
    const r = await inspectOutbound(mail(body, 'Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit'), {
      rules,
    });
    expect(r.decision).toEqual({ action: 'reject', rule: 'mynumber' });
  });

  test('a keyword in Shift_JIS inside base64 is found (quarantine)', async () => {
    const body = japanese('この資料は極秘です。\r\n', 'SJIS').toString('base64');
    const r = await inspectOutbound(mail(body, 'Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: base64'), {
      rules,
    });
    expect(r.decision).toEqual({ action: 'quarantine', rule: 'secret' });
  });

  test('a regex rule tags; an executable attachment and an oversized one are rejected', async () => {
    expect((await inspectOutbound(mail('see PRJ-1234\r\n'), { rules })).decision).toEqual({ action: 'tag', rule: 'project' });
    const att = (name: string, size: number) =>
      mail(
        `--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.alloc(size, 1).toString('base64')}\r\n--b--\r\n`,
        'Content-Type: multipart/mixed; boundary="b"',
      );
    expect((await inspectOutbound(att('setup.exe', 10), { rules })).decision).toEqual({ action: 'reject', rule: 'executables' });
    expect((await inspectOutbound(att('data.bin', 200000), { rules })).decision).toEqual({ action: 'reject', rule: 'huge' });
  });

  test('a clean message passes with dlp=pass; an individual without consent is not inspected', async () => {
    expect(await inspectOutbound(mail('Lunch at noon?\r\n'), { rules })).toEqual({
      verdict: { name: 'dlp', result: 'pass' },
      decision: { action: 'pass' },
    });
    expect((await inspectOutbound(mail('4111 1111 1111 1111\r\n'), { rules }, false)).verdict).toEqual({
      name: 'dlp',
      result: 'no-consent',
    });
  });

  test('a regular expression and input built to backtrack catastrophically do not stall', async () => {
    const evil = parseDlpRules({ evil: { type: 'regex', pattern: '(a+)+$', action: 'tag' } });
    const t0 = performance.now();
    const r = await inspectOutbound(mail(`${'a'.repeat(100000)}!\r\n`), { rules: evil });
    expect(r.decision.action).toBe('pass');
    expect(performance.now() - t0).toBeLessThan(10000); // a backtracking engine would not finish in our lifetime
  });

  test('bad rules are refused naming the rule', () => {
    expect(() => parseDlpRules({ x: { type: 'regex', pattern: '(', action: 'reject' } })).toThrow(DlpConfigError);
    expect(() => parseDlpRules({ x: { type: 'nope' } })).toThrow(/type "nope"/);
    expect(() => parseDlpRules({ x: { type: 'card', action: 'drop' } })).toThrow(/action "drop"/);
  });
});

describe('ClamAV inbound, with a real clamd', () => {
  let clamd: ClamdProcess;
  let port: number;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ssmax-clamd-'));
    port = await freePort();
    clamd = await startClamd(dir, port);
  });
  afterAll(async () => {
    await clamd?.stop();
  });
  const av = () => ({
    client: new ClamdClient({ host: '127.0.0.1', port, timeoutMs: 5000 }),
    onInfected: 'reject' as const,
    onUnavailable: 'tempfail' as const,
  });
  const withAttachment = (content: string) =>
    mail(
      `--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="x.com"\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from(content).toString('base64')}\r\n--b--\r\n`,
      'Content-Type: multipart/mixed; boundary="b"',
    );

  test('EICAR in a base64 attachment is caught; a clean message passes with av=pass', async () => {
    expect(await inspectInbound(withAttachment(EICAR), av())).toEqual({
      verdict: { name: 'av', result: 'fail' },
      decision: { action: 'reject', rule: 'av:Eicar-Test-Signature.UNOFFICIAL' },
    });
    expect(await inspectInbound(withAttachment('harmless text'), av())).toEqual({
      verdict: { name: 'av', result: 'pass' },
      decision: { action: 'pass' },
    });
  });

  test('clamd killed: tempfail (or tag only when opted in); after restart scanning works again', async () => {
    await clamd.stop('SIGKILL');
    expect((await inspectInbound(withAttachment('x'), av())).decision).toEqual({
      action: 'tempfail',
      reason: expect.stringMatching(/clamd unreachable/),
    });
    expect(await inspectInbound(withAttachment('x'), { ...av(), onUnavailable: 'tag' })).toEqual({
      verdict: { name: 'av', result: 'temperror' },
      decision: { action: 'pass' },
    });
    clamd = await startClamd(dir, port);
    expect((await inspectInbound(withAttachment(EICAR), av())).verdict.result).toBe('fail');
  });
});

describe('a message longer than clamd scans in one stream (its StreamMaxLength)', () => {
  let clamd: ClamdProcess;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    clamd = await startClamd(mkdtempSync(join(tmpdir(), 'ssmax-clamd-small-')), port, { streamMaxLength: '1M' });
  });
  afterAll(async () => {
    await clamd?.stop();
  });
  const client = () => new ClamdClient({ host: '127.0.0.1', port, timeoutMs: 5000 });
  const big = (bytes: number) => mail('x'.repeat(bytes));

  test("clamd's refusal is told apart from a fault: too-large, not unavailable (4xx for days before)", async () => {
    // Just over the limit, so the whole message is usually in the kernel's buffers when clamd answers and closes;
    // when the close still comes first (EPIPE: the answer unread, docs/inspection.md) the client can only say
    // unavailable, so a few tries, and never any other answer.
    const codes: string[] = [];
    for (let i = 0; i < 5 && !codes.includes('too-large'); i++) {
      const err = await client()
        .scan(big(1024 * 1024 + 64 * 1024))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toMatchObject({ name: 'ClamdError' });
      codes.push((err as { code: string }).code);
    }
    expect(codes.filter((c) => c !== 'unavailable' && c !== 'too-large')).toEqual([]);
    expect(codes).toContain('too-large');
    expect(await client().scan(big(100 * 1024))).toEqual({ infected: false });
  });

  test('with clamd_config read, a longer message is refused for good (552 5.3.4) without being sent, also under the tag policy (the sender chooses the size)', async () => {
    const streamMaxBytes = clamdSettingsFindings(clamd.conf).streamMaxBytes;
    expect(streamMaxBytes).toBe(1024 * 1024);
    // clamd would close the connection part way through 20 MB, often before its answer can be read (EPIPE)
    let scans = 0;
    const counting = client();
    const scan = counting.scan.bind(counting);
    counting.scan = (data: Buffer) => (scans++, scan(data));
    const av = {
      client: counting,
      onInfected: 'reject' as const,
      onUnavailable: 'tempfail' as const,
      streamMaxBytes,
      clamdConfig: clamd.conf,
    };
    for (const policy of [av, { ...av, onUnavailable: 'tag' as const }]) {
      const err = await inspectInbound(big(20 * 1024 * 1024), policy).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).reply).toMatchObject({ code: 552, status: '5.3.4' });
      expect((err as GatewayError).reply.text).toMatch(
        /^Message too large for the antivirus scan: \d+ bytes are more than clamd scans in one stream \(its StreamMaxLength, 1048576 bytes\)$/,
      );
    }
    expect(scans).toBe(0);
    expect(await inspectInbound(big(100 * 1024), av)).toEqual({ verdict: { name: 'av', result: 'pass' }, decision: { action: 'pass' } });
    expect(scans).toBe(1);
  });
});
