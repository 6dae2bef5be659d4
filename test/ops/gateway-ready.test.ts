/**
 * The gateway's readiness reports the mailbox store (docs/operations.md):
 * through a real Haraka with the ssmax plugin, keyd and a mailbox store on
 * loopback. With the store answering, /health/ready is 200 with
 * `delivery: ok`. With a misspelt [delivery] section (its host ignored, the
 * setting left at another value where nothing listens), /health/ready is
 * 503 and the check names the setting, its file, the cause and the ignored
 * section, while mail for local users is 4xx 4.4.1 as before. Haraka's log
 * also says once at start that keyd answers (src/gateway/keyd-probe.ts).
 */
import { request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Network } from '../../src/demo/network';
import { freePort } from '../../src/demo/haraka';
import { network, smtp, waitFor } from '../gateway/network-fixture';

jest.setTimeout(180000);

let net: Network;
beforeAll(async () => {
  net = await network([{ domain: 'a.example', users: [{ address: 'dave@a.example', client: 'plain', password: 'pw-dave' }] }]);
});
afterAll(async () => {
  await net?.stop();
});

const A = () => net.org('a.example');

function ready(): Promise<{ status: number; body: { status?: string; checks?: Record<string, string> } }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: A().ports.ops.gateway, path: '/health/ready', timeout: 10000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(parts).toString('utf8')) }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

const plain = (subject: string) =>
  `From: someone@elsewhere.example\r\nTo: dave@a.example\r\nSubject: ${subject}\r\nMessage-ID: <${subject}-${Date.now()}@elsewhere.example>\r\nDate: Sun, 06 Dec 2026 12:00:00 +0000\r\n\r\nHello.\r\n`;

test('at start the gateway logs once that keyd answers, naming its URL', async () => {
  await waitFor(
    () => /ssmax: keyd at https:\/\/127\.0\.0\.1:\d+ answers \(a\.example, role gateway\)/.test(A().haraka.logs()),
    20000,
    () => A().haraka.logs().slice(-2000),
  );
  expect(A().haraka.logs()).not.toMatch(/WARNING: keyd at/);
});

test('with the mailbox store answering, /health/ready is 200 and its delivery check ok', async () => {
  const r = await ready();
  expect(r.status).toBe(200);
  expect(r.body.checks).toEqual({ keyd: 'ok', delivery: 'ok', crls: 'ok' });
});

test('a misspelt [delivery] section: /health/ready is 503 naming the setting, its file, the cause and the ignored section; mail is 4xx 4.4.1', async () => {
  const iniFile = join(A().harakaDir, 'config', 'ssmax.ini');
  const shipped = readFileSync(iniFile, 'utf8');
  const store = `host=127.0.0.1:${A().ports.mailbox}`;
  expect(shipped).toContain(`[delivery]\n${store}\n`);
  // as with the plugin installed as a package: the shipped [delivery] host stays, the site's own is in a section nobody reads
  const nobody = await freePort();
  writeFileSync(iniFile, shipped.replace(`[delivery]\n${store}\n`, `[delivery]\nhost=127.0.0.1:${nobody}\n[delivry]\n${store}\n`));
  await A().restartHaraka();
  try {
    const r = await ready();
    expect(r.status).toBe(503);
    expect(r.body.status).toBe('not-ready');
    expect(r.body.checks?.keyd).toBe('ok');
    expect(r.body.checks?.delivery).toMatch(
      new RegExp(
        `^unavailable: the mailbox store at 127\\.0\\.0\\.1:${nobody} \\(\\[delivery\\] host of ssmax\\.ini, smtp\\) does not answer: connection refused \\(.*ECONNREFUSED.*\\); ssmax\\.ini \\[delivry\\]: not a section of the gateway, ignored, did you mean \\[delivery\\]\\?$`,
      ),
    );
    // what readiness says is what mail meets: a copy for a local user cannot be handed over, the sender retries
    expect(await smtp(A().ports.smtp, 'someone@elsewhere.example', ['dave@a.example'], plain('store-down'))).toMatch(
      /^45\d 4\.4\.1 Mailbox store unavailable/,
    );
  } finally {
    writeFileSync(iniFile, shipped);
    await A().restartHaraka();
  }
  const again = await ready();
  expect(again.status).toBe(200);
  expect(again.body.checks?.delivery).toBe('ok');
});
