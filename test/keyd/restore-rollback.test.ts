/**
 * What a restore of an older backup must not roll back (docs/operations.md, "Backups and restore";
 * src/keyd/rollback.ts), what the offline tools must not create (src/keyd/store.ts), and the audit log's
 * sealed head (src/keyd/audit.ts):
 *  - backup, then a rotation (v2) and a revocation; the host is lost; restore: the next rotation makes no
 *    key id the lost host made (never a.example:v2 with another key) and the revoked user stays revoked;
 *  - `ssmax keyd audit verify`, `rotate` and `backup` on an absent or empty data_dir exit 66 and create nothing;
 *  - the newest audit records deleted and the head pointed at an earlier record: refused by verify, and by
 *    restore in a backup (its manifest edited to match, or not).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';
import { backupKeyd, restoreKeyd } from '../../src/keyd/backup';
import { loadKeydConfig, type KeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, openKeyd } from '../../src/keyd/daemon';
import { CrlRenewer, crlPolicyOf, orgCaOf } from '../../src/keyd/renewal';
import type { Actor } from '../../src/keyd/service';
import { KeydStore } from '../../src/keyd/store';
import { issueUserCertificate } from '../../src/pki/issue';
import { generateP256KeyPair } from '../../src/pki/keys';
import { parseCertificate } from '../../src/pki/certificate';
import { createCrl } from '../../src/pki/crl';
import { markCrlRevocations } from '../../src/keyd/rollback';
import { caStateNote, keydCaRevocations } from '../../src/keyd/ca-revocations';

jest.setTimeout(120000);

const DAY = 86400000;
const ADMIN: Actor = { role: 'admin', name: 'test administrator' };
const BIN = resolve(__dirname, '..', '..', 'bin', 'ssmax');
const ssmax = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60000 });

function signingCert(fx: OrgFixture, email: string, code: string): string {
  const now = Date.now();
  return issueUserCertificate(fx.orgCa, {
    email,
    pseudonym: code,
    code,
    purpose: 'signing',
    publicKey: generateP256KeyPair().publicKey,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 30 * DAY),
  }).pem;
}

/** Opens keyd's parts with the CRL renewer a running keyd has (revocations sign through it). */
function open(config: KeydConfig) {
  const parts = openKeyd(config);
  parts.service.crls = new CrlRenewer(config.pki.crls, orgCaOf(config), crlPolicyOf(config), parts.audit);
  return parts;
}

function keysOf(config: KeydConfig): Map<string, string> {
  const parts = openKeyd(config);
  try {
    return new Map(parts.keyring.all().map((r) => [r.keyId, r.publicKey]));
  } finally {
    void parts.store.close();
  }
}

describe('restore of a backup older than a rotation and a revocation', () => {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-rollback-'));
  let fx: OrgFixture;
  let config: KeydConfig;
  const backup = join(base, 'backup');
  let lost: Map<string, string>;

  beforeAll(async () => {
    fx = provisionOrg(join(base, 'host'), { domain: 'a.example' });
    config = loadKeydConfig(fx.configFile);
    let parts = open(config);
    await parts.service.maintain(KEYD_ACTOR); // v1
    await parts.service.addUser(ADMIN, {
      address: 'mallory@a.example',
      code: 'U-4001',
      identityRef: 'E-4001',
      signingCertificate: signingCert(fx, 'mallory@a.example', 'U-4001'),
    });
    await parts.store.close();
    await backupKeyd(config, backup);
    // after the backup: a rotation (v2, published) and a revocation
    parts = open(config);
    expect((await parts.service.maintain({ ...KEYD_ACTOR, name: 'ssmax keyd rotate' }, true)).map((c) => c.keyId)).toContain(
      'a.example:v2',
    );
    await parts.service.revokeUser(ADMIN, 'mallory@a.example', { reason: 'keyCompromise' });
    await parts.store.close();
    lost = keysOf(config);
    expect([...lost.keys()]).toEqual(['a.example:v1', 'a.example:v2']);
    // the host is lost (the CRL, kept with the org CA's files, survives)
    renameSync(config.dataDir, join(base, 'data-lost'));
  });

  test('no key id is made again with another key; the revoked user stays revoked; the restore says so', async () => {
    const report = await restoreKeyd(config, backup);
    expect(report.newestKeyId).toBe('a.example:v1');
    expect(report.nextOrgVersion).toBeGreaterThan(2);
    expect(report.revoked).toEqual(['mallory@a.example']);
    const parts = open(config);
    try {
      const mallory = await parts.service.getUser(ADMIN, 'mallory@a.example');
      expect(mallory).toMatchObject({ status: 'suspended', revoked: expect.any(Number) });
      // mail to the lost v2 is an unknown key, not a wrong key
      expect(() => parts.keyring.usable('a.example:v2', new Date())).toThrow(/No key "a\.example:v2"/);
      const created = (await parts.service.maintain({ ...KEYD_ACTOR, name: 'ssmax keyd rotate' }, true)).find(
        (c) => c.change === 'created',
      )!;
      expect(created.keyId).toBe(`a.example:v${report.nextOrgVersion}`);
      for (const r of parts.keyring.all()) if (lost.has(r.keyId)) expect(r.publicKey).toBe(lost.get(r.keyId));
      const audit = parts.audit.tail(20).map((r) => r.op);
      expect(audit).toEqual(expect.arrayContaining(['keyd.restore', 'registry.revoke']));
      expect(parts.audit.verify()).toEqual({ ok: true, count: expect.any(Number) }); // sealed
    } finally {
      await parts.store.close();
    }
  });

  test('--next-version: the next org key is that version', async () => {
    rmSync(config.dataDir, { recursive: true, force: true });
    const report = await restoreKeyd(config, backup, { nextVersion: 3 });
    expect(report.nextOrgVersion).toBe(3);
    const parts = open(config);
    try {
      const created = (await parts.service.maintain({ ...KEYD_ACTOR, name: 'ssmax keyd rotate' }, true)).find(
        (c) => c.change === 'created',
      )!;
      expect(created.keyId).toBe('a.example:v3');
    } finally {
      await parts.store.close();
    }
  });
});

describe('the offline tools never create a store', () => {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-nostore-'));
  const fx = provisionOrg(join(base, 'host'), { domain: 'a.example' });
  const config = loadKeydConfig(fx.configFile);

  test.each([
    ['audit verify', ['keyd', 'audit', 'verify', '--config', fx.configFile]],
    ['rotate', ['keyd', 'rotate', '--config', fx.configFile]],
    ['backup', ['keyd', 'backup', '--config', fx.configFile, '--out', join(base, 'bk')]],
  ])('%s on an absent, then an empty data_dir: exit 66, nothing created', (_name, args) => {
    rmSync(config.dataDir, { recursive: true, force: true });
    let r = ssmax(...args);
    expect({ status: r.status, err: r.stderr }).toEqual({ status: 66, err: expect.stringMatching(/No keyd store in .*data/) });
    expect(existsSync(config.dataDir)).toBe(false);
    expect(existsSync(join(base, 'bk'))).toBe(false);
    mkdirSync(config.dataDir, { mode: 0o700 });
    r = ssmax(...args);
    expect(r.status).toBe(66);
    expect(readdirSync(config.dataDir)).toEqual([]);
  });

  test('KeydStore.open without create refuses a missing store', () => {
    expect(() => KeydStore.open(join(base, 'nowhere'), { create: false })).toThrow(/No keyd store/);
    expect(existsSync(join(base, 'nowhere'))).toBe(false);
  });
});

describe('deleting the newest audit records', () => {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-trunc-'));
  const fx = provisionOrg(join(base, 'host'), { domain: 'a.example' });
  const config = loadKeydConfig(fx.configFile);

  /** Without the master key: removes the last record and points the head at the one before (keeping what else it holds). */
  async function truncate(dir: string): Promise<void> {
    const s = KeydStore.open(dir, { create: false });
    const head = s.meta.get('audit-head') as { seq: number; mac: string; seal?: string };
    const prev = s.audit.get(head.seq - 1)!;
    await s.audit.remove(head.seq);
    await s.meta.put('audit-head', { seq: head.seq - 1, mac: prev.mac });
    await s.close();
  }

  beforeAll(async () => {
    const parts = openKeyd(config);
    await parts.service.maintain(KEYD_ACTOR);
    await parts.service.maintain({ ...KEYD_ACTOR, name: 'disclosure of alice (to hide)' }, true);
    expect(parts.audit.verify()).toMatchObject({ ok: true, count: 3 });
    await parts.store.close();
  });

  test('in a backup: refused by restore, with the manifest edited to match or not', async () => {
    const bk = join(base, 'bk');
    const m = await backupKeyd(config, bk);
    expect(m.auditRecords).toBe(3);
    await truncate(bk);
    const manifestFile = join(bk, 'ssmax-keyd-backup.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, unknown>;
    const sha256 = createHash('sha256')
      .update(readFileSync(join(bk, 'data.mdb')))
      .digest('hex');
    const target = { ...config, dataDir: join(base, 'restored') };
    await expect(restoreKeyd(target, bk)).rejects.toThrow(/does not match its manifest/);
    // the manifest's SHA-256 recomputed: its MAC (under the master key) no longer verifies
    writeFileSync(manifestFile, JSON.stringify({ ...manifest, sha256 }));
    await expect(restoreKeyd(target, bk)).rejects.toThrow(/does not verify under the master key/);
    writeFileSync(manifestFile, JSON.stringify({ ...manifest, sha256, auditRecords: 2, auditHead: { seq: 2, mac: 'a'.repeat(64) } }));
    await expect(restoreKeyd(target, bk)).rejects.toThrow(/does not verify under the master key/);
    expect(existsSync(target.dataDir)).toBe(false);
  });

  test('in the store: verify refuses it, and keyd does not extend it', async () => {
    await truncate(config.dataDir);
    const parts = openKeyd(config);
    try {
      expect(parts.audit.verify()).toMatchObject({ ok: false, reason: expect.stringMatching(/seal is missing: records deleted after 2/) });
      await expect(parts.service.maintain({ ...KEYD_ACTOR, name: 'after' }, true)).rejects.toThrow(/not sealed/);
    } finally {
      await parts.store.close();
    }
    const r = ssmax('keyd', 'audit', 'verify', '--config', fx.configFile);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/audit log BROKEN/);
  });
});

describe("the org CA's CRL at keyd start: revocations make a user's revocation final, holds do not", () => {
  test('a certificate on hold (certificateHold) leaves its user active; a revoked one marks its user revoked', async () => {
    const fx = provisionOrg(mkdtempSync(join(tmpdir(), 'ssmax-rollback-hold-')), { domain: 'a.example' });
    const config = loadKeydConfig(fx.configFile);
    const parts = open(config);
    try {
      const held = signingCert(fx, 'held@a.example', 'U-5001');
      const gone = signingCert(fx, 'gone@a.example', 'U-5002');
      await parts.service.addUser(ADMIN, { address: 'held@a.example', code: 'U-5001', identityRef: 'E-5001', signingCertificate: held });
      await parts.service.addUser(ADMIN, { address: 'gone@a.example', code: 'U-5002', identityRef: 'E-5002', signingCertificate: gone });
      const now = new Date();
      const crl = createCrl(fx.orgCa, {
        entries: [
          { serial: parseCertificate(held).serial, revokedAt: now, reason: 'certificateHold' },
          { serial: parseCertificate(gone).serial, revokedAt: now, reason: 'superseded' },
        ],
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + DAY),
        crlNumber: 1000,
      });
      writeFileSync(config.pki.crls[0]!, crl.pem);
      const { marked, problems } = await markCrlRevocations(parts.store, parts.audit, config, now, 'in the test');
      expect(problems).toEqual([]);
      expect(marked).toEqual(['gone@a.example']);
      expect(await parts.service.getUser(ADMIN, 'held@a.example')).toMatchObject({ status: 'active' });
      expect(await parts.service.getUser(ADMIN, 'gone@a.example')).toMatchObject({ status: 'suspended', revoked: expect.any(Number) });
    } finally {
      await parts.store.close();
    }
  });

  test("the org CA's ca.json counts as its CRLs do (beside org_ca_cert, or where [pki] org_ca_state names it); revocations that cannot all be read apply none and say so, as for renewal", async () => {
    const fx = provisionOrg(mkdtempSync(join(tmpdir(), 'ssmax-rollback-state-')), { domain: 'a.example' });
    const config = loadKeydConfig(fx.configFile);
    expect(config.pki.orgCaState).toBe('auto'); // the shipped default
    const parts = open(config);
    try {
      const users = ['beside', 'elsewhere', 'later'].map((name, i) => {
        const cert = signingCert(fx, `${name}@a.example`, `U-60${i}`);
        return { address: `${name}@a.example`, cert, serial: parseCertificate(cert).serial, code: `U-60${i}` };
      });
      for (const u of users)
        await parts.service.addUser(ADMIN, { address: u.address, code: u.code, identityRef: `E-${u.code}`, signingCertificate: u.cert });
      const now = new Date();
      const caJson = (dir: string, serials: string[]) => {
        mkdirSync(dir, { recursive: true });
        const file = join(dir, 'ca.json');
        writeFileSync(
          file,
          JSON.stringify({
            kind: 'org',
            issued: [],
            revoked: serials.map((serial) => ({ serial, revokedAt: now.toISOString(), reason: 'keyCompromise' })),
          }),
        );
        return file;
      };
      const mark = (c: KeydConfig) => markCrlRevocations(parts.store, parts.audit, c, now, 'in the test');
      const status = async (address: string) => (await parts.service.getUser(ADMIN, address)).status;

      // the CA folder elsewhere, keyd not told (auto): its ca.json is not read, and keyd's start says so
      const caDir = join(fx.dir, 'org-ca-folder');
      const elsewhere = caJson(caDir, [users[1]!.serial]);
      expect(await mark(config)).toEqual({ marked: [], problems: [] });
      expect(caStateNote(config)).toMatch(/no ca\.json beside \[pki\] org_ca_cert .* set \[pki\] org_ca_state/);
      // [pki] org_ca_state names a ca.json that is not there: an error, nothing applied (never "no revocations")
      const missing = { ...config, pki: { ...config.pki, orgCaState: join(fx.dir, 'no-such-ca') } };
      const gone = await mark(missing);
      expect(gone.marked).toEqual([]);
      expect(gone.problems).toEqual([
        expect.stringMatching(/cannot be read, so none were applied: Cannot read CA state .*no-such-ca\/ca\.json.*no such file/),
      ]);
      expect(() => keydCaRevocations(missing)()).toThrow(/no such file/); // the same reader renewal asks, the same refusal
      // no CRL of the org CA in [pki] crls (the root's only): an error here too, as for renewal
      const rootOnly = { ...config, pki: { ...config.pki, crls: config.pki.crls.filter((f) => !f.endsWith('org-ca.crl.pem')) } };
      expect(rootOnly.pki.crls.length).toBeLessThan(config.pki.crls.length);
      expect((await mark(rootOnly)).problems).toEqual([expect.stringMatching(/no CRL of the org CA/)]);
      // a CRL that cannot be read: nothing applied, not even ca.json's, and said
      const garbage = join(fx.dir, 'garbage.crl.pem');
      writeFileSync(garbage, 'not a CRL\n');
      const bad = await mark({ ...config, pki: { ...config.pki, crls: [...config.pki.crls, garbage], orgCaState: caDir } });
      expect(bad).toEqual({ marked: [], problems: [expect.stringMatching(/cannot read the CRL ".*garbage\.crl\.pem"/)] });
      expect(await status('elsewhere@a.example')).toBe('active');

      // told where the CA folder is: its revocation marks the user revoked
      expect(await mark({ ...config, pki: { ...config.pki, orgCaState: caDir } })).toEqual({
        marked: ['elsewhere@a.example'],
        problems: [],
      });
      // the file itself named, too
      expect(keydCaRevocations({ ...config, pki: { ...config.pki, orgCaState: elsewhere } })().get(users[1]!.serial)).toMatchObject({
        reason: 'keyCompromise',
        where: `"${elsewhere}" (keyCompromise)`,
      });
      // a ca.json beside [pki] org_ca_cert (auto): read as before by renewal, and now at start and restore too
      caJson(join(config.pki.orgCaCert!, '..'), [users[0]!.serial]);
      expect(caStateNote(config)).toBeUndefined();
      expect(await mark(config)).toEqual({ marked: ['beside@a.example'], problems: [] });
      expect(await status('beside@a.example')).toBe('suspended');
      expect(await status('later@a.example')).toBe('active');
      // none: the CRLs only, said by the setting (no note)
      expect(caStateNote({ ...config, pki: { ...config.pki, orgCaState: 'none' } })).toBeUndefined();
    } finally {
      await parts.store.close();
    }
  });
});
