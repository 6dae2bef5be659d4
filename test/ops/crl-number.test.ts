/**
 * One CRL counter (docs/operations.md, "Renewals"): the CRL number lives in
 * the CA's CRL file only. keyd's automatic renewals advance it in that file;
 * `ssmax ca crl` continues from the file, so a hand-signed CRL after keyd's
 * renewals still carries a higher number (peers keep the highest one they
 * saw, and would otherwise keep keyd's older list).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';
import { loadKeydConfig } from '../../src/keyd/config';
import { type KeydParts, openKeyd } from '../../src/keyd/daemon';
import { CrlRenewer } from '../../src/keyd/renewal';
import { parseCertificate } from '../../src/pki/certificate';
import { parseCrl } from '../../src/pki/crl';
import { privateKeyFromPem } from '../../src/pki/keys';
import { DAY, makeOrg } from '../directory/fixtures';

let parts: KeydParts | undefined;
afterAll(async () => {
  await parts?.store.close();
});

const run = async (...argv: string[]) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t: string) => out.push(t), err: (t: string) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
};

test("ssmax ca crl and keyd's renewals share one monotonic CRL number, kept in the CRL file", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-crlno-'));
  const p = (...x: string[]) => join(dir, ...x);
  expect((await run('ca', 'init-root', '--unencrypted-key', '--dir', p('root'))).code).toBe(0);
  expect(
    (await run('ca', 'init-org', '--unencrypted-key', '--root', p('root'), '--dir', p('orga'), '--domain', 'a.example', '--org', 'A Corp'))
      .code,
  ).toBe(0);
  const number = () => parseCrl(readFileSync(p('orga', 'crl.pem'), 'utf8')).crlNumber;
  const stateHasCounter = () => 'crlNumber' in (JSON.parse(readFileSync(p('orga', 'ca.json'), 'utf8')) as object);

  const first = await run('ca', 'crl', '--ca', p('orga'), '--days', '7');
  expect(first.out).toMatch(/Wrote CRL number 1 /);
  expect(number()).toBe(1n);
  expect(stateHasCounter()).toBe(false);

  // keyd holds this org CA and renews the same file, twice
  const ca = {
    certificate: parseCertificate(readFileSync(p('orga', 'ca.cert.pem'), 'utf8')),
    privateKey: privateKeyFromPem(readFileSync(p('orga', 'ca.key.pem'), 'utf8')),
  };
  const org = makeOrg('a.example');
  parts = openKeyd(loadKeydConfig(org.fx.configFile));
  const renewer = new CrlRenewer(
    [p('orga', 'crl.pem')],
    ca,
    { renew: true, renewBeforeMs: 3 * DAY, validityMs: 7 * DAY, warnBeforeMs: 3 * DAY },
    parts.audit,
  );
  const now = Date.now();
  await renewer.run(new Date(now + 5 * DAY));
  expect(number()).toBe(2n);
  await renewer.run(new Date(now + 10 * DAY));
  expect(number()).toBe(3n);

  // the administrator revokes something and signs by hand: the next number after keyd's, not after the last hand-signed one
  const serial = parseCertificate(org.fx.clients.gateway.cert).serial;
  expect((await run('ca', 'revoke', '--ca', p('orga'), '--serial', serial, '--reason', 'keyCompromise')).code).toBe(0);
  const byHand = await run('ca', 'crl', '--ca', p('orga'));
  expect(byHand.out).toMatch(/Wrote CRL number 4 .* with 1 revocation/);
  expect(number()).toBe(4n);
  expect(stateHasCounter()).toBe(false);
  // and keyd continues from there, keeping the revocation
  await renewer.run(new Date(now + 15 * DAY));
  expect(number()).toBe(5n);
  expect(parseCrl(readFileSync(p('orga', 'crl.pem'), 'utf8')).entries.has(serial)).toBe(true);
  // keyd revokes a user into the file (POST /v1/registry/users/{address}/revoke): a hand-signed CRL keeps that revocation, and ca.json records it
  const revoked = await renewer.revoke(['0a1b2c'], 'affiliationChanged', new Date(now + 16 * DAY), (summary) => ({
    actor: 'admin',
    role: 'admin',
    op: 'registry.revoke',
    result: 'ok',
    reason: summary,
  }));
  expect(revoked).toMatchObject({ crlNumber: 6n, added: ['0a1b2c'] });
  expect((await run('ca', 'crl', '--ca', p('orga'))).out).toMatch(/Wrote CRL number 7 .* with 2 revocation/);
  expect(parseCrl(readFileSync(p('orga', 'crl.pem'), 'utf8')).entries.get('0a1b2c')?.reason).toBe('affiliationChanged');
  expect(
    (JSON.parse(readFileSync(p('orga', 'ca.json'), 'utf8')) as { revoked: { serial: string }[] }).revoked.map((r) => r.serial),
  ).toContain('0a1b2c');

  // --out elsewhere: still above every CRL this CA wrote (the default file's number counts too)
  const other = await run('ca', 'crl', '--ca', p('orga'), '--out', p('copy.crl.pem'));
  expect(other.out).toMatch(/Wrote CRL number 8 /);
  // a CA made before the counter moved to the file: its ca.json number is a floor, then dropped
  const state = JSON.parse(readFileSync(p('orga', 'ca.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(p('orga', 'ca.json'), JSON.stringify({ ...state, crlNumber: 40 }));
  expect((await run('ca', 'crl', '--ca', p('orga'))).out).toMatch(/Wrote CRL number 41 /);
  expect(stateHasCounter()).toBe(false);
  expect((await run('ca', 'crl', '--ca', p('orga'))).out).toMatch(/Wrote CRL number 42 /);
  // replacing a file that holds another CA's CRL is refused, nothing written
  expect((await run('ca', 'crl', '--ca', p('root'))).code).toBe(0);
  const refused = await run('ca', 'crl', '--ca', p('orga'), '--out', p('root', 'crl.pem'), '--force');
  expect(refused.code).not.toBe(0);
  expect(refused.err).toMatch(/holds a CRL of .*, not of this CA/);
  expect(parseCrl(readFileSync(p('root', 'crl.pem'), 'utf8')).issuer).toBe(
    parseCertificate(readFileSync(p('root', 'ca.cert.pem'), 'utf8')).subject,
  );
});

test("the layout of ssmax setup: a hand-signed CRL copied over keyd's file, as the docs say, keeps keyd's revocations and numbers above them; keyd mends a copy that raced a revocation", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-crlcopy-'));
  const p = (...x: string[]) => join(dir, ...x);
  expect((await run('ca', 'init-root', '--unencrypted-key', '--dir', p('root'))).code).toBe(0);
  expect(
    (await run('ca', 'init-org', '--unencrypted-key', '--root', p('root'), '--dir', p('orga'), '--domain', 'a.example', '--org', 'A Corp'))
      .code,
  ).toBe(0);
  expect((await run('ca', 'crl', '--ca', p('root'), '--out', p('root.crl.pem'))).code).toBe(0);
  execFileSync(process.execPath, [require.resolve('Haraka/bin/haraka'), '-i', p('org', 'gateway')], { stdio: 'ignore' });
  const setup = await run('setup', '--domain', 'a.example', '--org-ca', p('orga'), '--root-crl', p('root.crl.pem'), '--dir', p('org'));
  expect(setup.code).toBe(0);
  const keydFile = p('org', 'pki', 'org-ca.crl.pem'); // the file keyd renews and revokes into ([pki] crls of keyd.ini)
  const caFile = p('orga', 'crl.pem');
  const crlOf = (f: string) => parseCrl(readFileSync(f, 'utf8'));
  // setup tells the CA folder where keyd's copy is
  expect((JSON.parse(readFileSync(p('orga', 'ca.json'), 'utf8')) as { crlCopies?: string[] }).crlCopies).toEqual([keydFile]);

  const ca = {
    certificate: parseCertificate(readFileSync(p('orga', 'ca.cert.pem'), 'utf8')),
    privateKey: privateKeyFromPem(readFileSync(p('orga', 'ca.key.pem'), 'utf8')),
  };
  const org = makeOrg('a.example');
  const keydParts = openKeyd(loadKeydConfig(org.fx.configFile));
  const logged: string[] = [];
  const policy = { renew: true, renewBeforeMs: 3 * DAY, validityMs: 7 * DAY, warnBeforeMs: 3 * DAY };
  const renewer = new CrlRenewer([keydFile], ca, policy, keydParts.audit, (l) => logged.push(l));
  const record = (summary: string) => ({ actor: 'admin', role: 'admin', op: 'registry.revoke', result: 'ok' as const, reason: summary });
  try {
    const now = Date.now();
    // 1. an administrator revokes a user in the console: keyd writes the next number into its file
    const user = await renewer.revoke(['0a1b2c'], 'affiliationChanged', new Date(now + DAY), record);
    const numbers = [crlOf(keydFile).crlNumber!];
    expect(user.crlNumber).toBe(numbers[0]);
    // 2. later a gateway certificate is revoked by hand, and the CRL signed with ssmax ca crl (the CA folder's file)
    const gateway = parseCertificate(org.fx.clients.gateway.cert).serial;
    expect((await run('ca', 'revoke', '--ca', p('orga'), '--serial', gateway, '--reason', 'keyCompromise')).code).toBe(0);
    const byHand = await run('ca', 'crl', '--ca', p('orga'));
    expect(byHand.code).toBe(0);
    expect(byHand.out).toContain(`(merged ${keydFile})`);
    expect(crlOf(caFile).crlNumber).toBeGreaterThan(numbers[0]!);
    expect([...crlOf(caFile).entries.keys()].sort()).toEqual(['0a1b2c', gateway].sort());
    // 3. copied over keyd's file, as docs/operations.md says: nothing lost, the number up
    copyFileSync(caFile, keydFile);
    numbers.push(crlOf(keydFile).crlNumber!);
    // 4. keyd's renewal continues from it, keeping both
    await renewer.run(new Date(now + 6 * DAY));
    numbers.push(crlOf(keydFile).crlNumber!);
    expect([...crlOf(keydFile).entries.keys()].sort()).toEqual(['0a1b2c', gateway].sort());
    // 5. the race: keyd revokes another user after the hand-signing but before the copy; the copy drops it (and its number is no higher)
    expect((await run('ca', 'crl', '--ca', p('orga'), '--days', '30')).code).toBe(0); // far from due for renewal
    const stale = readFileSync(caFile);
    await renewer.revoke(['0d0d0d'], 'affiliationChanged', new Date(now + 7 * DAY), record);
    const keydNumber = crlOf(keydFile).crlNumber!;
    writeFileSync(keydFile, stale);
    expect(crlOf(keydFile).entries.has('0d0d0d')).toBe(false);
    expect(crlOf(keydFile).crlNumber).toBeLessThanOrEqual(keydNumber);
    // keyd's next schedule run (no renewal due, no new revocation) keeps the revocation it made and numbers above both, and says so
    await renewer.run(new Date(now + 7 * DAY + 60_000));
    expect(crlOf(keydFile).crlNumber).toBeGreaterThan(keydNumber);
    numbers.push(crlOf(keydFile).crlNumber!);
    expect([...crlOf(keydFile).entries.keys()].sort()).toEqual(['0a1b2c', '0d0d0d', gateway].sort());
    expect(logged.join('\n')).toMatch(
      /keyd: ERROR CRL ".*org-ca\.crl\.pem" was replaced by number \d+ without 1 revocation\(s\) keyd had \(0d0d0d\)/,
    );
    for (let i = 1; i < numbers.length; i++) expect(numbers[i]!).toBeGreaterThan(numbers[i - 1]!);
    // --merge: any other file of this CA counts too; another CA's CRL is refused
    copyFileSync(keydFile, p('elsewhere.crl.pem'));
    const merged = await run('ca', 'crl', '--ca', p('orga'), '--merge', p('elsewhere.crl.pem'));
    expect(merged.out).toContain(p('elsewhere.crl.pem'));
    expect(crlOf(caFile).crlNumber).toBeGreaterThan(numbers.at(-1)!);
    const foreign = await run('ca', 'crl', '--ca', p('orga'), '--merge', p('root.crl.pem'));
    expect(foreign.code).not.toBe(0);
    expect(foreign.err).toMatch(/holds a CRL of .*, not of this CA/);
  } finally {
    await keydParts.store.close();
  }
});

test("ssmax ca crl warns when a merged copy is older than another CRL of the CA it read (a stale copy of keyd's file)", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-crlstale-'));
  const p = (...x: string[]) => join(dir, ...x);
  expect((await run('ca', 'init-root', '--unencrypted-key', '--dir', p('root'))).code).toBe(0);
  expect(
    (await run('ca', 'init-org', '--unencrypted-key', '--root', p('root'), '--dir', p('orga'), '--domain', 'a.example', '--org', 'A Corp'))
      .code,
  ).toBe(0);
  // a copy taken now, as the operators' machine keeps after setup in the split layout
  expect((await run('ca', 'crl', '--ca', p('orga'), '--out', p('stale.crl.pem'))).code).toBe(0);
  await new Promise((r) => setTimeout(r, 1100)); // thisUpdate has whole seconds
  expect((await run('ca', 'crl', '--ca', p('orga'), '--force')).code).toBe(0);
  copyFileSync(p('orga', 'crl.pem'), p('fresh.crl.pem'));
  const fresh = await run('ca', 'crl', '--ca', p('orga'), '--force', '--merge', p('fresh.crl.pem'));
  expect(fresh.code).toBe(0);
  expect(fresh.err).not.toMatch(/Warning/);
  const stale = await run('ca', 'crl', '--ca', p('orga'), '--force', '--merge', p('stale.crl.pem'));
  expect(stale.code).toBe(0);
  expect(stale.err).toContain(`Warning: the CRL copy "${p('stale.crl.pem')}"`);
  expect(stale.err).toMatch(/is older than another CRL of this CA read here .*merge a fresh copy of keyd's file/);
});

test('a replaced CRL keyd cannot sign: an ERROR line on every schedule run, the file left alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-crlnosign-'));
  const p = (...x: string[]) => join(dir, ...x);
  expect((await run('ca', 'init-root', '--unencrypted-key', '--dir', p('root'))).code).toBe(0);
  expect(
    (await run('ca', 'init-org', '--unencrypted-key', '--root', p('root'), '--dir', p('orga'), '--domain', 'a.example', '--org', 'A Corp'))
      .code,
  ).toBe(0);
  expect((await run('ca', 'crl', '--ca', p('orga'))).code).toBe(0);
  copyFileSync(p('orga', 'crl.pem'), p('old.crl.pem'));
  expect((await run('ca', 'revoke', '--ca', p('orga'), '--serial', '0e0e0e', '--reason', 'keyCompromise')).code).toBe(0);
  expect((await run('ca', 'crl', '--ca', p('orga'))).code).toBe(0);
  const org = makeOrg('a.example');
  const keydParts = openKeyd(loadKeydConfig(org.fx.configFile));
  const logged: string[] = [];
  const policy = { renew: true, renewBeforeMs: 3 * DAY, validityMs: 7 * DAY, warnBeforeMs: 3 * DAY };
  // keyd without the org CA key: it reads the file but cannot sign it
  const renewer = new CrlRenewer([p('orga', 'crl.pem')], undefined, policy, keydParts.audit, (l) => logged.push(l));
  try {
    await renewer.run(new Date());
    expect(logged.filter((l) => /ERROR/.test(l))).toEqual([]);
    copyFileSync(p('old.crl.pem'), p('orga', 'crl.pem'));
    const replaced = readFileSync(p('orga', 'crl.pem'));
    await renewer.run(new Date());
    await renewer.run(new Date());
    const errors = logged.filter((l) => /ERROR/.test(l));
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(
      /keyd: ERROR CRL ".*crl\.pem" was replaced by number 1 without 1 revocation\(s\) keyd had, where keyd last had number 2, and keyd cannot re-sign it/,
    );
    expect(readFileSync(p('orga', 'crl.pem'))).toEqual(replaced);
  } finally {
    await keydParts.store.close();
  }
});
