/**
 * Metrics of a Haraka gateway running several worker processes (smtp.ini
 * nodes=2; docs/operations.md, "Haraka with several worker processes"): the
 * master answers /metrics with the series of every worker aggregated, so one
 * scrape counts every message whichever worker took it.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Network, startNetwork } from '../../src/demo/network';
import { smtp, waitFor } from '../gateway/network-fixture';

jest.setTimeout(180000);

let net: Network | undefined;
afterAll(async () => {
  await net?.stop();
});

function get(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

test('nodes=2: one /metrics of the master counts the messages of both workers', async () => {
  net = await startNetwork(mkdtempSync(join(tmpdir(), 'ssmax-cluster-')), [
    { domain: 'a.example', users: [{ address: 'dave@a.example', client: 'plain', password: 'pw-dave' }] },
    { domain: 'b.example', users: [{ address: 'carol@b.example', client: 'plain', password: 'pw-carol' }] },
  ]);
  const A = net.org('a.example');
  const B = net.org('b.example');
  const smtpIni = join(A.harakaDir, 'config', 'smtp.ini');
  writeFileSync(smtpIni, readFileSync(smtpIni, 'utf8').replace(/^nodes=0$/m, 'nodes=2'));
  await A.restartHaraka();
  // both workers up (each logs its gateway line), then the master's listener
  await waitFor(
    () => (A.haraka.logs().match(/ssmax: gateway for a\.example/g) ?? []).length >= 3,
    30000,
    () => A.haraka.logs().slice(-3000),
  );
  let m = { status: 0, text: '' };
  for (let i = 0; i < 80 && !(m.status === 200 && value(m.text, 'ssmax_gateway_worker_processes') === 2); i++) {
    m = await get(A.ports.ops.gateway, '/metrics').catch(() => ({ status: 0, text: '' }));
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(value(m.text, 'ssmax_gateway_worker_processes')).toBe(2);

  const N = 8;
  for (let i = 0; i < N; i++) {
    const raw = `From: dave@a.example\r\nTo: carol@b.example\r\nSubject: C${i}\r\nMessage-ID: <c${i}@a.example>\r\n\r\nbody ${i}\r\n`;
    expect(await smtp(A.ports.smtp, 'dave@a.example', ['carol@b.example'], raw, { user: 'dave@a.example', pass: 'pw-dave' })).toMatch(
      /^250 /,
    );
  }
  await waitFor(() => B.mailbox.for('carol@b.example').length === N, 30000);
  // one scrape, every message: the workers share the SMTP socket (connections go round-robin), so one worker alone has fewer
  m = await get(A.ports.ops.gateway, '/metrics');
  expect(m.status).toBe(200);
  expect(value(m.text, 'ssmax_gateway_messages_total{direction="outbound",outcome="queued"}')).toBe(N);
  expect(value(m.text, 'ssmax_gateway_replies_total{direction="outbound",code="250",status="2.0.0"}')).toBe(N);
  expect(value(m.text, 'ssmax_gateway_step_seconds_count{direction="outbound",step="total"}')).toBe(N);
  const ready = await get(A.ports.ops.gateway, '/health/ready');
  expect(ready.status).toBe(200);
  console.log(
    m.text
      .split('\n')
      .filter((l) => /^ssmax_gateway_(messages_total|worker_processes|replies_total)/.test(l))
      .join('\n'),
  );
});
