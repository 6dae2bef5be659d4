/**
 * The restore drill (docs/operations.md, "Backups"), with real processes:
 * keyd runs (`ssmax keyd run`, mutual TLS, LMDB on disk) and serves blinded
 * decryptions while `ssmax keyd backup` copies its store; the master key is
 * split into shares. The host is then lost: on a fresh folder the master key
 * is restored from two shares, `ssmax keyd restore` puts the store back, a
 * keyd started there opens mail encrypted before the backup, and the audit
 * chain verifies. A damaged copy, a non-empty data_dir and another master key
 * are refused.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultGroup } from '../../src/crypto/backend';
import { systemRng } from '../../src/crypto';
import { type ServiceProcess, startService } from '../../src/demo/network';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';
import { collect, decryptMessage, encryptMessage, listCapsules } from '../../src/envelope';
import { KeydOps } from '../../src/keyd/client-ops';
import { KeydClient } from '../../src/keyd/client';
import { type BackupManifest, manifestMac } from '../../src/keyd/backup';
import { loadKeydConfig } from '../../src/keyd/config';
import { SecretWrapper, createMasterKeyFile, loadMasterKey } from '../../src/keyd/master-key';
import { KeydStore } from '../../src/keyd/store';

jest.setTimeout(120000);

const BIN = resolve(__dirname, '..', '..', 'bin', 'ssmax');
const ssmax = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60000 });
/** The same, without blocking this process (its requests to keyd go on meanwhile). */
function ssmaxAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    p.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    p.on('close', (status) => done({ status, stdout, stderr }));
  });
}

function opsFor(fx: OrgFixture, port: number): { ops: KeydOps; close(): void } {
  const client = (role: 'gateway' | 'inspector') =>
    new KeydClient({
      url: `https://127.0.0.1:${port}`,
      servername: `keyd.${fx.domain}`,
      cert: fx.clients[role].cert,
      key: fx.clients[role].key,
      ca: fx.caPem,
    });
  const g = client('gateway');
  const i = client('inspector');
  return {
    ops: new KeydOps(defaultGroup, g, i),
    close: () => {
      g.close();
      i.close();
    },
  };
}

async function open(ops: KeydOps, message: Buffer): Promise<Buffer> {
  const [capsule] = await listCapsules(message);
  const pub = await ops.orgKeys();
  const key = pub.keys.find((k) => k.keyId === capsule!.keyId)!;
  const { messageKey } = await ops.messageKey(capsule!, new Uint8Array(Buffer.from(key.publicKey, 'hex')));
  return collect(decryptMessage(message, { messageKey }, { group: defaultGroup }));
}

describe('restore drill', () => {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-drill-'));
  let fx: OrgFixture;
  let keyd: ServiceProcess | undefined;
  let restored: ServiceProcess | undefined;
  const original = Buffer.from(
    'From: alice@a.example\r\nTo: bob@a.example\r\nSubject: before the backup\r\n\r\nDrill marker Kestrel-4410\r\n',
  );
  let encrypted: Buffer;
  const backupDir = join(base, 'backup');

  afterAll(async () => {
    await keyd?.stop();
    await restored?.stop();
  });

  test('backup while keyd serves; master key in shares', async () => {
    fx = provisionOrg(join(base, 'host1'), { domain: 'a.example' });
    keyd = await startService(['keyd', 'run', '--config', fx.configFile], /keyd listening on [^:]+:(\d+)/);
    const { ops, close } = opsFor(fx, keyd.port);
    try {
      const pub = await ops.orgKeys();
      const current = pub.keys.find((k) => k.keyId === pub.current)!;
      encrypted = await collect(
        encryptMessage(original, [{ keyId: current.keyId, publicKey: new Uint8Array(Buffer.from(current.publicKey, 'hex')) }], {
          group: defaultGroup,
          rng: systemRng,
        }),
      );
      expect(await open(ops, encrypted)).toEqual(original);
      // decryptions go on while the backup runs
      const busy = Promise.all(Array.from({ length: 20 }, () => open(ops, encrypted)));
      const r = await ssmaxAsync('keyd', 'backup', '--config', fx.configFile, '--out', backupDir);
      expect({ status: r.status, err: r.stderr }).toEqual({ status: 0, err: '' });
      expect(r.stdout).toMatch(/keyd backup of a\.example written to .*: \d+ audit records, verified; sha256 [0-9a-f]{64}/);
      for (const got of await busy) expect(got).toEqual(original);
    } finally {
      close();
    }
    expect(readdirSync(backupDir).sort()).toEqual(['data.mdb', 'ssmax-keyd-backup.json']);
    const manifest = JSON.parse(readFileSync(join(backupDir, 'ssmax-keyd-backup.json'), 'utf8')) as {
      auditRecords: number;
      domain: string;
    };
    expect(manifest.domain).toBe('a.example');
    expect(manifest.auditRecords).toBeGreaterThanOrEqual(2);
    mkdirSync(join(base, 'shares'), { mode: 0o700 });
    const shares = ssmax(
      'keyd',
      'backup-master',
      '--config',
      fx.configFile,
      '--shares',
      '3',
      '--threshold',
      '2',
      '--out-dir',
      join(base, 'shares'),
    );
    expect({ status: shares.status, err: shares.stderr }).toEqual({ status: 0, err: '' });
    await keyd.stop(); // the host is lost
  });

  test('a fresh host: master key from two shares, the store restored, old mail opens, the audit chain verifies', async () => {
    const host2 = join(base, 'host2');
    mkdirSync(host2);
    // the configuration and certificates come from configuration management; no data, no master key
    for (const f of readdirSync(fx.dir))
      if (/\.(pem|key|ini)$/.test(f) && f !== 'master.key') copyFileSync(join(fx.dir, f), join(host2, f));
    const config = join(host2, 'keyd.ini');
    const master = ssmax(
      'keyd',
      'restore-master',
      '--out',
      join(host2, 'master.key'),
      join(base, 'shares', 'share-1.txt'),
      join(base, 'shares', 'share-3.txt'),
    );
    expect({ status: master.status, err: master.stderr }).toMatchObject({ status: 0 });
    const r = ssmax('keyd', 'restore', '--config', config, '--from', backupDir);
    expect({ status: r.status, err: r.stderr }).toEqual({ status: 0, err: '' });
    expect(r.stdout).toMatch(/restored into .*host2\/data: audit chain verified/);
    expect(ssmax('keyd', 'audit', 'verify', '--config', config).status).toBe(0);
    restored = await startService(['keyd', 'run', '--config', config], /keyd listening on [^:]+:(\d+)/);
    const { ops, close } = opsFor(fx, restored.port);
    try {
      expect(await open(ops, encrypted)).toEqual(original);
    } finally {
      close();
    }
    await restored.stop();
    expect(ssmax('keyd', 'audit', 'verify', '--config', config).status).toBe(0);
  });

  test('refused: a non-empty data_dir, a damaged copy, another master key', () => {
    const host2 = join(base, 'host2');
    const again = ssmax('keyd', 'restore', '--config', join(host2, 'keyd.ini'), '--from', backupDir);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/data_dir ".*" is not empty: stop keyd/);

    const host3 = join(base, 'host3');
    mkdirSync(host3);
    for (const f of readdirSync(host2)) if (/\.(pem|key|ini)$/.test(f)) copyFileSync(join(host2, f), join(host3, f));
    const damaged = join(base, 'damaged');
    mkdirSync(damaged);
    copyFileSync(join(backupDir, 'ssmax-keyd-backup.json'), join(damaged, 'ssmax-keyd-backup.json'));
    const bytes = readFileSync(join(backupDir, 'data.mdb'));
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 1;
    writeFileSync(join(damaged, 'data.mdb'), bytes);
    const bad = ssmax('keyd', 'restore', '--config', join(host3, 'keyd.ini'), '--from', damaged);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/does not match its manifest/);

    createMasterKeyFile(join(host3, 'other.key'));
    writeFileSync(
      join(host3, 'keyd.ini'),
      readFileSync(join(host3, 'keyd.ini'), 'utf8').replace('master_key=master.key', 'master_key=other.key'),
    );
    const other = ssmax('keyd', 'restore', '--config', join(host3, 'keyd.ini'), '--from', backupDir);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/made with another master key/);
    expect(readdirSync(host3)).not.toContain('data');
  });

  test('a backup that matches its manifest but does not verify changes nothing: data_dir absent or empty stays so, no staging folder is left', async () => {
    const host4 = join(base, 'host4');
    mkdirSync(host4);
    for (const f of readdirSync(join(base, 'host2'))) if (/\.(pem|key|ini)$/.test(f)) copyFileSync(join(base, 'host2', f), join(host4, f));
    const config = join(host4, 'keyd.ini');
    const manifest = JSON.parse(readFileSync(join(backupDir, 'ssmax-keyd-backup.json'), 'utf8')) as Record<string, unknown>;
    const wrapper = new SecretWrapper(loadMasterKey(loadKeydConfig(config).masterKeyFile));
    /**
     * A backup folder holding these store bytes, its manifest re-hashed to match (an altered backup, not a damaged
     * one) and, with `mac`, its MAC recomputed as only a holder of the master key could: the checks of the store itself.
     */
    const backupOf = (name: string, bytes: Buffer, changes: Record<string, unknown> = {}, mac = true) => {
      const dir = join(base, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'data.mdb'), bytes);
      const edited = { ...manifest, sha256: createHash('sha256').update(bytes).digest('hex'), ...changes } as unknown as BackupManifest;
      writeFileSync(join(dir, 'ssmax-keyd-backup.json'), JSON.stringify(mac ? { ...edited, mac: manifestMac(wrapper, edited) } : edited));
      return dir;
    };
    // One audit record altered in a copy of the store.
    const scratch = join(base, 'scratch');
    mkdirSync(scratch);
    copyFileSync(join(backupDir, 'data.mdb'), join(scratch, 'data.mdb'));
    const store = KeydStore.open(scratch, { create: false });
    const first = store.audit.get(1)!;
    await store.audit.put(1, { ...first, record: { ...first.record, actor: 'rewritten' } });
    await store.close();
    const cases: [string, string, RegExp][] = [
      ['an altered audit record', backupOf('altered', readFileSync(join(scratch, 'data.mdb'))), /audit chain does not verify/],
      [
        'an altered copy, its manifest re-hashed without the master key',
        backupOf('unkeyed', readFileSync(join(scratch, 'data.mdb')), {}, false),
        /does not verify under the master key/,
      ],
      ['bytes that are no store', backupOf('garbage', Buffer.alloc(64 * 1024, 0x41)), /cannot be opened|not a|invalid/i],
      [
        'a longer chain promised than the copy holds',
        backupOf('short', readFileSync(join(backupDir, 'data.mdb')), {
          auditRecords: 10_000,
          auditHead: { ...(manifest.auditHead as object), seq: 10_000 },
        }),
        /10000/,
      ],
      [
        'a manifest of the wrong form',
        backupOf('form', readFileSync(join(backupDir, 'data.mdb')), { auditRecords: 'many' }),
        /not a valid backup manifest/,
      ],
    ];
    const dataDir = join(host4, 'data');
    for (const [what, dir, message] of cases) {
      for (const emptyDataDir of [false, true]) {
        rmSync(dataDir, { recursive: true, force: true });
        if (emptyDataDir) mkdirSync(dataDir);
        const r = ssmax('keyd', 'restore', '--config', config, '--from', dir);
        expect({ what, status: r.status === 0 ? 0 : 'refused' }).toEqual({ what, status: 'refused' });
        expect(r.stderr).toMatch(message);
        expect({ what, dataDir: existsSync(dataDir) ? readdirSync(dataDir) : 'absent' }).toEqual({
          what,
          dataDir: emptyDataDir ? [] : 'absent',
        });
        expect(readdirSync(host4).filter((f) => f.includes('restore'))).toEqual([]);
      }
    }
    // The intact backup still restores into the same place afterwards.
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir);
    const ok = ssmax('keyd', 'restore', '--config', config, '--from', backupDir);
    expect({ status: ok.status, err: ok.stderr }).toEqual({ status: 0, err: '' });
    expect(ssmax('keyd', 'audit', 'verify', '--config', config).status).toBe(0);
  });
});
