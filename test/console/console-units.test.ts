/**
 * The console's parts on their own (docs/console.md): the templating and its
 * escaping, the language choice, sessions and the CSRF check, the metrics
 * parser, the token of a pasted message, keyd's on-behalf check, and the
 * console server's role checks over real TLS with certificates from an org CA.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { ConsoleKeyd, parseMetrics } from '../../src/console/backends';
import { KeydClient } from '../../src/keyd/client';
import { loadConsoleConfig } from '../../src/console/config';
import { Html, escapeHtml, html } from '../../src/console/html';
import { pickLang, t, TEXTS } from '../../src/console/i18n';
import { messageIdOfMessage, tokenOfMessage } from '../../src/console/pages';
import { Sessions, cookie, csrfOk, parseCookies, parseForm } from '../../src/console/security';
import { ConsoleServer, MAX_FORM_BYTES } from '../../src/console/server';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';
import { KeydError } from '../../src/keyd/errors';
import { OnBehalf } from '../../src/keyd/on-behalf';
import { parseCertificate } from '../../src/pki/certificate';
import { CrlFiles } from '../../src/pki/crl-files';
import { createCrl } from '../../src/pki/crl';

describe('templating', () => {
  test('every interpolated value is escaped for text and quoted attributes', () => {
    const evil = '<script>alert("x")</script> & \'q\' `b`';
    const out = html`<p title="${evil}">${evil}</p>`.text;
    expect(out).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39; &#96;b&#96;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39; &#96;b&#96;</p>',
    );
    expect(out).not.toMatch(/<script>/);
  });

  test('markup made by html is kept; arrays are joined; null, undefined and false print nothing', () => {
    const items = ['a<b', 'c'];
    expect(html`<ul>${items.map((i) => html`<li>${i}</li>`)}</ul>${null}${undefined}${false}${0}`.text).toBe(
      '<ul><li>a&lt;b</li><li>c</li></ul>0',
    );
    expect(html`${new Html('<b>ok</b>')}`.text).toBe('<b>ok</b>');
  });

  test('a string that looks like markup is still escaped (only Html objects pass)', () => {
    expect(html`${'<b>no</b>'}`.text).toBe('&lt;b&gt;no&lt;/b&gt;');
    expect(html`${{ text: '<b>' } as unknown as string}`.text).toBe('[object Object]');
  });

  test('escaping costs linear time', () => {
    const time = (n: number) => {
      const s = '<&"'.repeat(n);
      const t0 = performance.now();
      escapeHtml(s);
      return performance.now() - t0;
    };
    time(1000);
    // the fastest of three interleaved runs of each size: one preemption or collector pause does not decide
    let small = Infinity;
    let big = Infinity;
    for (let i = 0; i < 3; i++) {
      small = Math.min(small, time(100000));
      big = Math.min(big, time(1000000));
    }
    expect(big / Math.max(small, 0.5)).toBeLessThan(40); // 10x the input: about 10x the time, never quadratic
  });
});

describe('language', () => {
  test('the cookie wins, else Accept-Language by weight, else English', () => {
    expect(pickLang('ja', 'en')).toBe('ja');
    expect(pickLang(undefined, 'ja-JP,ja;q=0.9,en;q=0.8')).toBe('ja');
    expect(pickLang(undefined, 'en-US,ja;q=0.5')).toBe('en');
    expect(pickLang(undefined, 'fr, ja;q=0.3')).toBe('ja');
    expect(pickLang(undefined, 'fr, de')).toBe('en');
    expect(pickLang('xx', undefined)).toBe('en');
    expect(pickLang(undefined, 'ja;q=0, en;q=0.1')).toBe('en');
  });

  test('both languages have every text, and placeholders are filled', () => {
    expect(Object.keys(TEXTS.ja).sort()).toEqual(Object.keys(TEXTS.en).sort());
    for (const v of Object.values(TEXTS.ja)) expect(v).not.toBe('');
    expect(t('en', 'chainOk', { n: 3 })).toBe('The audit chain verifies: 3 records.');
    expect(t('ja', 'chainOk', { n: 3 })).toBe('監査チェーンは正常です: 3 件。');
  });
});

describe('sessions and CSRF', () => {
  const origin = 'https://127.0.0.1:8443';
  test('a session belongs to one certificate: its cookie with another certificate makes a new session', () => {
    const s = new Sessions(60000);
    const a = s.get(undefined, 'cert-a');
    expect(a.fresh).toBe(true);
    expect(s.get(a.session.id, 'cert-a')).toEqual({ session: a.session, fresh: false });
    const b = s.get(a.session.id, 'cert-b');
    expect(b.fresh).toBe(true);
    expect(b.session.id).not.toBe(a.session.id);
    expect(b.session.csrf).not.toBe(a.session.csrf);
  });

  test('a session expires after its lifetime without a request', () => {
    let now = 1000;
    const s = new Sessions(60000, 1000, () => now);
    const a = s.get(undefined, 'c');
    now += 59000;
    expect(s.get(a.session.id, 'c').fresh).toBe(false);
    now += 61000;
    expect(s.get(a.session.id, 'c').fresh).toBe(true);
  });

  test("a POST passes only with the session's token, from this origin", () => {
    const { session } = new Sessions(60000).get(undefined, 'c');
    expect(csrfOk(session, session.csrf, { origin, 'sec-fetch-site': 'same-origin' }, origin)).toBe(true);
    expect(csrfOk(session, session.csrf, {}, origin)).toBe(true); // a client that sends neither header still needs the token
    expect(csrfOk(session, undefined, { origin }, origin)).toBe(false);
    expect(csrfOk(session, `${session.csrf.slice(0, -1)}${session.csrf.endsWith('A') ? 'B' : 'A'}`, { origin }, origin)).toBe(false); // one character changed
    expect(csrfOk(session, session.csrf, { origin: 'https://evil.example' }, origin)).toBe(false);
    expect(csrfOk(session, session.csrf, { origin: 'null' }, origin)).toBe(false);
    expect(csrfOk(session, session.csrf, { 'sec-fetch-site': 'cross-site' }, origin)).toBe(false);
  });

  test('cookies are Secure, HttpOnly, SameSite=Strict; cookie and form parsing take the first value', () => {
    expect(cookie('x', 'v')).toBe('x=v; Path=/; Secure; HttpOnly; SameSite=Strict');
    expect(parseCookies('a=1; b=2; a=3')).toEqual(
      new Map([
        ['a', '1'],
        ['b', '2'],
      ]),
    );
    expect(parseForm('csrf=a%2Bb&x=1+2&x=9&bad=%E0%A4%A')).toEqual(
      new Map([
        ['csrf', 'a+b'],
        ['x', '1 2'],
        ['bad', ''],
      ]),
    );
  });
});

test('metrics: samples of the names asked for, with their labels', () => {
  const text = '# HELP x\nssmax_a{peer="b.example",x="q\\"s"} 12.5\nssmax_b 3\nssmax_a{peer="c.example"} NaN\nother 1\n';
  expect(parseMetrics(text, new Set(['ssmax_a', 'ssmax_b']))).toEqual([
    { name: 'ssmax_a', labels: { peer: 'b.example', x: 'q"s' }, value: 12.5 },
    { name: 'ssmax_b', labels: {}, value: 3 },
  ]);
});

test("the token of a pasted message: never from the body, never another organisation's seal (a real seal i=1 is resolved in console-browser.test.ts)", () => {
  const bodySeal = 'SSMAX-Seal: v=1; i=1; d=a.example; tt=BODY\r\n';
  expect(tokenOfMessage(`Subject: x\r\n\r\n${bodySeal}`, 'a.example')).toBeUndefined();
  expect(tokenOfMessage(`Subject: x\nFrom: y\n\n${bodySeal}`, 'a.example')).toBeUndefined();
  expect(tokenOfMessage('Subject: x\r\nSSMAX-Seal: not a seal\r\n\r\n', 'a.example')).toBeUndefined();
  expect(tokenOfMessage('', 'a.example')).toBeUndefined();
});

test('the Message-ID of a pasted message (sent with its token: keyd discloses only for it): from the header block only', () => {
  expect(messageIdOfMessage('Subject: x\r\nMessage-ID:\r\n <m1@a.example>\r\n\r\nMessage-ID: <body@x>\r\n')).toBe('<m1@a.example>');
  expect(messageIdOfMessage('Subject: x\n\nMessage-ID: <body@x>\n')).toBeUndefined();
  expect(messageIdOfMessage('')).toBeUndefined();
});

describe('keyd: acting on behalf of an administrator', () => {
  let fx: OrgFixture;
  let other: OrgFixture;
  let onBehalf: OnBehalf;
  const der = (pem: string) => Buffer.from(parseCertificate(pem).der).toString('base64');
  const consoleActor = { role: 'console' as const, name: 'CN=console.a.example #1' };
  beforeAll(() => {
    fx = provisionOrg(mkdtempSync(join(tmpdir(), 'ssmax-onbehalf-')), { domain: 'a.example' });
    other = provisionOrg(mkdtempSync(join(tmpdir(), 'ssmax-onbehalf-b-')), { domain: 'b.example', root: fx.root });
    const crls = ['org-ca.crl.pem', 'root.crl.pem'].map((f) => readFileSync(join(fx.dir, f), 'utf8'));
    onBehalf = new OnBehalf({
      roots: [fx.root.certificate.pem],
      crls: () => crls,
      orgCa: fx.orgCa.certificate.pem,
      clock: () => new Date(),
    });
  });

  test('without the header the caller is itself', () => {
    expect(onBehalf.actor(consoleActor, undefined)).toBe(consoleActor);
  });

  test('from the console role, an admin or disclosure certificate of this organisation: the operation runs as that administrator, via the console', () => {
    const a = onBehalf.actor(consoleActor, der(fx.clients.admin.cert));
    expect(a).toEqual({
      role: 'admin',
      name: expect.stringMatching(/CN=admin-operator #[0-9a-f]+ via CN=console\.a\.example #1$/),
      via: consoleActor.name,
    });
    expect(onBehalf.actor(consoleActor, der(fx.clients.disclosure.cert)).role).toBe('disclosure');
  });

  test('any other role may not name another certificate (an admin cannot borrow, a gateway cannot either)', () => {
    for (const role of ['gateway', 'admin', 'inspector'] as const) {
      expect(() => onBehalf.actor({ role, name: 'x' }, der(fx.clients.admin.cert))).toThrow(
        expect.objectContaining({ code: 'forbidden' }) as KeydError,
      );
    }
  });

  test('refused: a certificate of another role, of another organisation, of a foreign root, expired; a malformed header', () => {
    const refused = (header: string | string[]) => {
      try {
        onBehalf.actor(consoleActor, header);
        return 'accepted';
      } catch (err) {
        return (err as KeydError).code;
      }
    };
    expect(refused(der(fx.clients.gateway.cert))).toBe('unauthenticated');
    expect(refused(der(fx.clients.console.cert))).toBe('unauthenticated');
    expect(refused(der(other.clients.admin.cert))).toBe('unauthenticated');
    expect(refused(der(fx.clients.foreign.cert))).toBe('unauthenticated');
    expect(refused(der(fx.clients.expired.cert))).toBe('unauthenticated');
    expect(refused(der(fx.clients.revoked.cert))).toBe('unauthenticated');
    expect(refused('not base64!')).toBe('bad-request');
    expect(refused([der(fx.clients.admin.cert), der(fx.clients.admin.cert)])).toBe('bad-request');
    expect(refused('A'.repeat(9000))).toBe('bad-request');
  });

  test("a refusal says why in keyd's own words, once (no lead-in of the certificate check)", () => {
    expect(() => onBehalf.actor(consoleActor, der(fx.clients.gateway.cert))).toThrow(
      /^The administrator's certificate is refused: Certificate "[^"]*CN=mx\.a\.example" cannot be used for tls-client: its role "gateway" is not one of admin, disclosure$/,
    );
    expect(() => onBehalf.actor(consoleActor, der(fx.clients.revoked.cert))).toThrow(
      /^The administrator's certificate is refused: [^:]*revoked/,
    );
  });
});

test("the console's keyd calls go through KeydClient with the administrator's certificate in SSMAX-On-Behalf-Of (extra headers never replace the request's own)", async () => {
  const fx = provisionOrg(mkdtempSync(join(tmpdir(), 'ssmax-console-keyd-')), { domain: 'a.example' });
  const seen: { headers: Record<string, unknown>; body: string; peer: string }[] = [];
  // a stand-in for keyd (this module's unit test): records what arrives, answers JSON
  const server = createHttpsServer(
    {
      cert: fx.clients.keyd.cert + fx.orgCa.certificate.pem,
      key: fx.clients.keyd.key,
      ca: fx.caPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN ?? '';
        seen.push({ headers: req.headers, body: Buffer.concat(parts).toString('utf8'), peer: String(peer) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  const keyd = new ConsoleKeyd({
    url,
    servername: 'keyd.a.example',
    ca: fx.caPem,
    cert: fx.clients.console.cert,
    key: fx.clients.console.key,
    timeoutMs: 2000,
  });
  try {
    const admin = Buffer.from(parseCertificate(fx.clients.admin.cert).der);
    await expect(keyd.for(admin).call('POST', '/v1/audit/console', { op: 'console.x', target: 't' })).resolves.toEqual({ ok: true });
    expect(seen[0]!.peer).toBe('console.a.example'); // the console's own certificate
    expect(seen[0]!.headers['ssmax-on-behalf-of']).toBe(admin.toString('base64'));
    expect(seen[0]!.headers['content-type']).toBe('application/json');
    expect(seen[0]!.headers['content-length']).toBe(String(Buffer.byteLength(seen[0]!.body)));
    expect(JSON.parse(seen[0]!.body)).toEqual({ op: 'console.x', target: 't' });
    // KeydClient's own extra headers cannot replace accept or the body's length and type
    const client = new KeydClient({
      url,
      servername: 'keyd.a.example',
      ca: fx.caPem,
      cert: fx.clients.console.cert,
      key: fx.clients.console.key,
    });
    try {
      await client.call(
        'POST',
        '/x',
        { a: 1 },
        { accept: 'text/html', 'content-length': '1', 'content-type': 'text/plain', 'x-extra': 'y' },
      );
    } finally {
      client.close();
    }
    expect(seen[1]!.headers).toMatchObject({
      accept: 'application/json',
      'content-type': 'application/json',
      'content-length': '7',
      'x-extra': 'y',
    });
    expect(seen[1]!.body).toBe('{"a":1}');
  } finally {
    keyd.close();
    await new Promise((r) => server.close(r));
  }
});

describe("keyd's CRLs for the on-behalf check: read when they change", () => {
  test('an unchanged CRL is not read again per request; a replaced one (write and rename) or one rewritten in place is used at once; a missing one refuses', () => {
    const fx = provisionOrg(mkdtempSync(join(tmpdir(), 'ssmax-onbehalf-crl-')), { domain: 'a.example' });
    const dir = mkdtempSync(join(tmpdir(), 'ssmax-crls-'));
    const orgCrl = join(dir, 'org-ca.crl.pem');
    const first = readFileSync(join(fx.dir, 'org-ca.crl.pem'), 'utf8');
    writeFileSync(orgCrl, first);
    writeFileSync(join(dir, 'root.crl.pem'), readFileSync(join(fx.dir, 'root.crl.pem')));
    const crls = new CrlFiles([orgCrl, join(dir, 'root.crl.pem')], (f) => readFileSync(f, 'utf8'));
    const onBehalf = new OnBehalf({
      roots: [fx.root.certificate.pem],
      crls: () => crls.current(),
      orgCa: fx.orgCa.certificate.pem,
      clock: () => new Date(),
    });
    const consoleActor = { role: 'console' as const, name: 'CN=console.a.example #1' };
    const header = Buffer.from(parseCertificate(fx.clients.disclosure.cert).der).toString('base64');
    const verdict = () => {
      try {
        return onBehalf.actor(consoleActor, header).role;
      } catch (err) {
        return `${(err as KeydError).code}: ${(err as Error).message}`;
      }
    };
    for (let i = 0; i < 100; i++) expect(verdict()).toBe('disclosure');
    expect(crls.reads).toBe(2); // once per file for 100 requests

    // the org CA's CRL replaced as keyd's renewal does it (a new file renamed over the old) revoking this certificate
    const now = Date.now();
    const revoking = createCrl(fx.orgCa, {
      entries: [{ serial: parseCertificate(fx.clients.disclosure.cert).serial, revokedAt: new Date(now - 1000), reason: 'keyCompromise' }],
      thisUpdate: new Date(now - 1000),
      nextUpdate: new Date(now + 86400000),
      crlNumber: 2,
    });
    writeFileSync(`${orgCrl}.new`, revoking.pem);
    renameSync(`${orgCrl}.new`, orgCrl);
    expect(verdict()).toMatch(/^unauthenticated: .*revoked/);
    expect(crls.reads).toBe(3);
    expect(verdict()).toMatch(/^unauthenticated: .*revoked/);
    expect(crls.reads).toBe(3);

    // rewritten in place (the same file): used at once
    writeFileSync(orgCrl, first);
    expect(verdict()).toBe('disclosure');
    expect(crls.reads).toBe(4);

    // gone: nothing is accepted (fail closed), on every request
    rmSync(orgCrl);
    expect(verdict()).toMatch(/ENOENT|no such file/);
    expect(verdict()).toMatch(/ENOENT|no such file/);
  });
});

describe('the console server: who may log in', () => {
  let fx: OrgFixture;
  let server: ConsoleServer;
  let port: number;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssmax-console-unit-'));
    fx = provisionOrg(join(dir, 'pki'), { domain: 'a.example' });
    writeFileSync(join(dir, 'pki', 'console.pem'), fx.clients.console.cert + fx.orgCa.certificate.pem);
    writeFileSync(join(dir, 'pki', 'console.key'), fx.clients.console.key);
    const file = join(dir, 'console.ini');
    writeFileSync(
      file,
      [
        '[console]',
        'domain=a.example',
        'listen=127.0.0.1:0',
        '[tls]',
        'cert=pki/console.pem',
        'key=pki/console.key',
        'client_ca=pki/org-ca.pem,pki/root.pem',
        '[pki]',
        'roots=pki/root.pem',
        'crls=pki/org-ca.crl.pem,pki/root.crl.pem',
        'org_ca=pki/org-ca.pem',
        // no keyd here: pages that need it show the failure; the role checks come first
        '[keyd]',
        'url=https://127.0.0.1:9',
        'ca=pki/org-ca.pem,pki/root.pem',
        'cert=pki/console.pem',
        'key=pki/console.key',
        'timeout_ms=500',
        '',
      ].join('\n'),
    );
    server = new ConsoleServer({ config: loadConsoleConfig(file) });
    port = await server.listen();
  });
  afterAll(() => server.close());

  function get(
    creds: { cert: string; key: string },
    path: string,
    method = 'GET',
    body?: string,
    extra: Record<string, string> = {},
  ): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method,
          cert: creds.cert,
          key: creds.key,
          ca: fx.caPem,
          servername: 'console.a.example',
          headers: {
            ...extra,
            ...(body === undefined
              ? {}
              : { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }),
          },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString(), headers: res.headers }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  test("the admin role is let in (a page that needs keyd shows keyd's absence, not a stack trace)", async () => {
    const r = await get(fx.clients.admin, '/audit');
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/data-role="1">admin</);
    expect(r.text).toMatch(/Could not complete: keyd unreachable: ECONNREFUSED/);
    expect(r.headers['content-security-policy']).toBe(
      "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    expect(String(r.headers['set-cookie'])).toMatch(/^ssmax_console=[A-Za-z0-9_-]+; Path=\/; Secure; HttpOnly; SameSite=Strict$/);
    expect(r.text).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i); // nothing the CSP would have to allow
  });

  test('the gateway, inspector and console roles are refused (403), whatever the page', async () => {
    for (const role of ['gateway', 'inspector', 'console'] as const) {
      for (const path of ['/', '/abuse', '/users']) {
        const r = await get(fx.clients[role], path);
        expect({ role, path, status: r.status }).toEqual({ role, path, status: 403 });
        expect(r.text).toMatch(new RegExp(`may not use the console: Client certificate refused: .*role &quot;${role}&quot;`));
      }
    }
  });

  test('the disclosure role reaches the abuse page only', async () => {
    expect((await get(fx.clients.disclosure, '/abuse')).status).toBe(200);
    for (const path of ['/', '/peers', '/quarantine', '/users', '/audit'])
      expect((await get(fx.clients.disclosure, path)).status).toBe(403);
  });

  test("a POST without the session's CSRF token is refused before anything is done; unknown pages are 404", async () => {
    const r = await get(fx.clients.admin, '/users/status', 'POST', 'address=dave%40a.example&status=suspended');
    expect(r.status).toBe(403);
    expect(r.text).toMatch(/did not come from this console/);
    expect((await get(fx.clients.admin, '/nothing')).status).toBe(404);
    expect((await get(fx.clients.admin, '/users/status')).status).toBe(404);
  });

  test('a form over the size limit is refused 413 (the shared bounded read), before anything is done', async () => {
    const r = await get(fx.clients.admin, '/users/status', 'POST', `address=${'a'.repeat(MAX_FORM_BYTES)}`);
    expect(r.status).toBe(413);
    expect(r.text).toContain(`Form over ${MAX_FORM_BYTES} bytes`);
  });

  test("with the session's token, a POST from this console passes; from another origin it is refused", async () => {
    const page = await get(fx.clients.admin, '/abuse');
    const session = /^ssmax_console=([^;]+)/.exec(String(page.headers['set-cookie']))![1]!;
    const token = /name="csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const post = (origin: string) =>
      get(fx.clients.admin, '/abuse/resolve', 'POST', `csrf=${encodeURIComponent(token)}&report=AAAA`, {
        cookie: `ssmax_console=${session}`,
        origin,
      });
    const ok = await post(`https://127.0.0.1:${port}`);
    expect(ok.status).toBe(200);
    expect(ok.text).toMatch(/Could not complete: Cannot resolve the token: keyd unreachable: ECONNREFUSED/); // it got as far as asking keyd
    expect((await post('https://evil.example')).status).toBe(403);
    expect((await post('null')).status).toBe(403);
  });

  test('the language switch redirects within the console only; a request target that is not a path is refused', async () => {
    const to = async (back: string) => (await get(fx.clients.admin, `/lang?to=ja&back=${encodeURIComponent(back)}`)).headers.location;
    expect(await to('/abuse')).toBe('/abuse');
    expect(await to('//evil.example/x')).toBe('/');
    expect(await to('/\\evil.example')).toBe('/');
    expect(await to('https://evil.example/')).toBe('/');
    const r = await get(fx.clients.admin, '/lang?to=ja&back=/');
    expect(String(r.headers['set-cookie'])).toMatch(/ssmax_lang=ja; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=31536000/);
    expect((await get(fx.clients.admin, '//evil.example/')).status).toBe(400);
  });
});

describe('ssmax console (the command)', () => {
  const run = async (args: string[]) => {
    const out: string[] = [];
    const code = await main(args, { out: (l: string) => out.push(l), err: (l: string) => out.push(l) });
    return { code, text: out.join('\n') };
  };
  test("--help, usage errors, a missing and an invalid config file answer with the table's exit codes", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssmax-console-cli-'));
    expect(await run(['console', '--help'])).toEqual({
      code: 0,
      text: expect.stringMatching(/^Usage: ssmax console <subcommand>[\s\S]*run --config FILE/),
    });
    expect(await run(['console', 'run', '--help'])).toEqual({
      code: 0,
      text: expect.stringMatching(/^Usage: ssmax console run --config FILE/),
    });
    expect((await run(['console', 'run'])).code).toBe(64);
    expect((await run(['console', 'serve'])).code).toBe(64);
    expect((await run(['console', 'run', '--config', join(dir, 'missing.ini')])).code).toBe(66);
    writeFileSync(join(dir, 'bad.ini'), '[console]\nlisten=nowhere\n');
    const bad = await run(['console', 'run', '--config', join(dir, 'bad.ini')]);
    expect(bad).toEqual({
      code: 78,
      text: expect.stringMatching(/^ssmax console: .*bad\.ini \[console\] listen: must be host:port, got 'nowhere'$/),
    });
  });
});
