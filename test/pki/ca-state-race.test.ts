/**
 * ca.json changed by several commands at once (src/pki/ca-state.ts): each
 * change is a read, a change and a write under the CA folder's lock, so none
 * is lost — N `ssmax ca revoke` at once (real processes) leave N revocations
 * in ca.json and in the next CRL; issues and revocations at once keep both;
 * `ssmax registry revoke`'s CRL update at once gives distinct CRL numbers.
 * The real-process tests need `npm run build`.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { runCa } from '../../src/cli/ca';
import type { CliIo } from '../../src/cli/command';
import { CaStateError, readCaState, updateCaState } from '../../src/pki/ca-state';
import { parseCertificate } from '../../src/pki/certificate';
import { parseCrl } from '../../src/pki/crl';
import { privateKeyFromPem } from '../../src/pki/keys';
import { revokeSerials } from '../../src/registry/registration';

const run = promisify(execFile);
const bin = resolve(__dirname, '../../bin/ssmax');
const io: CliIo = { out: () => undefined, err: () => undefined };

let base: string;
let org: string;
beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'ssmax-ca-race-'));
  org = join(base, 'org');
  expect(await runCa(['init-root', '--unencrypted-key', '--dir', join(base, 'root')], io)).toBe(0);
  expect(
    await runCa(['init-org', '--unencrypted-key', '--root', join(base, 'root'), '--dir', org, '--domain', 'a.example', '--org', 'A'], io),
  ).toBe(0);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const ssmax = (...args: string[]) => run(process.execPath, [bin, 'ca', ...args], { encoding: 'utf8' });
const serialsOf = (list: { serial: string }[]) => list.map((r) => r.serial).sort();

describe('the built binary (needs `npm run build`)', () => {
  beforeAll(() => {
    if (!existsSync(resolve(__dirname, '../../dist/cli/ca.js'))) throw new Error('dist/ is missing: run `npm run build` before this test');
  });

  test('8 `ssmax ca revoke` at once: all 8 in ca.json and in the next CRL', async () => {
    const serials = Array.from({ length: 8 }, (_, i) => `a0${i.toString(16).padStart(2, '0')}`);
    const results = await Promise.all(serials.map((s) => ssmax('revoke', '--ca', org, '--serial', s)));
    for (const r of results) expect(r.stdout).toMatch(/^Revoked serial /);
    expect(serialsOf(readCaState(org).revoked)).toEqual(expect.arrayContaining(serials));
    await ssmax('crl', '--ca', org);
    const crl = parseCrl(readFileSync(join(org, 'crl.pem'), 'utf8'));
    for (const s of serials) expect(crl.entries.has(s)).toBe(true);
  }, 60_000);

  test('issues, revocations and a CRL at once: every issued certificate and every revocation is kept', async () => {
    const serials = Array.from({ length: 4 }, (_, i) => `b0${i.toString(16).padStart(2, '0')}`);
    const issues = Array.from({ length: 4 }, (_, i) =>
      ssmax('issue', 'gateway', '--ca', org, '--out', join(base, `gw${i}`), '--host', `mx${i}.a.example`),
    );
    const revokes = serials.map((s) => ssmax('revoke', '--ca', org, '--serial', s));
    const crls = [ssmax('crl', '--ca', org, '--force')];
    await Promise.all([...issues, ...revokes, ...crls]);
    const state = readCaState(org);
    const issued = Array.from({ length: 4 }, (_, i) => parseCertificate(readFileSync(join(base, `gw${i}.cert.pem`), 'utf8')).serial);
    expect(serialsOf(state.issued)).toEqual(expect.arrayContaining(issued));
    expect(serialsOf(state.revoked)).toEqual(expect.arrayContaining(serials));
    await ssmax('crl', '--ca', org);
    const crl = parseCrl(readFileSync(join(org, 'crl.pem'), 'utf8'));
    for (const s of serials) expect(crl.entries.has(s)).toBe(true);
  }, 60_000);
});

test('revocations signed into the CRL at once (ssmax registry revoke): each in the CRL and ca.json, each CRL its own number', async () => {
  const ca = {
    certificate: parseCertificate(readFileSync(join(org, 'ca.cert.pem'), 'utf8')),
    privateKey: privateKeyFromPem(readFileSync(join(org, 'ca.key.pem'), 'utf8')),
  };
  const crlFile = join(org, 'crl.pem');
  const serials = ['c001', 'c002', 'c003', 'c004', 'c005'];
  const results = await Promise.all(
    serials.map((s) => revokeSerials([s], 'unspecified', { ca, crlFile, days: 7, now: new Date(), caDir: org })),
  );
  expect(new Set(results.map((r) => r.crlNumber)).size).toBe(serials.length);
  const crl = parseCrl(readFileSync(crlFile, 'utf8'));
  for (const s of serials) expect(crl.entries.has(s)).toBe(true);
  expect(serialsOf(readCaState(org).revoked)).toEqual(expect.arrayContaining(serials));
});

test('a change that throws writes nothing; one that waits for the lock sees the change made before it', async () => {
  const before = readFileSync(join(org, 'ca.json'), 'utf8');
  await expect(
    updateCaState(org, (s) => {
      s.revoked.push({ serial: 'dead', revokedAt: new Date().toISOString(), reason: 'unspecified' });
      throw new Error('refused');
    }),
  ).rejects.toThrow('refused');
  expect(readFileSync(join(org, 'ca.json'), 'utf8')).toBe(before);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const first = updateCaState(org, async (s) => {
    await held; // the second change waits for the lock meanwhile
    s.issued.push({ serial: 'e1', subject: 'CN=first', notAfter: new Date().toISOString() });
  });
  const second = updateCaState(org, (s) => s.issued.some((i) => i.serial === 'e1'));
  await new Promise((r) => setTimeout(r, 100));
  release();
  await first;
  expect(await second).toBe(true);
  expect(() => readCaState(join(base, 'missing'))).toThrow(CaStateError);
});
