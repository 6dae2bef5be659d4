/**
 * revokeSerials with an `ssmax ca` org directory: the CRL file gets the next
 * number and keeps earlier entries; ca.json records the revocations, so a
 * later `ssmax ca crl` keeps them; a CRL of another CA is refused.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCa } from '../../src/cli/ca';
import type { CliIo } from '../../src/cli/command';
import { parseCertificate } from '../../src/pki/certificate';
import { createCrl, parseCrl } from '../../src/pki/crl';
import { privateKeyFromPem } from '../../src/pki/keys';
import { RegistryError, revokeSerials } from '../../src/registry/registration';

const io: CliIo = { out: () => undefined, err: () => undefined };

test('revocations land in the CRL file and in ca.json; ssmax ca crl keeps them', async () => {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-revoke-'));
  const root = join(base, 'root');
  const org = join(base, 'orga');
  expect(await runCa(['init-root', '--unencrypted-key', '--dir', root, '--name', 'Test Root'], io)).toBe(0);
  expect(await runCa(['init-org', '--unencrypted-key', '--root', root, '--dir', org, '--domain', 'a.example', '--org', 'Org A'], io)).toBe(
    0,
  );
  expect(await runCa(['crl', '--ca', org], io)).toBe(0);
  const ca = {
    certificate: parseCertificate(readFileSync(join(org, 'ca.cert.pem'), 'utf8')),
    privateKey: privateKeyFromPem(readFileSync(join(org, 'ca.key.pem'), 'utf8')),
  };
  const crlFile = join(org, 'crl.pem');
  const first = parseCrl(readFileSync(crlFile, 'utf8'));

  const r = await revokeSerials(['0a0b0c', '1d1e'], 'affiliationChanged', { ca, crlFile, days: 7, now: new Date(), caDir: org });
  expect(r.added).toEqual(['0a0b0c', '1d1e']);
  expect(r.crlNumber).toBe((first.crlNumber ?? 0n) + 1n);
  const again = await revokeSerials(['0a0b0c', '2f'], 'keyCompromise', { ca, crlFile, days: 7, now: new Date(), caDir: org });
  expect(again.added).toEqual(['2f']);
  const crl = parseCrl(readFileSync(crlFile, 'utf8'));
  expect([...crl.entries.keys()].sort()).toEqual(['0a0b0c', '1d1e', '2f']);
  expect(crl.entries.get('0a0b0c')?.reason).toBe('affiliationChanged');
  const state = JSON.parse(readFileSync(join(org, 'ca.json'), 'utf8')) as { crlNumber?: number; revoked: { serial: string }[] };
  expect(state.revoked.map((x) => x.serial).sort()).toEqual(['0a0b0c', '1d1e', '2f']);
  // one counter, in the CRL file (docs/operations.md, "Renewals"): ca.json holds none
  expect(state.crlNumber).toBeUndefined();

  // The CA tool's own next CRL keeps them, with a higher number.
  expect(await runCa(['crl', '--ca', org], io)).toBe(0);
  const next = parseCrl(readFileSync(crlFile, 'utf8'));
  expect([...next.entries.keys()].sort()).toEqual(['0a0b0c', '1d1e', '2f']);
  expect(next.crlNumber).toBe((crl.crlNumber ?? 0n) + 1n);

  // A CRL file of another CA is not overwritten.
  const other = join(base, 'other');
  expect(
    await runCa(['init-org', '--unencrypted-key', '--root', root, '--dir', other, '--domain', 'b.example', '--org', 'Org B'], io),
  ).toBe(0);
  const otherCa = {
    certificate: parseCertificate(readFileSync(join(other, 'ca.cert.pem'), 'utf8')),
    privateKey: privateKeyFromPem(readFileSync(join(other, 'ca.key.pem'), 'utf8')),
  };
  const foreign = join(base, 'foreign.crl.pem');
  writeFileSync(
    foreign,
    createCrl(otherCa, {
      entries: [],
      thisUpdate: new Date(Math.floor(Date.now() / 1000) * 1000),
      nextUpdate: new Date(Date.now() + 86400000),
      crlNumber: 1,
    }).pem,
  );
  await expect(revokeSerials(['0a'], 'unspecified', { ca, crlFile: foreign, days: 7, now: new Date() })).rejects.toThrow(RegistryError);
  await expect(revokeSerials(['0a'], 'unspecified', { ca, crlFile: foreign, days: 7, now: new Date() })).rejects.toThrow(
    /is issued by ".*Org B.*", not by ".*Org A.*"/,
  );
});
