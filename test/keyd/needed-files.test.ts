/**
 * keyd as a real process (`ssmax keyd run`, the built CLI) and the files and
 * store it needs (docs/configuration.md, "Files a setting names";
 * docs/scaling.md, "One keyd per store"; docs/operations.md):
 *  - a file it needs that cannot be read or used stops it at start: exit 78,
 *    the setting and the file named;
 *  - a CRL that becomes unreadable while it runs: /health/ready 503 naming
 *    it, requests 503 `file-unavailable` (not 500), which the gateway turns
 *    into a 451 naming the setting;
 *  - one keyd per store: a second one exits 69 naming the store and the
 *    first one's pid; backup and audit verify still work beside it; restore
 *    is refused; after kill -9 the store is free at once;
 *  - backups: every file 0600, a used output folder 73.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/demo/haraka';
import { KeydClientError } from '../../src/keyd/client';
import { fromKeyd } from '../../src/keyd/client-ops';
import { GatewayError } from '../../src/mail/replies';
import { unavailableText } from '../../src/ops/server';
import { makeOrgFixture } from '../support/org-fixture';
import { type KeydProcess, clientFor, startKeydProcess } from '../support/keyd-process';
import { withOverrides } from '../../src/demo/network';

const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');

function ssmax(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The fixture's keyd.ini with `from` replaced by `to`, written as a new file beside it. */
function variant(configFile: string, name: string, from: string, to: string): string {
  const text = readFileSync(configFile, 'utf8');
  expect(text).toContain(from);
  const f = join(configFile, '..', name);
  writeFileSync(f, text.replace(from, to));
  return f;
}

describe('keyd refuses to start without a file it needs (78, the setting and the file named)', () => {
  const fx = makeOrgFixture();
  const dir = fx.dir;
  writeFileSync(join(dir, 'other.key'), fx.clients.admin.key);
  test.each([
    ['crls=org-ca.crl.pem,', 'crls=org-ca.crls.pem,', /\[pki\] crls: cannot read "[^"]*\/org-ca\.crls\.pem": no such file \(ENOENT\)/],
    ['crls=org-ca.crl.pem,', 'crls=org-ca.pem,', /\[pki\] crls: "[^"]*\/org-ca\.pem" is not a CRL/],
    ['cert=keyd.pem', 'cert=keyd.key', /\[tls\] cert: "[^"]*\/keyd\.key" holds no PEM certificate/],
    [
      'key=keyd.key',
      'key=other.key',
      /\[tls\] key: "[^"]*\/other\.key" is not the key of the certificate "[^"]*\/keyd\.pem" \(\[tls\] cert\)/,
    ],
    ['key=keyd.key', 'key=keyd.pem', /\[tls\] key: "[^"]*\/keyd\.pem" is not an unencrypted private key/],
    ['org_ca=org-ca.pem', 'org_ca=org-cа.pem', /\[pki\] org_ca: cannot read "[^"]*\/org-cа\.pem": no such file \(ENOENT\)/],
    ['client_ca=org-ca.pem', 'client_ca=missing.pem', /\[tls\] client_ca: cannot read "[^"]*\/missing\.pem": no such file/],
  ])('%s → %s', (from, to, message) => {
    const r = ssmax('keyd', 'run', '--config', variant(fx.configFile, 'bad-keyd.ini', from, to));
    expect({ code: r.code, err: r.err }).toEqual({ code: 78, err: expect.stringMatching(message) });
    expect(r.err).toMatch(/bad-keyd\.ini \[/); // the config file too
    expect(r.out).not.toMatch(/listening/);
  });
});

describe('a running keyd and its files, its store, its backups', () => {
  const fx = makeOrgFixture();
  let opsPort: number;
  let config: string;
  let keyd: KeydProcess;

  beforeAll(async () => {
    opsPort = await freePort();
    config = join(fx.dir, 'keyd-ops.ini');
    writeFileSync(config, withOverrides(`${readFileSync(fx.configFile, 'utf8')}\n[ops]\nlisten=127.0.0.1:${opsPort}\n`));
    keyd = await startKeydProcess(config);
  });
  afterAll(async () => {
    await keyd?.stop('SIGKILL');
  });

  const ready = async () => {
    const r = await fetch(`http://127.0.0.1:${opsPort}/health/ready`);
    return { status: r.status, body: (await r.json()) as { checks: Record<string, string> } };
  };

  test('a CRL that becomes unreadable: /health/ready 503 naming it, requests 503 file-unavailable, the gateway a 451 naming the setting', async () => {
    expect((await ready()).status).toBe(200);
    expect((await ready()).body.checks.files).toBe('ok');
    const crl = join(fx.dir, 'org-ca.crl.pem');
    renameSync(crl, `${crl}.away`);
    try {
      const r = await ready();
      expect(r.status).toBe(503);
      expect(r.body.checks.files).toMatch(/\[pki\] crls: cannot read "[^"]*\/org-ca\.crl\.pem": no such file \(ENOENT\)/);
      const admin = clientFor(fx, keyd.port, fx.clients.admin); // a new connection: its certificate is checked against the CRLs
      let err: unknown;
      try {
        await admin.call('GET', '/v1/public');
      } catch (e) {
        err = e;
      } finally {
        admin.close();
      }
      expect(err).toBeInstanceOf(KeydClientError);
      const e = err as KeydClientError;
      expect([e.status, e.code, e.details?.setting]).toEqual([503, 'file-unavailable', '[pki] crls']);
      expect(e.message).toMatch(/keyd cannot use a file it needs: .*\[pki\] crls: cannot read "[^"]*\/org-ca\.crl\.pem"/);
      const g = fromKeyd(e) as GatewayError;
      expect(g).toBeInstanceOf(GatewayError);
      expect([g.reply.code, g.reply.status, g.reply.text]).toEqual([
        451,
        '4.7.5',
        'Key service unavailable: keyd cannot use the file of its [pki] crls (see its log)',
      ]);
      expect(keyd.stderr()).not.toMatch(/ 500 /);
      // readiness of a gateway or inspector: the reason in words, not a class name
      expect(unavailableText(g)).toMatch(/^unavailable: keyd cannot use a file it needs: .*\[pki\] crls: cannot read /);
      const down = fromKeyd(new KeydClientError('unreachable', 'keyd unreachable: connect ECONNREFUSED 127.0.0.1:9', 0));
      expect(unavailableText(down)).toBe('unavailable: keyd unreachable: connect ECONNREFUSED 127.0.0.1:9');
    } finally {
      renameSync(`${crl}.away`, crl);
    }
    expect((await ready()).status).toBe(200);
    const admin = clientFor(fx, keyd.port, fx.clients.admin);
    await expect(admin.call('GET', '/v1/public')).resolves.toHaveProperty('domain', fx.domain);
    admin.close();
  });

  test('a second keyd on the same store exits 69 naming the store and the first one; backup, audit verify and rotate work beside it; restore is refused', async () => {
    const second = ssmax('keyd', 'run', '--config', variant(config, 'second.ini', `listen=127.0.0.1:${opsPort}`, 'listen='));
    expect(second.code).toBe(69);
    expect(second.err).toMatch(new RegExp(`keyd store "[^"]*/data" is in use by another keyd \\(pid ${keyd.proc.pid}\\)`));
    expect(second.out).not.toMatch(/listening/);

    expect(ssmax('keyd', 'audit', 'verify', '--config', config)).toMatchObject({ code: 0, out: expect.stringMatching(/audit log intact/) });
    expect(ssmax('keyd', 'rotate', '--config', config)).toMatchObject({ code: 0, out: expect.stringMatching(/:v2 created/) });

    const out = join(mkdtempSync(join(tmpdir(), 'ssmax-bk-')), 'backup');
    const b = ssmax('keyd', 'backup', '--config', config, '--out', out);
    expect(b).toMatchObject({ code: 0, out: expect.stringMatching(/verified/) });
    const modes = Object.fromEntries(readdirSync(out).map((f) => [f, (statSync(join(out, f)).mode & 0o777).toString(8)]));
    expect(modes).toEqual({ 'data.mdb': '600', 'ssmax-keyd-backup.json': '600' });
    expect((statSync(out).mode & 0o777).toString(8)).toBe('700');
    const again = ssmax('keyd', 'backup', '--config', config, '--out', out);
    expect(again.code).toBe(73);
    expect(again.err).toMatch(/Backup folder "[^"]*" is not empty; give a new one/);

    const restore = ssmax('keyd', 'restore', '--config', config, '--from', out);
    expect(restore.code).toBe(69);
    expect(restore.err).toMatch(/is in use by another keyd/);
  });

  test('after kill -9 the store is free at once: no stale lock', async () => {
    const pid = keyd.proc.pid;
    await keyd.stop('SIGKILL');
    keyd = await startKeydProcess(config);
    expect(keyd.proc.pid).not.toBe(pid);
    expect((await ready()).status).toBe(200);
  });
});
