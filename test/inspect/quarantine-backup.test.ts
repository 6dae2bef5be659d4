/**
 * `ssmax quarantine backup`: a consistent copy of a quarantine (or a list
 * moderation queue) while another process goes on holding and deleting in it.
 * docs/operations.md said "copy the folder", and a plain copy of data.mdb under
 * a writer took pages of different transactions: copies that did not open
 * (MDB_CORRUPTED), or crashed the process that opened them, or disagreed with
 * their own counters. Each copy here is checked in a process of its own, so
 * that a copy that crashes its reader fails the test instead of ending it.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { QuarantineStore } from '../../src/inspect/quarantine';

jest.setTimeout(120_000);

const DIST = join(__dirname, '..', '..', 'dist', 'inspect', 'quarantine.js');
const LMDB = require.resolve('lmdb');

/** Holds and deletes entries in `dir` as fast as it can, from a process of its own (a gateway under load). */
function writer(dir: string): ChildProcess {
  const script = `
    const { QuarantineStore } = require(${JSON.stringify(DIST)});
    const store = new QuarantineStore(${JSON.stringify(dir)}, { maxEntries: 1e9, maxBytes: 1e12, maxBytesPerSender: 1e12 });
    const ids = [];
    (async () => {
      for (;;) {
        const message = Buffer.alloc(2000 + Math.floor(Math.random() * 20000), 0x41);
        ids.push(await store.hold({ direction: 'outbound', from: 's' + (ids.length % 50) + '@a.example', rcpts: ['b@b.example'], rule: 'r', message }));
        if (ids.length > 300) await store.delete(ids.splice(Math.floor(Math.random() * ids.length), 1)[0]);
      }
    })();`;
  return spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
}

/** Opens a copied data.mdb in a process of its own: the entries and counters must agree, every entry with its message. */
function consistent(copyDir: string): string {
  const script = `
    const lmdb = require(${JSON.stringify(LMDB)});
    const r = lmdb.open({ path: ${JSON.stringify(copyDir)}, compression: false });
    const meta = r.openDB({ name: 'meta', compression: false });
    const body = r.openDB({ name: 'body', encoding: 'binary', compression: false });
    const usage = r.openDB({ name: 'usage', compression: false });
    let sum = 0, count = 0, missing = 0;
    for (const { key, value } of meta.getRange({})) { count++; sum += value.bytes; if (!body.get(key)) missing++; }
    const ok = sum === (usage.get('total') ?? 0) && count === (usage.get('entries') ?? 0) && missing === 0;
    process.stdout.write(ok ? 'consistent ' + count : 'INCONSISTENT ' + [count, usage.get('entries'), sum, usage.get('total'), missing].join(' '));`;
  try {
    return execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  } catch (err) {
    const e = err as { stdout?: string; signal?: string; status?: number; message: string };
    return `unusable: ${e.stdout || e.signal || e.status || e.message}`;
  }
}

function run(args: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  return main(args, { out: (t) => out.push(t), err: (t) => out.push(t) }).then((code) => ({ code, out: out.join('\n') }));
}

test('backups taken while another process holds and deletes are each a store that opens, its counters agreeing with its entries', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-qbackup-'));
  await new QuarantineStore(dir).close(); // the folder made as the gateway makes it
  const w = writer(dir);
  try {
    await new Promise((r) => setTimeout(r, 1500)); // the writer under way
    const results: string[] = [];
    for (let i = 0; i < 8; i++) {
      const out = join(dir, '..', `${dir.split('/').pop()!}-copy-${i}`);
      const r = await run(['quarantine', 'backup', '--state', dir, '--out', out]);
      expect(r).toEqual({ code: 0, out: expect.stringMatching(/^backed up \d+ entr(y|ies) \(\d+ bytes held\) to .*data\.mdb$/) as string });
      expect(statSync(join(out, 'data.mdb')).mode & 0o777).toBe(0o600);
      expect(statSync(out).mode & 0o777).toBe(0o700);
      results.push(consistent(out));
    }
    expect(results).toEqual(Array(8).fill(expect.stringMatching(/^consistent \d+$/)));
    expect(w.exitCode).toBeNull(); // the writer was writing all along
  } finally {
    w.kill();
  }
});

test('an --out that holds anything is refused (exit 73), nothing written; no --out is a usage error (64)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-qbackup-'));
  await new QuarantineStore(dir).close();
  const used = mkdtempSync(join(tmpdir(), 'ssmax-qbackup-used-'));
  writeFileSync(join(used, 'x'), 'x');
  const r = await run(['quarantine', 'backup', '--state', dir, '--out', used]);
  expect(r.code).toBe(73);
  expect(r.out).toMatch(/Backup folder .* is not empty; give a new one/);
  expect(existsSync(join(used, 'data.mdb'))).toBe(false);
  expect((await run(['quarantine', 'backup', '--state', dir])).code).toBe(64);
  // the store's parent folder given by mistake: said (66), and no empty store made there
  const parent = mkdtempSync(join(tmpdir(), 'ssmax-qbackup-parent-'));
  const wrong = await run(['quarantine', 'backup', '--state', parent, '--out', join(parent, 'out')]);
  expect(wrong.code).toBe(66);
  expect(wrong.out).toMatch(/holds no quarantine store \(no data\.mdb\)/);
  expect(existsSync(join(parent, 'data.mdb'))).toBe(false);
  expect((await run(['quarantine', '--help'])).out).toMatch(/backup --out OUT/);
});
