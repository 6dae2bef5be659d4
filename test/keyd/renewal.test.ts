/**
 * Nothing expires unattended (docs/operations.md, "Renewals"): an
 * organisation's keyd (real LMDB store, HTTPS with mutual TLS) and bundle
 * publisher (real HTTPS) run on a simulated clock through 60 days, the
 * schedules driven in steps of 6 hours. keyd re-signs the org CA's CRL
 * before it lapses (each renewal audited) and rotates key versions; the
 * publisher republishes; at every step the bundle a peer would fetch verifies
 * at that time (valid CRLs inside, not expired), and the bundle the peer
 * fetched at the previous step still verified when the step began. A CRL
 * keyd cannot sign (the root's) gets a warning line and the warning metric.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { loadKeydConfig } from '../../src/keyd/config';
import { type RunningKeyd, startKeyd } from '../../src/keyd/daemon';
import { CRL_RENEWAL_DEFAULTS, CrlRenewer, crlPolicyOf } from '../../src/keyd/renewal';
import { keydMetrics } from '../../src/ops/keyd-ops';
import { verifyBundle } from '../../src/pki/bundle';
import { createCrl, parseCrl } from '../../src/pki/crl';
import { loadPublisherConfig, openPublisher } from '../../src/publisher/config';
import { type Org, makeOrg, wholeSecondNow } from '../directory/fixtures';
import { writePublisherFiles, writePublisherIni } from '../publisher/fixtures';
import { withOverrides } from '../../src/demo/network';

jest.setTimeout(240000);

const DAY = 86400000;
const HOUR = 3600000;

function fetchBundle(org: Org, port: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/.well-known/ssmax/bundle',
        servername: `ssmax.${org.domain}`,
        ca: [org.fx.root.certificate.pem],
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('60 days on a simulated clock', () => {
  let org: Org;
  let keyd: RunningKeyd | undefined;
  let sim: number;
  const lines: string[] = [];

  afterAll(async () => {
    await keyd?.stop();
  });

  test('CRLs renewed and audited, keys rotated, the bundle a peer sees always verifies', async () => {
    org = makeOrg('a.example');
    const dir = org.fx.dir;
    sim = wholeSecondNow();
    // the root's CRL is the SSMAX root operator's to publish (long-lived here); the org CA's is keyd's to renew
    writeFileSync(
      join(dir, 'root-long.crl.pem'),
      createCrl(org.fx.root, { entries: [], thisUpdate: new Date(sim - 1000), nextUpdate: new Date(sim + 400 * DAY), crlNumber: 5 }).pem,
    );
    const keydIni = readFileSync(org.fx.configFile, 'utf8')
      .replace('crls=org-ca.crl.pem,root.crl.pem', 'crls=org-ca.crl.pem,root-long.crl.pem')
      .replace(/\[keys\][^[]*/, '[keys]\nvalidity_days=20\nrenew_before_days=5\ngrace_days=5\nschedule_seconds=3600\n');
    writeFileSync(org.fx.configFile, `${keydIni}\n[crl]\nrenew_at_days_left=3\nlifetime_days=7\nwarn_at_days_left=3\n`);
    const firstCrl = parseCrl(readFileSync(join(dir, 'org-ca.crl.pem'), 'utf8'));
    expect(firstCrl.entries.size).toBe(1); // provisioned with one revocation, which every renewal keeps

    keyd = await startKeyd(loadKeydConfig(org.fx.configFile), { clock: () => new Date(sim), log: (l) => lines.push(l) });
    writePublisherFiles(org);
    const pubIni = writePublisherIni(org, { keydPort: keyd.port, lifetime: 86400, poll: '3600' });
    writeFileSync(
      pubIni,
      readFileSync(pubIni, 'utf8').replace('crls=pub-org-ca.crl.pem,pub-root.crl.pem', 'crls=org-ca.crl.pem,root-long.crl.pem'),
    );
    const { publisher, close } = openPublisher(loadPublisherConfig(pubIni), { clock: () => sim, log: (l) => lines.push(l) });
    await publisher.start();
    const roots = [org.fx.root.certificate.pem];
    let held: string | undefined; // the bundle a peer fetched at the previous step
    const currentKeys = new Set<string>(); // versions
    const crlNumbers = new Set<bigint>();
    let steps = 0;
    try {
      const end = sim + 60 * DAY;
      while (sim < end) {
        sim += 6 * HOUR;
        steps++;
        // before anything runs at the new time: what peers hold is still good
        if (held) {
          const still = verifyBundle(held, { domain: org.domain, roots, time: new Date(sim) });
          expect({ day: (steps * 6) / 24, status: still.status, why: still.message }).toMatchObject({
            day: (steps * 6) / 24,
            status: 'valid',
          });
        }
        for (const f of ['org-ca.crl.pem', 'root-long.crl.pem']) {
          const crl = parseCrl(readFileSync(join(dir, f), 'utf8'));
          expect(crl.nextUpdate!.getTime()).toBeGreaterThan(sim);
        }
        await keyd.schedule();
        await publisher.tick();
        const got = await fetchBundle(org, publisher.port);
        expect({ step: steps, status: got.status }).toEqual({ step: steps, status: 200 });
        const v = verifyBundle(got.text, { domain: org.domain, roots, time: new Date(sim) });
        expect({ step: steps, status: v.status, why: v.message }).toMatchObject({ step: steps, status: 'valid' });
        if (v.status === 'valid') currentKeys.add(`v${v.bundle.currentKey.version}`);
        const crl = parseCrl(readFileSync(join(dir, 'org-ca.crl.pem'), 'utf8'));
        crlNumbers.add(crl.crlNumber!);
        expect(crl.entries.size).toBe(1);
        held = got.text;
      }
    } finally {
      await publisher.stop();
      close();
    }
    expect(steps).toBe(240);
    // 60 days of a 7-day CRL renewed 3 days before nextUpdate: every 4 days
    const renewals = keyd.audit.tail(100000).filter((r) => r.op === 'crl.renew');
    expect(renewals.length).toBeGreaterThanOrEqual(14);
    expect(crlNumbers.size).toBe(renewals.length + (crlNumbers.has(firstCrl.crlNumber!) ? 1 : 0));
    expect(
      renewals.every(
        (r) => r.result === 'ok' && r.actor === 'keyd schedule' && /org-ca\.crl\.pem: number \d+ with 1 revocation/.test(r.reason ?? ''),
      ),
    ).toBe(true);
    // 20-day keys renewed 5 days before expiry: at least three versions were current
    expect(currentKeys.size).toBeGreaterThanOrEqual(3);
    expect(keyd.audit.verify()).toMatchObject({ ok: true });
    expect(lines.filter((l) => /WARNING/.test(l))).toEqual([]);
    const metrics = await keydMetrics(keyd, () => new Date(sim), keyd.renewer).metrics();
    expect(metrics).toMatch(/ssmax_keyd_renewal_warning\{item="crl:[^"]*org-ca\.crl\.pem"\} 0/);
    expect(metrics).toMatch(/ssmax_keyd_crl_next_update_timestamp_seconds\{crl="[^"]*org-ca\.crl\.pem",renewable="true"\} \d+/);
  });

  test("a CRL keyd cannot sign (the root's) is left alone, with a warning line and the warning metric inside its window", async () => {
    const dir = org.fx.dir;
    const file = join(dir, 'root-short.crl.pem');
    const now = wholeSecondNow();
    const pem = createCrl(org.fx.root, {
      entries: [],
      thisUpdate: new Date(now - 1000),
      nextUpdate: new Date(now + 5 * DAY),
      crlNumber: 7,
    }).pem;
    writeFileSync(file, pem);
    const log: string[] = [];
    const renewer = new CrlRenewer(
      [file],
      org.fx.orgCa,
      { renew: true, renewBeforeMs: 3 * DAY, validityMs: 7 * DAY, warnBeforeMs: 3 * DAY },
      keyd!.audit,
      (l) => log.push(l),
    );
    expect((await renewer.run(new Date(now + DAY)))[0]).toMatchObject({ renewable: false, warning: false });
    expect(log).toEqual([]);
    const [late] = await renewer.run(new Date(now + 3 * DAY));
    expect(late).toMatchObject({ renewable: false, warning: true });
    expect(log.join('\n')).toMatch(
      /WARNING CRL ".*root-short\.crl\.pem" .* expires at .* keyd cannot renew it \(it is not issued by the org CA keyd holds\)/,
    );
    expect(readFileSync(file, 'utf8')).toBe(pem); // untouched
    const metrics = await keydMetrics(keyd!, () => new Date(now), renewer).metrics();
    expect(metrics).toMatch(/ssmax_keyd_renewal_warning\{item="crl:[^"]*root-short\.crl\.pem"\} 1/);
  });
});

test('config/ssmax-keyd.ini writes out every [crl] default with its built-in value; a bad one is refused naming it', () => {
  const shipped = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-keyd.ini'), 'utf8');
  const from = shipped.indexOf('\n[crl]\n');
  const next = shipped.slice(from + 7).search(/^\[[a-z_]+\]$/m);
  const section = shipped.slice(from, next < 0 ? undefined : from + 7 + next);
  const commented = Object.fromEntries([...section.matchAll(/^;([a-z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
  expect(commented).toEqual(Object.fromEntries(Object.entries(CRL_RENEWAL_DEFAULTS).map(([k, v]) => [k, String(v)])));
  const org = makeOrg('c.example');
  writeFileSync(
    org.fx.configFile,
    withOverrides(`${readFileSync(org.fx.configFile, 'utf8')}\n[crl]\nlifetime_days=2\nrenew_at_days_left=3\n`),
  );
  expect(() => crlPolicyOf(loadKeydConfig(org.fx.configFile))).toThrow(/\[crl\] renew_at_days_left: must be less than lifetime_days/);
});
