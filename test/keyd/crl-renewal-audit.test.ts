/**
 * A CRL renewal and its audit record cannot disagree (issue 24): the renewed
 * CRL is staged beside the file, the `crl.renew` record commits (no file I/O
 * inside the LMDB transaction), then the staged file is renamed into place.
 * A failed audit write leaves the file as it was; a stop between the record
 * and the rename is completed by the next run; a staged CRL without a record
 * is removed. Real LMDB store, real files, real org CA.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../../src/keyd/audit';
import { CrlRenewer, stagedFile } from '../../src/keyd/renewal';
import { withCaFolderLock } from '../../src/pki/ca-state';
import { KeydStore } from '../../src/keyd/store';
import { createCrl, parseCrl } from '../../src/pki/crl';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';

const DAY = 86400000;
const policy = { renew: true, renewBeforeMs: 3 * DAY, validityMs: 7 * DAY, warnBeforeMs: 3 * DAY };

let fx: OrgFixture;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssmax-crlaudit-'));
  fx = provisionOrg(join(dir, 'pki'), { domain: 'a.example' });
});

/** A CRL of the org CA with number `n`, due for renewal at `now`. */
function dueCrl(name: string, n: number, now: number): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    createCrl(fx.orgCa, { entries: [], thisUpdate: new Date(now - DAY), nextUpdate: new Date(now + DAY), crlNumber: n }).pem,
  );
  return file;
}

async function openAudit(name: string): Promise<{ store: KeydStore; audit: AuditLog }> {
  const store = KeydStore.open(join(dir, name), { create: true });
  return { store, audit: new AuditLog(store, randomBytes(32)) };
}

const renewals = (audit: AuditLog) => audit.tail(1000).filter((r) => r.op === 'crl.renew');

test('a renewal: the file holds the number its audit record names, nothing staged is left', async () => {
  const now = Date.now();
  const file = dueCrl('ok.crl.pem', 4, now);
  const { store, audit } = await openAudit('ok-store');
  try {
    const [state] = await new CrlRenewer([file], fx.orgCa, policy, audit).run(new Date(now));
    expect(state!.error).toBeUndefined();
    expect(parseCrl(readFileSync(file, 'utf8')).crlNumber).toBe(5n);
    expect(renewals(audit).map((r) => r.reason)).toEqual([
      expect.stringMatching(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: number 5 `)),
    ]);
    expect(existsSync(stagedFile(file))).toBe(false);
    expect(audit.verify()).toMatchObject({ ok: true });
  } finally {
    await store.close();
  }
});

test('the audit record cannot be written: the CRL file is unchanged and nothing is staged', async () => {
  const now = Date.now();
  const file = dueCrl('no-audit.crl.pem', 9, now);
  const before = readFileSync(file, 'utf8');
  const { store, audit } = await openAudit('closed-store');
  await store.close(); // every write fails from here on
  const log: string[] = [];
  const [state] = await new CrlRenewer([file], fx.orgCa, policy, audit, (l) => log.push(l)).run(new Date(now));
  expect(state).toMatchObject({ warning: true, error: expect.stringMatching(/audit/i) });
  expect(readFileSync(file, 'utf8')).toBe(before);
  expect(existsSync(stagedFile(file))).toBe(false);
  expect(log.join('\n')).toMatch(/WARNING cannot check or renew CRL/);
});

test('stopped between the audit record and the rename: the next run puts the audited CRL in place', async () => {
  const now = Date.now();
  const file = dueCrl('half.crl.pem', 20, now);
  const { store, audit } = await openAudit('half-store');
  try {
    // What a stop right after the commit leaves: CRL 21 staged, its record in the log, the file still at 20.
    const renewed = createCrl(fx.orgCa, { entries: [], thisUpdate: new Date(now), nextUpdate: new Date(now + 7 * DAY), crlNumber: 21 });
    writeFileSync(stagedFile(file), renewed.pem);
    await audit.append(
      {
        actor: 'keyd schedule',
        role: 'keyd',
        op: 'crl.renew',
        result: 'ok',
        reason: `${file}: number 21 with 0 revocation(s), nextUpdate ${renewed.nextUpdate!.toISOString()}`,
      },
      new Date(now),
    );
    const log: string[] = [];
    const [state] = await new CrlRenewer([file], fx.orgCa, policy, audit, (l) => log.push(l)).run(new Date(now + 60_000));
    expect(state!.error).toBeUndefined();
    expect(readFileSync(file, 'utf8')).toBe(renewed.pem); // the audited one, not a second renewal
    expect(existsSync(stagedFile(file))).toBe(false);
    expect(renewals(audit)).toHaveLength(1);
    expect(log.join('\n')).toMatch(/completed the audited renewal of CRL .* \(number 21\)/);
  } finally {
    await store.close();
  }
});

describe('stopped between the audit record and the rename, and the file signed by another writer meanwhile', () => {
  const revokedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
  /** keyd's audited CRL 21 staged (revoking `staged`), the file signed since as number 22 by hand (revoking 0badc0de). */
  async function leftBehind(name: string, staged: string[]): Promise<{ file: string; store: KeydStore; audit: AuditLog; now: number }> {
    const now = Date.now();
    const file = dueCrl(`${name}.crl.pem`, 20, now);
    const { store, audit } = await openAudit(`${name}-store`);
    const renewed = createCrl(fx.orgCa, {
      entries: staged.map((serial) => ({ serial, revokedAt, reason: 'keyCompromise' as const })),
      thisUpdate: new Date(now),
      nextUpdate: new Date(now + 7 * DAY),
      crlNumber: 21,
    });
    writeFileSync(stagedFile(file), renewed.pem);
    await audit.append(
      {
        actor: 'keyd schedule',
        role: 'keyd',
        op: 'crl.renew',
        result: 'ok',
        reason: `${file}: number 21 with ${staged.length} revocation(s), nextUpdate ${renewed.nextUpdate!.toISOString()}`,
      },
      new Date(now),
    );
    // while keyd is stopped: ssmax ca crl --out FILE --force (or ssmax registry revoke) signs number 22 with a revocation
    writeFileSync(
      file,
      createCrl(fx.orgCa, {
        entries: [{ serial: '0badc0de', revokedAt, reason: 'keyCompromise' }],
        thisUpdate: new Date(now + 1000),
        nextUpdate: new Date(now + 7 * DAY),
        crlNumber: 22,
      }).pem,
    );
    return { file, store, audit, now };
  }

  test("the staged CRL does not replace the newer file: the other writer's revocation and number stay", async () => {
    const { file, store, audit, now } = await leftBehind('moved-on', []);
    try {
      const log: string[] = [];
      const [state] = await new CrlRenewer([file], fx.orgCa, policy, audit, (l) => log.push(l)).run(new Date(now + 60_000));
      expect(state!.error).toBeUndefined();
      const inFile = parseCrl(readFileSync(file, 'utf8'));
      expect([...inFile.entries.keys()]).toEqual(['0badc0de']); // before: the staged CRL 21 put back, the revocation gone
      expect(inFile.crlNumber).toBe(22n);
      expect(existsSync(stagedFile(file))).toBe(false);
      expect(log.join('\n')).toMatch(/staged CRL .* \(number 21, audited\) was not put in place: the file was signed since \(number 22\)/);
    } finally {
      await store.close();
    }
  });

  test("revocations of keyd's staged CRL that the newer file lacks are signed into it, numbered above both", async () => {
    const { file, store, audit, now } = await leftBehind('merged', ['aa01']);
    try {
      const log: string[] = [];
      const [state] = await new CrlRenewer([file], fx.orgCa, policy, audit, (l) => log.push(l)).run(new Date(now + 60_000));
      expect(state!.error).toBeUndefined();
      const inFile = parseCrl(readFileSync(file, 'utf8'));
      expect([...inFile.entries.keys()].sort()).toEqual(['0badc0de', 'aa01']);
      expect(inFile.crlNumber).toBe(23n);
      expect(log.join('\n')).toMatch(/without 1 revocation\(s\) of it \(aa01\), which keyd signs into it/);
      expect(audit.verify()).toMatchObject({ ok: true });
    } finally {
      await store.close();
    }
  });
});

test('a staged CRL without its audit record (stopped before the commit) is removed, and the renewal is done afresh', async () => {
  const now = Date.now();
  const file = dueCrl('orphan.crl.pem', 30, now);
  const { store, audit } = await openAudit('orphan-store');
  try {
    writeFileSync(
      stagedFile(file),
      createCrl(fx.orgCa, { entries: [], thisUpdate: new Date(now), nextUpdate: new Date(now + 7 * DAY), crlNumber: 31 }).pem,
    );
    const log: string[] = [];
    const [state] = await new CrlRenewer([file], fx.orgCa, policy, audit, (l) => log.push(l)).run(new Date(now + 60_000));
    expect(state!.error).toBeUndefined();
    expect(log.join('\n')).toMatch(/removed a staged CRL .* that has no audit record/);
    // renewed afresh, with its own record: file and log agree
    const inFile = parseCrl(readFileSync(file, 'utf8'));
    expect(inFile.crlNumber).toBe(31n);
    expect(inFile.thisUpdate.getTime()).toBe(Math.floor((now + 60_000) / 1000) * 1000);
    expect(renewals(audit).map((r) => r.reason)).toEqual([expect.stringContaining(': number 31 ')]);
    expect(existsSync(stagedFile(file))).toBe(false);
  } finally {
    await store.close();
  }
});

test('another writer holding the CA lock (ssmax ca crl, ssmax registry revoke): keyd waits for it, then keeps the revocations and the number it wrote', async () => {
  const now = Date.now();
  const folder = mkdtempSync(join(dir, 'ca-'));
  const file = join(folder, 'crl.pem');
  writeFileSync(file, readFileSync(dueCrl('locked-source.crl.pem', 40, now)));
  const { store, audit } = await openAudit('locked-store');
  const at = new Date(Math.floor(now / 1000) * 1000);
  try {
    let resign!: Promise<unknown>;
    await withCaFolderLock(folder, async () => {
      // a revocation at keyd (POST /v1/registry/users/{address}/revoke) while `ssmax ca crl` holds the folder
      resign = new CrlRenewer([file], fx.orgCa, policy, audit).revoke(['0a1b'], 'keyCompromise', new Date(now), (summary) => ({
        actor: 'test',
        role: 'admin',
        op: 'registry.revoke',
        result: 'ok',
        reason: summary,
      }));
      await new Promise((r) => setTimeout(r, 400));
      expect(parseCrl(readFileSync(file, 'utf8')).crlNumber).toBe(40n); // keyd waits: not replaced under the other writer
      writeFileSync(
        file,
        createCrl(fx.orgCa, {
          entries: [{ serial: '0c0d', revokedAt: at, reason: 'keyCompromise' }],
          thisUpdate: new Date(now),
          nextUpdate: new Date(now + 7 * DAY),
          crlNumber: 45,
        }).pem,
      );
    });
    await resign;
    const after = parseCrl(readFileSync(file, 'utf8'));
    expect([...after.entries.keys()].sort()).toEqual(['0a1b', '0c0d']);
    expect(after.crlNumber).toBe(46n);
    expect(audit.verify()).toMatchObject({ ok: true });
  } finally {
    await store.close();
  }
});

test('a revocation at keyd waits at most 2 s for a CA command holding the lock (then 503 busy, the file unchanged); keyd never makes the lock secret itself', async () => {
  const now = Date.now();
  const folder = mkdtempSync(join(dir, 'ca-busy-'));
  const file = join(folder, 'crl.pem');
  writeFileSync(file, readFileSync(dueCrl('busy-source.crl.pem', 50, now)));
  const { store, audit } = await openAudit('busy-store');
  const revoke = (serial: string) =>
    new CrlRenewer([file], fx.orgCa, policy, audit).revoke([serial], 'keyCompromise', new Date(now), (summary) => ({
      actor: 'test',
      role: 'admin',
      op: 'registry.revoke',
      result: 'ok',
      reason: summary,
    }));
  try {
    // no CA command ever locked this folder: keyd revokes without the lock, and leaves no secret of its own making
    expect((await revoke('0e0f')).crlNumber).toBe(51n);
    expect(existsSync(join(folder, 'ca-lock.secret'))).toBe(false);
    await withCaFolderLock(folder, async () => {
      const started = Date.now();
      await expect(revoke('1a1b')).rejects.toMatchObject({ code: 'busy', status: 503 });
      expect(Date.now() - started).toBeLessThan(4000);
      expect(parseCrl(readFileSync(file, 'utf8')).crlNumber).toBe(51n);
    });
  } finally {
    await store.close();
  }
});
