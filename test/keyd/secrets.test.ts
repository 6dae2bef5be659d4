import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { main } from '../../src/cli/main';
import { AuditLog } from '../../src/keyd/audit';
import { restoreMasterKey, splitMasterKey } from '../../src/keyd/master-backup';
import { SecretWrapper, createMasterKeyFile, loadMasterKey } from '../../src/keyd/master-key';
import { KeydStore } from '../../src/keyd/store';

const tmp = () => mkdtempSync(join(tmpdir(), 'ssmax-keyd-'));

describe('master key file', () => {
  test('is created 0600 and refused when group or others can read it', () => {
    const f = join(tmp(), 'master.key');
    createMasterKeyFile(f);
    expect(loadMasterKey(f)).toHaveLength(32);
    chmodSync(f, 0o644);
    expect(() => loadMasterKey(f)).toThrow(/mode 0644 lets others read it \(chmod 600\)/);
    expect(() => createMasterKeyFile(f)).toThrow(/EEXIST/);
  });

  test('wrapped secrets are bound to their label and to the master key', () => {
    const a = new SecretWrapper(new Uint8Array(32).fill(1));
    const b = new SecretWrapper(new Uint8Array(32).fill(2));
    const blob = a.wrap('org-key:a.example:v1', Buffer.from('secret'));
    expect(a.unwrap('org-key:a.example:v1', blob).toString()).toBe('secret');
    expect(blob.includes(Buffer.from('secret'))).toBe(false);
    expect(() => a.unwrap('org-key:a.example:v2', blob)).toThrow(/wrong master key or damaged record/);
    expect(() => b.unwrap('org-key:a.example:v1', blob)).toThrow(/wrong master key or damaged record/);
  });
});

describe('master key backup, 3 of 5', () => {
  const master = new Uint8Array(32).map((_, i) => (i * 7 + 3) & 0xff);
  test('any 3 shares restore the key', async () => {
    const shares = await splitMasterKey(master, 5, 3);
    expect(shares).toHaveLength(5);
    for (const pick of [
      [0, 1, 2],
      [0, 2, 4],
      [4, 3, 1],
    ])
      expect(await restoreMasterKey(pick.map((i) => shares[i]!))).toEqual(master);
  });

  test('2 shares are refused, and combining them anyway gives nothing usable', async () => {
    const shares = await splitMasterKey(master, 5, 3);
    await expect(restoreMasterKey(shares.slice(0, 2))).rejects.toThrow(/2 distinct share\(s\) given, 3 needed/);
    await expect(restoreMasterKey([shares[0]!, shares[0]!, shares[1]!])).rejects.toThrow(/2 distinct/);
    // Combine two shares anyway, with the library itself (in a plain node process: the
    // library checks \`instanceof Array\`, which Jest's module realm defeats).
    const script = `const { combine } = require('shamir-secret-sharing');
      combine(process.argv.slice(1).map((s) => new Uint8Array(Buffer.from(s.split(':')[3], 'hex')))).then((k) => process.stdout.write(Buffer.from(k).toString('hex')));`;
    const guess = new Uint8Array(
      Buffer.from(
        execFileSync(process.execPath, ['-e', script, shares[0]!, shares[1]!], { encoding: 'utf8', cwd: join(__dirname, '..', '..') }),
        'hex',
      ),
    );
    expect(guess).toHaveLength(32);
    expect(Buffer.from(guess).equals(Buffer.from(master))).toBe(false);
    const wrapped = new SecretWrapper(master).wrap('x', Buffer.from('payload'));
    expect(() => new SecretWrapper(guess).unwrap('x', wrapped)).toThrow();
  });

  test('a share damaged in its value is detected by the key check value, in any byte', async () => {
    const shares = await splitMasterKey(master, 5, 3);
    const hex = shares[2]!.slice(shares[2]!.lastIndexOf(':') + 1);
    const head = shares[2]!.slice(0, shares[2]!.length - hex.length);
    for (let i = 0; i < hex.length - 2; i += 2) {
      // flip one byte of the value (the last byte is the share number, below)
      const flipped = (parseInt(hex.slice(i, i + 2), 16) ^ 0x5a).toString(16).padStart(2, '0');
      const bad = head + hex.slice(0, i) + flipped + hex.slice(i + 2);
      await expect(restoreMasterKey([shares[0]!, shares[1]!, bad])).rejects.toThrow(/does not match the key check value/);
    }
  });

  test("a share whose number is damaged into another share's is refused with a clear error, whatever the number", async () => {
    const shares = await splitMasterKey(master, 5, 3);
    const numberOf = (s: string) => s.slice(-2);
    for (const other of [shares[0]!, shares[1]!]) {
      const bad = shares[2]!.slice(0, -2) + numberOf(other);
      await expect(restoreMasterKey([shares[0]!, shares[1]!, bad])).rejects.toThrow(
        /^Cannot restore master key: two different shares carry the same share number \(a damaged share\?\)$/,
      );
    }
  });

  test('the CLI writes shares and restores from files', async () => {
    const dir = tmp();
    const shares = await splitMasterKey(master, 5, 3);
    shares.forEach((s, i) => writeFileSync(join(dir, `s${i}`), s));
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    expect(
      await main(['keyd', 'restore-master', '--out', join(dir, 'restored.key'), join(dir, 's1'), join(dir, 's3'), join(dir, 's4')], io),
    ).toBe(0);
    expect(readFileSync(join(dir, 'restored.key'), 'utf8').trim()).toBe(Buffer.from(master).toString('hex'));
  });
});

describe('audit log', () => {
  test('detects an altered record, a deleted record and a truncated tail', async () => {
    const store = KeydStore.open(join(tmp(), 'db'), { create: true });
    const log = new AuditLog(store, Buffer.alloc(32, 9));
    for (let i = 0; i < 5; i++) await log.append({ actor: 'a', role: 'admin', op: `op${i}`, result: 'ok' }, new Date());
    expect(log.verify()).toEqual({ ok: true, count: 5 });

    const e3 = store.audit.get(3)!;
    await store.audit.put(3, { ...e3, record: { ...e3.record, op: 'forged' } });
    expect(log.verify()).toEqual({ ok: false, seq: 3, reason: 'record altered (MAC mismatch)' });
    await store.audit.put(3, e3);

    await store.audit.remove(2);
    expect(log.verify()).toMatchObject({ ok: false, seq: 2, reason: expect.stringMatching(/record 2 is missing/) });
    await store.audit.put(2, (await (async () => e3)()) && store.audit.get(1)!); // put back something wrong at 2
    expect(log.verify().ok).toBe(false);

    const store2 = KeydStore.open(join(tmp(), 'db2'), { create: true });
    const log2 = new AuditLog(store2, Buffer.alloc(32, 9));
    for (let i = 0; i < 4; i++) await log2.append({ actor: 'a', role: 'admin', op: `op${i}`, result: 'ok' }, new Date());
    await store2.audit.remove(4);
    expect(log2.verify()).toMatchObject({ ok: false, reason: expect.stringMatching(/records deleted or head altered/) });
    await store.close();
    await store2.close();
  });

  test('an append that cannot be written refuses its operation and leaves nothing; the log says so until an append commits', async () => {
    const store = KeydStore.open(join(tmp(), 'db'), { create: true });
    const log = new AuditLog(store, Buffer.alloc(32, 9));
    await log.append({ actor: 'a', role: 'admin', op: 'ok', result: 'ok' }, new Date());
    expect(log.failing).toBeUndefined();
    await expect(
      log.append({ actor: 'a', role: 'admin', op: 'x', result: 'ok' }, new Date(), () => {
        throw new Error('disk full');
      }),
    ).rejects.toThrow(/Cannot write the audit record: disk full; refusing the operation/);
    expect(log.failing).toMatch(/disk full/); // what /health/ready reports meanwhile
    expect(log.verify()).toEqual({ ok: true, count: 1 }); // the failed operation left nothing behind
    // the next operation tries its own write; once one commits, the log serves again
    await expect(log.append({ actor: 'a', role: 'admin', op: 'y', result: 'ok' }, new Date())).resolves.toMatchObject({ seq: 2, op: 'y' });
    expect(log.failing).toBeUndefined();
    expect(log.verify()).toEqual({ ok: true, count: 2 });
    await store.close();
  });
});
