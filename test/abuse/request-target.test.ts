/**
 * A request target the URL parser refuses (`//[`, `http://[::1/`, a port over 65535) is a 400 at the abuse endpoint,
 * before its token check, with no fault line (it was a 500 and "abuse endpoint fault: TypeError" in the log, which
 * anyone could fill); the console and the inspector read targets through the same helper.
 */
import { connect } from 'node:net';
import { startReportServer } from '../../src/abuse/report-server';
import { requestUrl } from '../../src/net/request-target';

function rawStatus(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`));
    let data = '';
    socket.on('data', (c: Buffer) => {
      data += c.toString();
      if (/\r\n\r\n[\s\S]*\}/.test(data)) socket.end();
    });
    socket.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), body: data }));
    socket.on('error', reject);
  });
}

test('the abuse endpoint answers a target it cannot parse 400, with no fault line, whoever asks', async () => {
  const log: string[] = [];
  const abuse = await startReportServer({
    directory: { lookup: () => Promise.reject(new Error('not reached')) },
    from: 'abuse@a.example',
    ownDomain: 'a.example',
    reportingMta: 'mx.a.example',
    host: '127.0.0.1',
    port: 0,
    bearerToken: 'a-long-enough-secret-token-for-the-test',
    log: (l) => log.push(l),
  });
  try {
    for (const target of ['//[', 'http://[::1/', '//a:99999/v1/health', '/v1/health?%']) {
      const r = await rawStatus(abuse.port, target);
      expect([target, r.status]).toEqual([target, target.startsWith('/v1/') ? 401 : 400]);
    }
    expect(log.filter((l) => /fault/i.test(l))).toEqual([]);
  } finally {
    await abuse.close();
  }
});

test('requestUrl: origin-form targets only; anything the parser refuses is undefined, never a throw', () => {
  expect(requestUrl('/v1/x?a=1', 'https://k')?.pathname).toBe('/v1/x');
  expect(requestUrl(undefined, 'https://k')?.pathname).toBe('/');
  for (const t of ['//[', '//a:99999/', 'http://[::1/', '*', 'x/y', '']) expect([t, requestUrl(t, 'https://k')]).toEqual([t, undefined]);
});
