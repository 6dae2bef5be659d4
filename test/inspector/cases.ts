/**
 * Shared pieces of the real-process inspection tests (inline in
 * test/gateway/inspection.test.ts, remote in test/inspector/remote.test.ts):
 * messages, a sealed arrival built by an in-process copy of a.example's
 * gateway, and the individuals-and-consent cases (SSMAX §3.5).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'ini';
import type { Network, UserSpec } from '../../src/demo/network';
import { setupGateway } from '../../src/gateway/setup';
import { submit } from '../../src/gateway/submission';
import { EICAR } from '../../src/inspect/clamd-process';
import { openMessage } from '../../src/user/open';
import { loadUserProfile } from '../../src/user/profile';
import { smtp, waitFor } from '../gateway/network-fixture';

/** Individuals at a.example (plain clients: senders) and b.example (SSMAX clients: recipients). */
export const INDIVIDUALS: Record<string, UserSpec[]> = {
  'a.example': [
    { address: 'ivan@a.example', client: 'plain', password: 'pw-ivan', kind: 'individual', consent: false },
    { address: 'judy@a.example', client: 'plain', password: 'pw-judy', kind: 'individual', consent: true },
  ],
  'b.example': [
    { address: 'kim@b.example', client: 'ssmax', password: 'pw-kim', kind: 'individual', consent: false },
    { address: 'lee@b.example', client: 'ssmax', password: 'pw-lee', kind: 'individual', consent: true },
  ],
};

let n = 0;
export function mail(from: string, to: string, body: Buffer | string, headers = 'Content-Type: text/plain; charset=utf-8'): Buffer {
  n++;
  return Buffer.concat([
    Buffer.from(
      `From: ${from}\r\nTo: ${to}\r\nSubject: inspect ${n}\r\nMessage-ID: <i-${n}-${Date.now().toString(36)}@a.example>\r\nDate: Wed, 25 Nov 2026 13:00:00 +0000\r\nMIME-Version: 1.0\r\n${headers}\r\n\r\n`,
    ),
    Buffer.isBuffer(body) ? body : Buffer.from(body),
  ]);
}

export function withAttachment(from: string, to: string, content: string, filename: string): Buffer {
  return mail(
    from,
    to,
    `--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="${filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from(content).toString('base64')}\r\n--b--\r\n`,
    'Content-Type: multipart/mixed; boundary="b"',
  );
}

/**
 * Builds sealed copies for b.example exactly as a.example's gateway makes them (an in-process
 * gateway from a.example's own ssmax.ini, so whatever inspection a.example runs, it runs here too),
 * to hand to b.example's gateway as a peer MTA would.
 */
export function arrivals(
  net: Network,
  stateName: string,
): { sealed(message: Buffer, rcpts: string[]): Promise<Buffer>; close(): Promise<void> } {
  const A = net.org('a.example');
  const ini = parse(readFileSync(join(A.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
  const gw = setupGateway(ini, A.harakaDir, () => undefined, stateName);
  return {
    async sealed(message, rcpts) {
      const r = await submit(gw.deps, message, rcpts);
      if (r.copies.length !== 1) throw new Error(`expected one copy, got ${r.copies.length}`);
      return r.copies[0]!.message;
    },
    close: () => gw.close(),
  };
}

/** The verdicts of each hop of the newest copy in `address`'s mailbox (an SSMAX client). */
export async function lastVerdicts(net: Network, address: string): Promise<{ verdicts: string[]; plaintext: string }> {
  const org = net.org(address.split('@')[1]!);
  const opened = await openMessage(loadUserProfile(org.profiles[address]!), org.mailbox.for(address).at(-1)!.raw, { now: new Date() });
  return { verdicts: opened.hops.map((h) => h.verdicts), plaintext: opened.plaintext.toString() };
}

/** The individuals-and-consent cases, through real gateways: `arrival` seals a message at a.example for b.example. */
export function consentCases(net: () => Network, arrival: () => (message: Buffer, rcpts: string[]) => Promise<Buffer>): void {
  const A = () => net().org('a.example');
  const B = () => net().org('b.example');
  const card = 'Please charge 4111 1111 1111 1111 for the order.\r\n';

  test('an individual without consent sends a card number: delivered, not inspected, the seal says dlp=no-consent', async () => {
    const before = B().mailbox.for('bob@b.example').length;
    expect(
      await smtp(A().ports.smtp, 'ivan@a.example', ['bob@b.example'], mail('ivan@a.example', 'bob@b.example', card), {
        user: 'ivan@a.example',
        pass: 'pw-ivan',
      }),
    ).toMatch(/^250 /);
    await waitFor(() => B().mailbox.for('bob@b.example').length > before);
    const got = await lastVerdicts(net(), 'bob@b.example');
    expect(got.plaintext).toContain('4111 1111 1111 1111');
    expect(got.verdicts).toEqual(['dlp:no-consent,e2e:none', 'av:pass,e2e:pass']);
  });

  test('an individual with consent sends a card number: rejected naming the rule', async () => {
    const before = B().mailbox.mails.length;
    const r = await smtp(A().ports.smtp, 'judy@a.example', ['bob@b.example'], mail('judy@a.example', 'bob@b.example', card), {
      user: 'judy@a.example',
      pass: 'pw-judy',
    });
    expect(r).toMatch(/^550 5\.7\.1 Message refused by a data-loss prevention rule: rule "payment-cards"/);
    expect(r).not.toMatch(/4111/);
    await new Promise((res) => setTimeout(res, 500));
    expect(B().mailbox.mails.length).toBe(before);
  });

  test('EICAR to an individual recipient without consent: delivered, not scanned, the seal says av=no-consent', async () => {
    const before = B().mailbox.for('kim@b.example').length;
    const copy = await arrival()(withAttachment('dave@a.example', 'kim@b.example', EICAR, 'eicar.txt'), ['kim@b.example']);
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['kim@b.example'], copy)).toMatch(/^250 /);
    expect(B().mailbox.for('kim@b.example').length).toBe(before + 1);
    const got = await lastVerdicts(net(), 'kim@b.example');
    expect(got.verdicts).toEqual(['dlp:pass,e2e:none', 'av:no-consent,e2e:pass']);
    expect(got.plaintext).toContain(Buffer.from(EICAR).toString('base64').slice(0, 40));
  });

  test('EICAR to an individual recipient with consent: caught by the real clamd, 550, nothing delivered', async () => {
    const before = B().mailbox.mails.length;
    const copy = await arrival()(withAttachment('dave@a.example', 'lee@b.example', EICAR, 'eicar.txt'), ['lee@b.example']);
    expect(await smtp(B().ports.smtp, 'dave@a.example', ['lee@b.example'], copy)).toMatch(
      /^550 5\.7\.1 Message refused: malware found: rule "av:Eicar-Test-Signature\.UNOFFICIAL"/,
    );
    expect(B().mailbox.mails.length).toBe(before);
  });
}
