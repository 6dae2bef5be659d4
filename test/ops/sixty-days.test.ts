/**
 * Nothing expires unattended (docs/operations.md, "Renewals"): two
 * organisations — keyd, publisher and a real Haraka gateway each, all real
 * processes — run on a simulated clock through 60 days, mail flowing both
 * ways every simulated day.
 *
 * The clock: libfaketime (Debian `faketime`, scripts/ensure-faketime.sh)
 * preloaded into every process, reading its offset from a file the test
 * advances one day at a time ("+Nd"; re-read at every clock reading, so all
 * processes move together). Wall-clock time jumps; monotonic time
 * (timers, timeouts) is left alone (FAKETIME_DONT_FAKE_MONOTONIC), so every
 * schedule, poll and retry runs as in production. Everything inside a process
 * sees the simulated time, OpenSSL's certificate checks included: nothing in
 * the product has a way to shift its own clock.
 *
 * Short lifetimes so that everything lapses several times over: key versions
 * 20 days, service certificates 30 days (renewed 10 days ahead), the org CA's
 * CRL 8 days (renewed 4 days ahead), bundles 4 days. At every step: the
 * bundle a peer fetched the day before still verifies; once the schedules
 * have run, each publisher serves a bundle that verifies at the new time;
 * each gateway's cached bundle of its peer is unexpired (its metrics); a
 * message each way is answered 250 and delivered once.
 */
import { existsSync, readdirSync, readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpGet } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { type Network, type OrgNode, startNetwork } from '../../src/demo/network';
import { parseCertificate } from '../../src/pki/certificate';
import { verifyBundle } from '../../src/pki/bundle';
import { createCrl, parseCrl } from '../../src/pki/crl';
import { smtp, waitFor } from '../gateway/network-fixture';

jest.setTimeout(300000);

const DAY = 86400000;
const DAYS = 60;
const LIFETIME = 4 * DAY; // of a bundle
/** libfaketime where scripts/ensure-faketime.sh looks for it: any multiarch folder (x86_64-linux-gnu, aarch64-linux-gnu, …), then the plain one; a preload library exists on Linux only, so elsewhere the test is skipped. */
const LIB = [
  ...(() => {
    try {
      return readdirSync('/usr/lib').map((d) => `/usr/lib/${d}/faketime/libfaketime.so.1`);
    } catch {
      return [];
    }
  })(),
  '/usr/lib/faketime/libfaketime.so.1',
].find((f) => existsSync(f));
const CERT_FILES = ['keyd.pem', 'gateway.pem', 'inspector.pem', 'admin.pem', 'seal.cert.pem', 'signer.cert.pem', 'publisher.pem'];

const base = mkdtempSync(join(tmpdir(), 'ssmax-60d-'));
const clockFile = join(base, 'faketime');
let day = 0;
const sim = () => Date.now() + day * DAY;
const saved = { ...process.env };
let net: Network | undefined;

afterAll(async () => {
  await net?.stop();
  for (const k of ['LD_PRELOAD', 'FAKETIME_TIMESTAMP_FILE', 'FAKETIME_NO_CACHE', 'FAKETIME_DONT_FAKE_MONOTONIC']) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

/** The bundle as a peer fetches it. TLS is not checked here (the test process runs on real time; the publisher's renewed certificate starts in simulated time); the bundle verifies itself. */
function fetchBundle(org: OrgNode): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: org.ports.publisher,
        path: '/.well-known/ssmax/bundle',
        servername: `ssmax.${org.domain}`,
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(Buffer.concat(parts).toString('utf8')) : reject(new Error(`HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function metrics(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    });
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

(LIB ? test : test.skip)('60 simulated days: renewals keep mail flowing both ways, peers never hold an expired bundle or CRL', async () => {
  writeFileSync(clockFile, '+0d\n');
  Object.assign(process.env, {
    LD_PRELOAD: LIB,
    FAKETIME_TIMESTAMP_FILE: clockFile,
    FAKETIME_NO_CACHE: '1',
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
  });
  const org = (domain: string, user: string) => ({
    domain,
    users: [{ address: user, client: 'plain' as const, password: `pw-${user}` }],
    keydKeys: '[keys]\nvalidity_days=20\nrenew_before_days=5\ngrace_days=5\nschedule_seconds=1',
    certDays: 30,
    keydIni: [
      'renew_at_days_left=10',
      'lifetime_days=30',
      'warn_at_days_left=5',
      '[crl]',
      'renew_at_days_left=4',
      'lifetime_days=8',
      'warn_at_days_left=3',
    ],
    bundleLifetimeSeconds: LIFETIME / 1000,
  });
  net = await startNetwork(join(base, 'net'), [org('a.example', 'dave@a.example'), org('b.example', 'carol@b.example')]);
  const A = net.org('a.example');
  const B = net.org('b.example');
  // the SSMAX root operator publishes its (long-lived) CRL; the org CAs' CRLs are keyd's to renew
  const rootCrl = createCrl(net.root, {
    entries: [],
    thisUpdate: new Date(sim() - 1000),
    nextUpdate: new Date(sim() + 400 * DAY),
    crlNumber: 2,
  }).pem;
  for (const o of [A, B]) writeFileSync(join(o.fx.dir, 'root.crl.pem'), rootCrl);

  const roots = [net.root.certificate.pem];
  const held = new Map<string, string>();
  const deferrals: string[] = [];
  const pairs = [
    { from: A, to: B, sender: 'dave@a.example', rcpt: 'carol@b.example' },
    { from: B, to: A, sender: 'carol@b.example', rcpt: 'dave@a.example' },
  ];
  const keysSeen = new Map<string, Set<number>>([
    [A.domain, new Set()],
    [B.domain, new Set()],
  ]);
  const started = Date.now();
  for (day = 0; day <= DAYS; day++) {
    writeFileSync(clockFile, `+${day}d\n`);
    // what peers fetched the day before still verifies now
    for (const o of [A, B]) {
      const h = held.get(o.domain);
      if (!h) continue;
      const v = verifyBundle(h, { domain: o.domain, roots, time: new Date(sim()) });
      expect({ day, domain: o.domain, held: v.status, why: v.message }).toMatchObject({ day, domain: o.domain, held: 'valid' });
    }
    // the schedules run (keyd every second, the publisher polls every second): wait until everything is renewed for the day
    for (const o of [A, B]) {
      let last = '';
      await waitFor(
        () => {
          const now = sim();
          const certsOk = CERT_FILES.every(
            (f) =>
              parseCertificate(
                /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(readFileSync(join(o.fx.dir, f), 'utf8'))![0],
              ).notAfter.getTime() -
                now >
              10 * DAY,
          );
          const crlOk = parseCrl(readFileSync(join(o.fx.dir, 'org-ca.crl.pem'), 'utf8')).nextUpdate!.getTime() - now > 4 * DAY;
          last = `certificates ${certsOk}, CRL ${crlOk}`;
          return certsOk && crlOk;
        },
        20000,
        () => `${o.domain} day ${day}: ${last}\n${o.keyd.output().slice(-3000)}`,
      );
      let bundle: string;
      let why: string;
      for (let i = 0; ; i++) {
        bundle = await fetchBundle(o).catch((e: Error) => `error ${e.message}`);
        const v = verifyBundle(bundle, { domain: o.domain, roots, time: new Date(sim()) });
        // settled: it verifies, carries the renewed CRL of the org CA, and is not due for re-publication
        // (the publisher republishes after half of the lifetime; a peer would refresh an older one)
        const settled =
          v.status === 'valid' &&
          v.bundle.crls.every((c) => (c.nextUpdate?.getTime() ?? 0) - sim() > 4 * DAY) &&
          v.bundle.expires.getTime() - sim() > LIFETIME / 2;
        if (v.status === 'valid' && settled) {
          keysSeen.get(o.domain)!.add(v.bundle.currentKey.version);
          break;
        }
        why = v.status === 'valid' ? 'old CRL inside, or due for re-publication' : `${v.status}: ${v.message}`;
        if (i > 100)
          throw new Error(`${o.domain} day ${day}: publisher serves no current bundle (${why})\n${o.publisher.output().slice(-3000)}`);
        await sleep(200);
      }
      held.set(o.domain, bundle);
    }
    // mail both ways
    for (const p of pairs) {
      const marker = `D${day}-${p.from.domain}`;
      const raw = `From: ${p.sender}\r\nTo: ${p.rcpt}\r\nSubject: ${marker}\r\nMessage-ID: <${marker}@x>\r\n\r\n${marker} body\r\n`;
      let reply = '';
      for (let i = 0; i < 20; i++) {
        reply = await smtp(p.from.ports.smtp, p.sender, [p.rcpt], raw, { user: p.sender, pass: `pw-${p.sender}` });
        if (!reply.startsWith('4')) break;
        deferrals.push(`day ${day} ${marker}: ${reply}`);
        await sleep(500);
      }
      expect({ marker, reply }).toEqual({ marker, reply: expect.stringMatching(/^250 /) as string });
      await waitFor(
        () => p.to.mailbox.for(p.rcpt).some((m) => m.raw.toString('latin1').includes(`Subject: ${marker}`)),
        30000,
        () => `${p.from.haraka.logs().slice(-3000)}\n${p.to.haraka.logs().slice(-3000)}`,
      );
    }
    // each gateway's cached bundle of its peer (and its own) is unexpired at the simulated time
    for (const o of [A, B]) {
      const text = await metrics(o.ports.ops.gateway);
      for (const m of text.matchAll(/^ssmax_gateway_peer_bundle_expiry_timestamp_seconds\{peer="([^"]+)"\} (\d+)/gm)) {
        expect({ day, gateway: o.domain, peer: m[1], expired: Number(m[2]) * 1000 <= sim() }).toEqual({
          day,
          gateway: o.domain,
          peer: m[1],
          expired: false,
        });
      }
    }
  }
  const seconds = (Date.now() - started) / 1000;
  // every message delivered exactly once
  for (const p of pairs) {
    const subjects = p.to.mailbox.for(p.rcpt).map((m) => /Subject: (\S+)/.exec(m.raw.toString('latin1'))?.[1]);
    for (let d = 0; d <= DAYS; d++)
      expect({ d, copies: subjects.filter((s) => s === `D${d}-${p.from.domain}`).length }).toEqual({ d, copies: 1 });
  }
  const summary: string[] = [`${DAYS} days in ${seconds.toFixed(0)} s; deferrals ${deferrals.length}`];
  for (const o of [A, B]) {
    const out = o.keyd.output();
    const certRenewals = [...out.matchAll(/keyd: renewed certificate (\S+):/g)].map((m) => m[1]!.split('/').pop());
    const crlRenewals = (out.match(/keyd: renewed CRL /g) ?? []).length;
    const warnings = out.split('\n').filter((l) => /WARNING/.test(l));
    summary.push(
      `${o.domain}: ${certRenewals.length} certificate renewals, ${crlRenewals} CRL renewals, key versions current in turn ${[...keysSeen.get(o.domain)!].join(',')}`,
    );
    // 30-day certificates renewed 10 days ahead: each at least twice in 60 days
    for (const f of CERT_FILES) expect({ f, renewed: certRenewals.filter((x) => x === f).length >= 2 }).toEqual({ f, renewed: true });
    // an 8-day CRL renewed 4 days ahead: about every 4 days
    expect(crlRenewals).toBeGreaterThanOrEqual(13);
    // 20-day keys renewed 5 days ahead
    expect(keysSeen.get(o.domain)!.size).toBeGreaterThanOrEqual(4);
    expect(warnings).toEqual([]);
    // every process took its renewed certificates without a restart
    expect(out).toMatch(/keyd: TLS certificate ".*keyd\.pem" reloaded/);
    const pub = o.publisher.output();
    for (const what of ['bundle-signer certificate', 'TLS certificate', 'keyd client certificate'])
      expect({ what, reloaded: pub.includes(`publisher: ${what} reloaded`) }).toEqual({ what, reloaded: true });
    const gw = o.haraka.logs();
    for (const what of ['sealing certificate', 'gateway client certificate', 'inspector client certificate'])
      expect({ what, reloaded: gw.includes(`ssmax: ${what} reloaded`) }).toEqual({ what, reloaded: true });
    const keydMetrics = await metrics(o.ports.ops.keyd);
    expect(keydMetrics).not.toMatch(/^ssmax_keyd_renewal_warning\{[^}]*\} 1$/m);
    expect(keydMetrics).toMatch(/^ssmax_keyd_certificate_expiry_timestamp_seconds\{file="[^"]*seal\.cert\.pem",renewable="true"\} \d+/m);
  }
  // every renewal is in keyd's audit chain, which verifies (read with keyd stopped, as an administrator would)
  await A.keyd.stop();
  const audit = execFileSync(
    process.execPath,
    [join(__dirname, '..', '..', 'bin', 'ssmax'), 'keyd', 'audit', 'verify', '--config', A.fx.configFile],
    { encoding: 'utf8', env: { ...saved } },
  );
  expect(audit).toMatch(/audit log intact: \d+ records/);
  console.log(summary.join('\n'));
});
