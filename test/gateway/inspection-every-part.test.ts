/**
 * Issue 17 through real processes: two gateways (Haraka), keyd over mutual
 * TLS, a real clamd with the generated signature database.
 *  - ClamAV on every arrival at b.example: plain Internet mail from a domain
 *    without SSMAX, sealed-but-unencrypted mail, encrypted mail (after the
 *    blinded decryption) — EICAR in each, in quoted-printable text, in an
 *    attached message, inside a zip archive: refused at arrival; the near
 *    misses delivered, the seal or the Authentication-Results line saying
 *    what was inspected.
 *  - DLP on every submission at a.example, both client modes: a card number
 *    split by HTML tags (beside a harmless text part), in an xlsx cell, in a
 *    docx paragraph, in a PDF (read by pdf.js in the gateway): refused; the
 *    near misses delivered.
 *  - No plaintext on disk: inotify watches on /tmp, the gateway's folder and
 *    clamd's folder while b.example decrypts and scans a marked message.
 */
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { main } from '../../src/cli/main';
import { freePort } from '../../src/demo/haraka';
import type { Network } from '../../src/demo/network';
import { addSeal } from '../../src/gateway/sealing';
import { type LocalInspector, encryptToOrg } from '../../src/inspect/engine';
import { type Gateway, setupGateway } from '../../src/gateway/setup';
import { receive } from '../../src/gateway/reception';
import type { GatewayDeps } from '../../src/gateway/deps';
import { QuarantineStore, RELEASE_HEADER, releaseMarker } from '../../src/inspect/quarantine';
import { verifyUnsealed } from '../../src/chain/verify-chain';
import { type ClamdProcess, EICAR, TEST_MARKER, startClamd } from '../../src/inspect/clamd-process';
import { openMessage } from '../../src/user/open';
import { loadUserProfile } from '../../src/user/profile';
import { signAndEncrypt } from '../../src/user/sign-encrypt';
import { submitMessage } from '../../src/user/submit';
import { docx, pdf, xlsx, zip } from '../support/documents';
import { watchDuring } from '../support/watch-dirs';
import { arrivals } from '../inspector/cases';
import { ORGS, filesUnder, network, rawSmtp, smtp, waitFor } from './network-fixture';

jest.setTimeout(240000);

let net: Network;
let clamd: ClamdProcess;
let clamdDir: string;
const startWarnings: string[] = [];
/** What starting b.example's Haraka with antivirus on and clamd's settings unknown (no opt-in) said. */
let refusedStart = '';
let A: ReturnType<Network['org']>;
let B: ReturnType<Network['org']>;
let fromA: ReturnType<typeof arrivals>;
let sealOnly: (message: Buffer) => Promise<Buffer>;
let closeSealer: () => Promise<void>;
let encryptToB: (message: Buffer) => Promise<Buffer>;
let closeB: () => Promise<void>;

beforeAll(async () => {
  net = await network(ORGS);
  A = net.org('a.example');
  B = net.org('b.example');
  clamdDir = mkdtempSync(join(tmpdir(), 'ssmax-gw17-clamd-'));
  clamd = await startClamd(clamdDir, await freePort());
  writeFileSync(join(A.harakaDir, 'config', 'ssmax-inspect.ini'), '[dlp]\nenabled=true\n');
  writeFileSync(join(A.harakaDir, 'config', 'ssmax-dlp.ini'), readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8'));
  // b.example first without clamd_config, opted into allow_plaintext_on_disk (without it, a config error at start:
  // test/inspect/config.test.ts): the start check says the settings are unknown, accepted
  const avIni = `[av]\nenabled=true\nclamd=127.0.0.1:${clamd.port}\ntimeout_ms=5000\n`;
  writeFileSync(join(B.harakaDir, 'config', 'ssmax-inspect.ini'), `${avIni}allow_plaintext_on_disk=true\n`);
  const iniB = parse(readFileSync(join(B.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
  await setupGateway(iniB, B.harakaDir, (l) => startWarnings.push(l), 'ssmax-state-17-check').close();
  // neither clamd_config nor the opt-in: the real Haraka does not start (one CRIT line naming the setting)
  writeFileSync(join(B.harakaDir, 'config', 'ssmax-inspect.ini'), avIni);
  refusedStart = await B.restartHaraka().then(
    () => 'started',
    (err: Error) => err.message,
  );
  writeFileSync(join(B.harakaDir, 'config', 'ssmax-inspect.ini'), `${avIni}clamd_config=${clamd.conf}\n`);
  // Haraka itself renames arriving Authentication-Results fields unless told not to (connection.ini [headers]
  // clean_auth_results): off here, so that what the gateway drops of them is the gateway's own doing
  for (const org of [A, B]) {
    const file = join(org.harakaDir, 'config', 'connection.ini');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^;\s*clean_auth_results=true$/m, 'clean_auth_results=false'));
    expect(readFileSync(file, 'utf8')).toMatch(/^clean_auth_results=false$/m);
  }
  // a.example's own MTA at 127.0.0.2 (a trusted relay: no SMTP AUTH, so Haraka records no result of its own)
  appendFileSync(join(A.harakaDir, 'config', 'ssmax.ini'), '\n[main]\ntrusted_relays=127.0.0.2\n');
  await A.restartHaraka();
  await B.restartHaraka();
  fromA = arrivals(net, 'ssmax-state-17-arrivals');
  // a.example's sealer alone, for mail sealed but not encrypted (a sender whose policy allowed plaintext)
  const iniA = parse(readFileSync(join(A.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
  const gwA = setupGateway(iniA, A.harakaDir, () => undefined, 'ssmax-state-17-sealer');
  closeSealer = () => gwA.close();
  const gwB = setupGateway(iniB, B.harakaDir, () => undefined, 'ssmax-state-17-encrypt');
  closeB = () => gwB.close();
  encryptToB = (message) => encryptToOrg(gwB.deps.keyd, gwB.deps.group, message);
  sealOnly = async (message) =>
    addSeal(
      gwA.deps,
      message,
      { from: 'own', chain: await verifyUnsealed(message, {}), trackingToken: new Uint8Array(64).fill(7) },
      [{ name: 'e2e', result: 'none' }],
      ['carol@b.example'],
    ); // binds the one recipient the tests send to
});
afterAll(async () => {
  await fromA?.close();
  await closeSealer?.();
  await closeB?.();
  await clamd?.stop();
  await net?.stop();
});

let n = 0;
function mail(from: string, to: string, body: string, headers = 'Content-Type: text/plain; charset=utf-8'): Buffer {
  n++;
  return Buffer.from(
    `From: ${from}\r\nTo: ${to}\r\nSubject: every part ${n}\r\nMessage-ID: <e-${n}-${Date.now().toString(36)}@x.example>\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMIME-Version: 1.0\r\n${headers}\r\n\r\n${body}`,
  );
}
function attached(
  from: string,
  to: string,
  filename: string,
  contentType: string,
  content: Buffer | string,
  text = 'see attached',
): Buffer {
  const b64 = Buffer.from(content).toString('base64').replace(/.{76}/g, '$&\r\n');
  return mail(
    from,
    to,
    `--b\r\nContent-Type: text/plain\r\n\r\n${text}\r\n--b\r\nContent-Type: ${contentType}; name="${filename}"\r\nContent-Disposition: attachment; filename="${filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n--b--\r\n`,
    'Content-Type: multipart/mixed; boundary="b"',
  );
}
/** EICAR as quoted-printable text: some characters =XX-encoded, a soft line break inside, none after. */
const EICAR_QP = `${EICAR.slice(0, 30).replace(/\$/g, '=24').replace(/\[/g, '=5B')}=\r\n${EICAR.slice(30).replace(/\$/g, '=24').replace(/\+/g, '=2B')}=\r\n`;
function nested(from: string, to: string, inner: Buffer): Buffer {
  return mail(
    from,
    to,
    `--n\r\nContent-Type: text/plain\r\n\r\nforwarded below\r\n--n\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="fwd.eml"\r\n\r\n${inner.toString('latin1')}\r\n--n--\r\n`,
    'Content-Type: multipart/mixed; boundary="n"',
  );
}

const MALWARE = /^550 5\.7\.1 Message refused: malware found: rule "av:Eicar-Test-Signature\.UNOFFICIAL"/;
const toB = (from: string, m: Buffer, rcpt = 'carol@b.example') => smtp(B.ports.smtp, from, [rcpt], m);
const count = () => B.mailbox.mails.length;

describe('ClamAV on every arrival at b.example', () => {
  test('plain Internet mail (a domain without SSMAX): EICAR refused; clean mail delivered as it is, the Authentication-Results line saying av=pass', async () => {
    const before = count();
    expect(
      await toB(
        'mallory@outside.example',
        attached('mallory@outside.example', 'carol@b.example', 'invoice.com', 'application/octet-stream', EICAR),
      ),
    ).toMatch(MALWARE);
    expect(count()).toBe(before);
    const clean = attached('olivia@outside.example', 'carol@b.example', 'notes.txt', 'text/plain', 'harmless notes');
    expect(await toB('olivia@outside.example', clean)).toMatch(/^250 /);
    await waitFor(() => count() > before);
    const got = B.mailbox.for('carol@b.example').at(-1)!.raw.toString('latin1');
    expect(got).toMatch(/^Authentication-Results: b\.example; ssmax-chain=none; ssmax-av=pass\r\n/);
    expect(got.endsWith(clean.toString('latin1'))).toBe(true);
  });

  test("sealed but not encrypted: EICAR refused; clean mail delivered with av=pass in b.example's seal", async () => {
    const before = count();
    expect(
      await toB(
        'dave@a.example',
        await sealOnly(attached('dave@a.example', 'carol@b.example', 'x.com', 'application/octet-stream', EICAR)),
      ),
    ).toMatch(MALWARE);
    expect(count()).toBe(before);
    expect(await toB('dave@a.example', await sealOnly(mail('dave@a.example', 'carol@b.example', 'clean and sealed\r\n')))).toMatch(/^250 /);
    await waitFor(() => count() > before);
    expect(B.mailbox.for('carol@b.example').at(-1)!.raw.toString('latin1')).toMatch(
      /SSMAX-Seal: v=1; i=2; d=b\.example;[\s\S]*vd=av:pass,e2e:none/,
    );
  });

  test('encrypted (after blinded decryption): EICAR in quoted-printable text, in an attached message, inside a zip archive (and a zip in a zip) — each refused', async () => {
    const before = count();
    const qp = mail(
      'dave@a.example',
      'bob@b.example',
      EICAR_QP,
      'Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable',
    );
    expect(qp.includes(Buffer.from(EICAR))).toBe(false); // not in the clear in the raw message
    expect(await toB('dave@a.example', await fromA.sealed(qp, ['bob@b.example']), 'bob@b.example')).toMatch(MALWARE);
    const inner = attached('x@outside.example', 'dave@a.example', 'e.com', 'application/octet-stream', EICAR);
    expect(
      await toB('dave@a.example', await fromA.sealed(nested('dave@a.example', 'bob@b.example', inner), ['bob@b.example']), 'bob@b.example'),
    ).toMatch(MALWARE);
    expect(
      await toB(
        'dave@a.example',
        await fromA.sealed(
          attached('dave@a.example', 'bob@b.example', 'files.zip', 'application/zip', zip({ 'readme.txt': 'hi', 'tool.com': EICAR })),
          ['bob@b.example'],
        ),
        'bob@b.example',
      ),
    ).toMatch(MALWARE);
    expect(
      await toB(
        'dave@a.example',
        await fromA.sealed(
          attached('dave@a.example', 'bob@b.example', 'files.zip', 'application/zip', zip({ 'inner.zip': zip({ 'tool.com': EICAR }) })),
          ['bob@b.example'],
        ),
        'bob@b.example',
      ),
    ).toMatch(MALWARE);
    // the same plain Internet forms: QP and zip
    expect(
      await toB(
        'mallory@outside.example',
        mail(
          'mallory@outside.example',
          'carol@b.example',
          EICAR_QP,
          'Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable',
        ),
      ),
    ).toMatch(MALWARE);
    expect(
      await toB(
        'mallory@outside.example',
        attached('mallory@outside.example', 'carol@b.example', 'a.zip', 'application/zip', zip({ 'b.com': EICAR })),
      ),
    ).toMatch(MALWARE);
    expect(count()).toBe(before);
  });

  test('near misses are delivered: the EICAR text with one character changed, a clean zip, a clean attached message; the seal says av=pass', async () => {
    const before = count();
    const almost = EICAR.replace('EICAR', 'EICAS');
    const sent = [
      await fromA.sealed(attached('dave@a.example', 'bob@b.example', 'x.com', 'application/octet-stream', almost), ['bob@b.example']),
      await fromA.sealed(attached('dave@a.example', 'bob@b.example', 'files.zip', 'application/zip', zip({ 'readme.txt': 'hi' })), [
        'bob@b.example',
      ]),
      await fromA.sealed(nested('dave@a.example', 'bob@b.example', mail('x@outside.example', 'dave@a.example', 'just text\r\n')), [
        'bob@b.example',
      ]),
    ];
    for (const m of sent) expect(await toB('dave@a.example', m, 'bob@b.example')).toMatch(/^250 /);
    await waitFor(() => count() >= before + 3);
    const opened = await openMessage(loadUserProfile(B.profiles['bob@b.example']!), B.mailbox.for('bob@b.example').at(-1)!.raw, {
      now: new Date(),
    });
    expect(opened.hops.map((h) => h.verdicts)).toEqual(['dlp:pass,e2e:none', 'av:pass,e2e:pass']);
    // a plain-client recipient of an encrypted arrival reads it in the Authentication-Results line
    const forCarol = await fromA.sealed(attached('dave@a.example', 'carol@b.example', 'notes.txt', 'text/plain', 'fine'), [
      'carol@b.example',
    ]);
    expect(await toB('dave@a.example', forCarol)).toMatch(/^250 /);
    await waitFor(() => count() >= before + 4);
    expect(B.mailbox.for('carol@b.example').at(-1)!.raw.toString('latin1')).toMatch(
      /^Authentication-Results: b\.example; ssmax-chain=pass \(1 seal\(s\) verified\); ssmax-mode=transparent; ssmax-av=pass\r\n/,
    );
  });

  test("no plaintext on disk: while b.example decrypts and scans a marked message, nothing appears in /tmp, the gateway's folder or clamd's", async () => {
    const marked = await fromA.sealed(attached('dave@a.example', 'bob@b.example', 'm.txt', 'text/plain', `before ${TEST_MARKER} after`), [
      'bob@b.example',
    ]);
    expect(marked.includes(Buffer.from(TEST_MARKER))).toBe(false); // encrypted on the wire
    const watched = [
      { dir: tmpdir(), recursive: false },
      { dir: B.harakaDir, recursive: true },
      { dir: clamdDir, recursive: true },
      { dir: clamd.tempDir, recursive: true },
    ];
    const { result, seen } = await watchDuring(watched, Buffer.from(TEST_MARKER), () => toB('dave@a.example', marked, 'bob@b.example'));
    expect(result).toMatch(/^550 5\.7\.1 Message refused: malware found: rule "av:Ssmax\.Test\.Marker\.UNOFFICIAL"/);
    expect(seen.withMarker.filter((p) => !p.startsWith(clamd.tempDir))).toEqual([]);
    expect(seen.entries.filter((p) => p.startsWith(`${tmpdir()}/clamav-`))).toEqual([]);
    expect(seen.entries.filter((p) => p.startsWith(`${clamdDir}/`) && p !== join(clamdDir, 'clamd.log'))).toEqual([]);
    expect(seen.entries.some((p) => p.startsWith(clamd.tempDir))).toBe(true); // clamd did use temporary files: in memory
    expect(B.haraka.logs()).not.toContain(TEST_MARKER);
  });

  test('the start check: without clamd_config and without the opt-in, the gateway does not start; the config error names the setting', () => {
    expect(refusedStart).toMatch(/^Haraka exited 1/);
    const crit = refusedStart.split('\n').filter((l) => l.includes('[CRIT]'));
    expect(crit).toHaveLength(1);
    expect(crit[0]).toMatch(
      /ssmax: cannot start: ssmax-inspect\.ini \[av\] clamd_config: clamd settings unknown: \[av\] clamd_config is not set.*allow_plaintext_on_disk=true/,
    );
  });

  test("the start check: without clamd_config, opted in, the gateway warns that clamd's settings are unknown; with it, no warning", () => {
    expect(startWarnings.join('\n')).toMatch(/WARNING: clamd settings unknown: .*\(accepted: \[av\] allow_plaintext_on_disk=true\)/);
    expect(B.haraka.logs()).not.toMatch(/WARNING: clamd/);
  });
});

describe('DLP on every submission at a.example, both client modes', () => {
  const dave = { user: 'dave@a.example', pass: 'pw-dave' };
  const CAUGHT = /^550 5\.7\.1 Message refused by a data-loss prevention rule: rule "payment-cards"/;
  const fromDave = (m: Buffer) => smtp(A.ports.smtp, 'dave@a.example', ['bob@b.example'], m, dave);
  async function fromAlice(m: Buffer): Promise<string> {
    const alice = loadUserProfile(A.profiles['alice@a.example']!);
    try {
      return (await submitMessage(alice, await signAndEncrypt(alice, m, { now: new Date() }), { to: ['bob@b.example'] })).response;
    } catch (err) {
      return (err as Error).message;
    }
  }
  const alternative = (from: string, html: string) =>
    mail(
      from,
      'bob@b.example',
      `--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease see the formatted version.\r\n--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n--a--\r\n`,
      'Content-Type: multipart/alternative; boundary="a"',
    );
  const WORD = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
  const EXCEL = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

  test('a plaintext submission to a local user says what DLP found in its Authentication-Results line', async () => {
    const before = A.mailbox.for('dave@a.example').length;
    const m = mail('dave@a.example', 'dave@a.example', 'note to self\r\n');
    expect(await smtp(A.ports.smtp, 'dave@a.example', ['dave@a.example'], m, dave)).toMatch(/^250 /);
    await waitFor(() => A.mailbox.for('dave@a.example').length > before);
    const got = A.mailbox.for('dave@a.example').at(-1)!.raw.toString('latin1');
    expect(got).toMatch(/^Authentication-Results: a\.example; ssmax-chain=none; ssmax-dlp=pass\r\n/);
    expect(got.endsWith(m.toString('latin1'))).toBe(true);
  });

  test('a card number split by HTML tags, beside a harmless text part: refused (plain client and SSMAX client)', async () => {
    const html = '<p>Card: <span>41111111</span><span>11111111</span></p>';
    expect(await fromDave(alternative('dave@a.example', html))).toMatch(CAUGHT);
    expect(await fromAlice(alternative('alice@a.example', html))).toMatch(
      /550 5\.7\.1 Message refused by a data-loss prevention rule: rule "payment-cards"/,
    );
  });

  test('in an xlsx cell, in a docx paragraph, in a PDF: refused', async () => {
    expect(
      await fromDave(
        attached(
          'dave@a.example',
          'bob@b.example',
          'cards.xlsx',
          EXCEL,
          xlsx([
            ['name', 'card'],
            ['Alice', '4111 1111 1111 1111'],
          ]),
        ),
      ),
    ).toMatch(CAUGHT);
    expect(
      await fromDave(
        attached(
          'dave@a.example',
          'bob@b.example',
          'order.docx',
          WORD,
          docx([['Dear team,'], ['please charge ', '4111 1111', ' 1111 1111', ' today']]),
        ),
      ),
    ).toMatch(CAUGHT);
    expect(
      await fromDave(
        attached(
          'dave@a.example',
          'bob@b.example',
          'order.pdf',
          'application/pdf',
          pdf(['Order 1207', 'Card 4111 1111 1111 1111', 'Thank you']),
        ),
      ),
    ).toMatch(CAUGHT);
    expect(
      await fromAlice(attached('alice@a.example', 'bob@b.example', 'order.pdf', 'application/pdf', pdf(['Card 5500 0000 0000 0004']))),
    ).toMatch(/rule "payment-cards"/);
  });

  test('near misses delivered: a check digit wrong in HTML, cells that only side by side look like a number, an invoice number in a docx, a PDF with a phone number', async () => {
    const before = B.mailbox.for('bob@b.example').length;
    const replies = [
      await fromDave(alternative('dave@a.example', '<p>Card: <span>41111111</span><span>11111112</span></p>')),
      await fromDave(
        attached(
          'dave@a.example',
          'bob@b.example',
          'parts.xlsx',
          EXCEL,
          xlsx([
            ['4111 1111', '1111 1111'],
            ['total', 12.5],
          ]),
        ),
      ),
      await fromDave(
        attached('dave@a.example', 'bob@b.example', 'invoice.docx', WORD, docx([['Invoice INV-2026-000123'], ['Call 090-1234-5678']])),
      ),
      await fromAlice(
        attached(
          'alice@a.example',
          'bob@b.example',
          'contact.pdf',
          'application/pdf',
          pdf(['Call +81 3 1234 5678', 'Ref 4111 1111 1111 1112']),
        ),
      ),
    ];
    for (const r of replies) expect(r).toMatch(/^250 (?!Held)/); // delivered, not held as unreadable
    await waitFor(() => B.mailbox.for('bob@b.example').length >= before + 4);
  });
});

describe('a plaintext arrival held by ClamAV ([av] on_infected=quarantine) is kept encrypted and can be released', () => {
  const qdir = () => join(B.harakaDir, 'ssmax-state', 'quarantine');
  /** b.example's keyd decryptions so far, whatever their result (its /metrics, ssmax_keyd_operations_total). */
  const decryptions = async (): Promise<number> => {
    const r = await fetch(`http://127.0.0.1:${B.ports.ops.keyd}/metrics`);
    const text = await r.text();
    return [...text.matchAll(/^ssmax_keyd_operations_total\{[^}]*op="decrypt"[^}]*\} (\S+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  };
  beforeAll(async () => {
    writeFileSync(
      join(B.harakaDir, 'config', 'ssmax-inspect.ini'),
      `[av]\nenabled=true\nclamd=127.0.0.1:${clamd.port}\ntimeout_ms=5000\non_infected=quarantine\nclamd_config=${clamd.conf}\n`,
    );
    await B.restartHaraka();
  });

  test('held (encrypted, nothing delivered), released by the operator and delivered once with ssmax-av=none; a forged release marker is refused', async () => {
    const before = count();
    const m = attached('mallory@outside.example', 'carol@b.example', 'tool.com', 'application/octet-stream', EICAR);
    const reply = await toB('mallory@outside.example', m);
    const id = /Held for review \(quarantine (q-[0-9a-z-]+)\)/.exec(reply)?.[1];
    expect(id).toBeDefined();
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    expect(await main(['quarantine', 'show', id!, '--state', qdir()], io)).toBe(0);
    expect(out.join('\n')).toMatch(/"direction": "inbound"[\s\S]*"rule": "av:Eicar-Test-Signature\.UNOFFICIAL"/);
    expect(filesUnder(qdir()).some((f) => f.bytes.includes(Buffer.from('EICAR-STANDARD')))).toBe(false); // kept encrypted
    await new Promise((r) => setTimeout(r, 500));
    expect(count()).toBe(before);
    // a forged marker on a message encrypted to b.example (anyone can make one), with the real id and a made-up token or none:
    // refused, never let through nor held again (a late copy of a release taken over after its lease looks the same)
    const decryptedBefore = await decryptions();
    for (const value of [`${id!} ${'0'.repeat(24)}`, id!, 'q-forged-000000000000']) {
      const forged = Buffer.concat([
        Buffer.from(`SSMAX-Quarantine-Release: ${value}\r\n`),
        await encryptToB(attached('mallory@outside.example', 'carol@b.example', 'x.com', 'application/octet-stream', EICAR)),
      ]);
      expect(await toB('mallory@outside.example', forged)).toMatch(/^550 5\.7\.1 Release field not honoured/);
    }
    expect(count()).toBe(before);
    expect(await decryptions()).toBe(decryptedBefore); // refused before any key operation: keyd was not asked to decrypt
    expect(await main(['quarantine', 'release', id!, '--state', qdir(), '--smtp', `127.0.0.1:${B.ports.smtp}`], io)).toBe(0);
    await waitFor(() => count() > before);
    await new Promise((r) => setTimeout(r, 500));
    expect(count()).toBe(before + 1);
    const got = B.mailbox.for('carol@b.example').at(-1)!.raw.toString('latin1');
    expect(got).toMatch(/^Authentication-Results: b\.example; ssmax-chain=none; ssmax-av=none\r\n/);
    expect(got.endsWith(m.toString('latin1'))).toBe(true);
    expect(await decryptions()).toBeGreaterThan(decryptedBefore); // the real release is opened through keyd
  });
});

describe('Authentication-Results in our name that we did not write are dropped on every path (RFC 8601 §5)', () => {
  /** Result fields a sender writes in `domain`'s name (its server name, a quoted or full-width spelling, ARC), and one of another. */
  const forged = (domain: string) =>
    Buffer.from(
      [
        `Authentication-Results: ${domain}; ssmax-chain=pass; ssmax-mode=transparent`,
        `Authentication-Results: (checked) "${domain.toUpperCase()}"; ssmax-av=pass; ssmax-dlp=pass`,
        `Authentication-Results: mx.${domain}; spf=pass`,
        `Authentication-Results: ${domain.replace(/^./, (c) => String.fromCodePoint(0xff41 + c.charCodeAt(0) - 0x61))}; dkim=pass`,
        `ARC-Authentication-Results: i=1; ${domain}; ssmax-chain=pass`,
        'Authentication-Results: other.example; spf=pass',
        '',
      ].join('\r\n'),
      'utf8',
    );
  /** The delivered copy's result fields (name and authserv-id onwards, unfolded), in order. */
  const results = (copy: Buffer) =>
    copy
      .toString('utf8')
      .slice(0, copy.indexOf('\r\n\r\n'))
      .split(/\r\n(?![ \t])/)
      .filter((f) => /^(arc-)?authentication-results\s*:/i.test(f));

  test("plain Internet mail arriving at b.example: delivered without them, under b.example's own line", async () => {
    const before = count();
    const m = Buffer.concat([forged('b.example'), mail('olivia@outside.example', 'carol@b.example', 'forged results, plain\r\n')]);
    expect(await toB('olivia@outside.example', m)).toMatch(/^250 /);
    await waitFor(() => count() > before);
    expect(results(B.mailbox.for('carol@b.example').at(-1)!.raw)).toEqual([
      'Authentication-Results: b.example; ssmax-chain=none; ssmax-av=pass',
      'Authentication-Results: other.example; spf=pass',
    ]);
  });

  test("sealed but not encrypted, arriving at b.example: delivered without them, under b.example's seal", async () => {
    const before = count();
    const m = Buffer.concat([forged('b.example'), mail('dave@a.example', 'carol@b.example', 'forged results, sealed\r\n')]);
    expect(await toB('dave@a.example', await sealOnly(m))).toMatch(/^250 /);
    await waitFor(() => count() > before);
    const got = B.mailbox.for('carol@b.example').at(-1)!.raw;
    expect(got.toString('latin1')).toMatch(/SSMAX-Seal: v=1; i=2; d=b\.example;[\s\S]*vd=av:pass,e2e:none/);
    expect(results(got)).toEqual(['Authentication-Results: other.example; spf=pass']);
  });

  test("a plaintext submission at a.example to a local user, through its own MTA: delivered without them, under a.example's own line", async () => {
    const before = A.mailbox.for('dave@a.example').length;
    const m = Buffer.concat([forged('a.example'), mail('dave@a.example', 'dave@a.example', 'forged results, submitted\r\n')]);
    expect(await rawSmtp(A.ports.smtp, 'dave@a.example', ['dave@a.example'], m, undefined, '127.0.0.2')).toMatch(/^250 /);
    await waitFor(() => A.mailbox.for('dave@a.example').length > before);
    expect(results(A.mailbox.for('dave@a.example').at(-1)!.raw)).toEqual([
      'Authentication-Results: a.example; ssmax-chain=none; ssmax-dlp=pass',
      'Authentication-Results: other.example; spf=pass',
    ]);
  });
});

describe('a held sealed arrival released after [chain] max_seal_age_seconds is judged as when it was held', () => {
  // b.example's gateway in this process (its own ssmax.ini, keyd, clamd, quarantine), its clock moved past max_seal_age_seconds
  let gw: Gateway;
  let store: QuarantineStore;
  beforeAll(() => {
    writeFileSync(
      join(B.harakaDir, 'config', 'ssmax-inspect.ini'),
      `[av]\nenabled=true\nclamd=127.0.0.1:${clamd.port}\ntimeout_ms=5000\non_infected=quarantine\nclamd_config=${clamd.conf}\n`,
    );
    const iniB = parse(readFileSync(join(B.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    gw = setupGateway(iniB, B.harakaDir, () => undefined, 'ssmax-state-17-late');
    store = new QuarantineStore((gw.deps.inspection as LocalInspector).config.quarantineDir);
  });
  afterAll(async () => {
    await store?.close();
    await gw?.close();
  });
  /** The gateway, an hour past max_seal_age_seconds from now. */
  const later = (deps: GatewayDeps): GatewayDeps => ({
    ...deps,
    clock: () => new Date(Date.now() + deps.config.chain.maxSealAgeMs + 3_600_000),
  });

  test.each([
    ['an encrypted arrival, held as it came', 'bob@b.example', (m: Buffer) => fromA.sealed(m, ['bob@b.example'])],
    ['a sealed but unencrypted arrival, held encrypted to the organisation', 'carol@b.example', (m: Buffer) => sealOnly(m)],
  ])('%s: released a week later, it passes the seal checks and is delivered once', async (_what, rcpt, make) => {
    const m = () => attached('dave@a.example', rcpt, 'tool.com', 'application/octet-stream', EICAR);
    const held = await receive(gw.deps, await make(m()), [rcpt]);
    expect(held.quarantined).toMatch(/^q-/);
    const late = later(gw.deps);
    // the clock is moved: an arrival sealed now is too old for it
    await expect(receive(late, await make(m()), [rcpt])).rejects.toMatchObject({ reply: { code: 550, status: '5.4.7' } });
    const entry = (await store.release(held.quarantined!))!;
    const released = Buffer.concat([Buffer.from(`${RELEASE_HEADER}: ${releaseMarker(entry)}\r\n`), Buffer.from(entry.message)]);
    const r = await receive(late, released, entry.rcpts);
    expect(r.quarantined).toBeUndefined();
    expect(r.copies.map((c) => c.rcpts)).toEqual([[rcpt]]);
    expect(store.get(held.quarantined!)!.state).toBe('released'); // honoured, once
    // the same release again: refused, final (never delivered twice)
    await expect(receive(late, released, entry.rcpts)).rejects.toMatchObject({ reply: { code: 550 } });
  });

  test('a forged marker (an old made-up id, no release under way) does not move the time: too old, 550', async () => {
    const m = attached('dave@a.example', 'bob@b.example', 'notes.txt', 'text/plain', 'fine');
    const forged = Buffer.concat([
      Buffer.from(`${RELEASE_HEADER}: q-${(Date.now() - 1000).toString(36)}-000000000000 ${'0'.repeat(24)}\r\n`),
      await fromA.sealed(m, ['bob@b.example']),
    ]);
    await expect(receive(later(gw.deps), forged, ['bob@b.example'])).rejects.toMatchObject({ reply: { code: 550, status: '5.4.7' } });
  });
});
