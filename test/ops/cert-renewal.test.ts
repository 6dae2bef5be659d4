/**
 * keyd's certificate renewal (src/keyd/cert-renewal.ts; docs/operations.md,
 * "Renewals") on its own: what a renewed certificate keeps and changes, the
 * file written in place with its chain, the audit record, the warning line
 * and metric for a certificate keyd cannot renew, and the [certificates]
 * settings.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AuditLog } from '../../src/keyd/audit';
import { join } from 'node:path';
import { type CaRevocation, keydCaRevocations } from '../../src/keyd/ca-revocations';
import { CERT_RENEWAL_DEFAULTS, CertRenewer, RenewalRefused, certPolicyOf, recertify, storeKeySerials } from '../../src/keyd/cert-renewal';
import { loadKeydConfig } from '../../src/keyd/config';
import { type KeydParts, openKeyd } from '../../src/keyd/daemon';
import { keydMetrics } from '../../src/ops/keyd-ops';
import { parseCertificate, roleOf } from '../../src/pki/certificate';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { createCrl } from '../../src/pki/crl';
import { issueSealingCertificate } from '../../src/pki/issue';
import { validateCertificate } from '../../src/pki/validate';
import { DAY, makeOrg, wholeSecondNow } from '../directory/fixtures';
import { withOverrides } from '../../src/demo/network';

/** Nothing revoked: the recertify calls that test what a renewal keeps and changes. */
const NONE = { revocations: () => new Map<string, CaRevocation>() };

const first = (pem: string) => /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pem)![0];

let parts: KeydParts | undefined;
afterAll(async () => {
  await parts?.store.close();
});

test('a renewed certificate: same subject, key and extensions; new serial and validity; it validates for its use', () => {
  const org = makeOrg('a.example');
  const now = wholeSecondNow();
  const old = org.seal;
  const fresh = recertify(org.fx.orgCa, old.der, new Date(now - 3600000), new Date(now + 90 * DAY), NONE);
  expect(fresh.subject).toBe(old.subject);
  expect(Buffer.from(fresh.spki).equals(Buffer.from(old.spki))).toBe(true);
  expect([
    fresh.dnsNames,
    fresh.extKeyUsage,
    [...(fresh.keyUsage ?? [])],
    fresh.policies,
    fresh.subjectKeyId,
    fresh.authorityKeyId,
    roleOf(fresh.der),
  ]).toEqual([
    old.dnsNames,
    old.extKeyUsage,
    [...(old.keyUsage ?? [])],
    old.policies,
    old.subjectKeyId,
    old.authorityKeyId,
    roleOf(old.der),
  ]);
  expect(fresh.serial).not.toBe(old.serial);
  expect(fresh.notAfter.getTime()).toBe(now + 90 * DAY);
  const check = validateCertificate({
    leaf: fresh,
    roots: [org.fx.root.certificate.pem],
    intermediates: [org.fx.orgCa.certificate.pem],
    crls: org.crls,
    use: 'seal',
    time: new Date(now + 20 * DAY),
  });
  expect(check.status).toBe('valid');
  // never past the CA's own validity
  expect(recertify(org.fx.orgCa, old.der, new Date(now), new Date(now + 99999 * DAY), NONE).notAfter.getTime()).toBe(
    org.fx.orgCa.certificate.notAfter.getTime(),
  );
  // not another CA's
  expect(() =>
    recertify(org.fx.orgCa, parseCertificate(org.fx.clients.foreign.cert).der, new Date(now), new Date(now + DAY), NONE),
  ).toThrow(/not by the org CA keyd holds/);
});

test('the schedule renews what is due in place (chain kept, mode kept, audited) and warns about what it cannot renew', async () => {
  const org = makeOrg('b.example');
  const dir = org.fx.dir;
  const now = wholeSecondNow();
  // a sealing certificate 30 days long, and keyd's TLS file (certificate + org CA chain)
  const kp = generateP256KeyPair();
  const seal = issueSealingCertificate(org.fx.orgCa, {
    domain: 'b.example',
    publicKey: kp.publicKey,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 30 * DAY),
  });
  writeFileSync(join(dir, 'seal.cert.pem'), seal.pem, { mode: 0o640 });
  writeFileSync(join(dir, 'foreign.pem'), org.fx.clients.foreign.cert);
  writeFileSync(
    org.fx.configFile,
    withOverrides(
      `${readFileSync(org.fx.configFile, 'utf8')}\n[certificates]\nrenew=seal.cert.pem,keyd.pem,foreign.pem\nrenew_at_days_left=10\nlifetime_days=30\nwarn_at_days_left=5\n`,
    ),
  );
  const config = loadKeydConfig(org.fx.configFile);
  const policy = certPolicyOf(config);
  expect(policy.files).toEqual([join(dir, 'seal.cert.pem'), join(dir, 'keyd.pem'), join(dir, 'foreign.pem')]);
  parts = openKeyd(config, () => new Date(now));
  const lines: string[] = [];
  const renewer = new CertRenewer(policy, org.fx.orgCa, parts.audit, (l) => lines.push(l), {
    revocations: keydCaRevocations(config, org.fx.orgCa.certificate),
  });
  const keydPem = readFileSync(join(dir, 'keyd.pem'), 'utf8');

  // day 1: nothing due, nothing written, no warning
  expect(await renewer.run(new Date(now + DAY))).toEqual([]);
  expect(readFileSync(join(dir, 'seal.cert.pem'), 'utf8')).toBe(seal.pem);
  expect(lines).toEqual([]);

  // day 21: the sealing certificate has 9 days left: renewed; keyd's (3650 days) is not; the foreign one is not due
  const at = new Date(now + 21 * DAY);
  expect(await renewer.run(at)).toEqual([join(dir, 'seal.cert.pem')]);
  const renewed = parseCertificate(readFileSync(join(dir, 'seal.cert.pem'), 'utf8'));
  expect(renewed.notAfter.getTime()).toBe(at.getTime() + 30 * DAY);
  expect(Buffer.from(renewed.spki).equals(Buffer.from(seal.spki))).toBe(true);
  expect(statSync(join(dir, 'seal.cert.pem')).mode & 0o777).toBe(0o640);
  expect(readFileSync(join(dir, 'keyd.pem'), 'utf8')).toBe(keydPem);
  const records = parts.audit.tail(100).filter((r) => r.op === 'cert.renew');
  expect(records).toHaveLength(1);
  expect(records[0]).toMatchObject({ actor: 'keyd schedule', result: 'ok' });
  expect(records[0]!.reason).toContain(`serial ${renewed.serial} (was ${seal.serial})`);
  expect(parts.audit.verify()).toMatchObject({ ok: true });
  expect(lines.filter((l) => /WARNING/.test(l))).toEqual([]);

  // keyd's own file: the chain after the certificate survives a renewal
  const late = new Date(parseCertificate(first(keydPem)).notAfter.getTime() - 5 * DAY);
  expect(await renewer.run(late)).toContain(join(dir, 'keyd.pem'));
  const keydNow = readFileSync(join(dir, 'keyd.pem'), 'utf8');
  expect(keydNow.endsWith(org.fx.orgCa.certificate.pem)).toBe(true);
  expect(parseCertificate(first(keydNow)).serial).not.toBe(parseCertificate(first(keydPem)).serial);

  // the foreign certificate (365 days) inside its warning window: a WARNING line and the metric; the file untouched
  const foreignEnd = parseCertificate(org.fx.clients.foreign.cert).notAfter.getTime();
  lines.length = 0;
  await renewer.run(new Date(foreignEnd - 4 * DAY));
  expect(lines.join('\n')).toMatch(
    /WARNING certificate ".*foreign\.pem" .* expires at .* keyd cannot renew it \(it is issued by ".*", not by the org CA keyd holds\)/,
  );
  expect(readFileSync(join(dir, 'foreign.pem'), 'utf8')).toBe(org.fx.clients.foreign.cert);
  const metrics = await keydMetrics(parts, () => new Date(foreignEnd - 4 * DAY), { certs: renewer }).metrics();
  expect(metrics).toMatch(/ssmax_keyd_renewal_warning\{item="cert:[^"]*foreign\.pem"\} 1/);
  expect(metrics).toMatch(/ssmax_keyd_renewal_warning\{item="cert:[^"]*seal\.cert\.pem"\} 0/);
  expect(metrics).toMatch(/ssmax_keyd_certificate_expiry_timestamp_seconds\{file="[^"]*foreign\.pem",renewable="false"\} \d+/);
});

test('a renewal whose audit record cannot be written changes no file and leaves nothing staged; the record commits before the file is replaced', async () => {
  const org = makeOrg('d.example');
  const dir = org.fx.dir;
  const now = wholeSecondNow();
  const kp = generateP256KeyPair();
  const seal = issueSealingCertificate(org.fx.orgCa, {
    domain: 'd.example',
    publicKey: kp.publicKey,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 5 * DAY),
  });
  const file = join(dir, 'seal.cert.pem');
  writeFileSync(file, seal.pem);
  const config = loadKeydConfig(org.fx.configFile);
  const policy = { ...certPolicyOf(config), files: [file] };
  const opts = { revocations: keydCaRevocations(config, org.fx.orgCa.certificate) };
  const lines: string[] = [];
  const failing = {
    append: async () => {
      throw new Error('audit store closed');
    },
  } as unknown as AuditLog;
  expect(await new CertRenewer(policy, org.fx.orgCa, failing, (l) => lines.push(l), opts).run(new Date(now))).toEqual([]);
  expect(readFileSync(file, 'utf8')).toBe(seal.pem);
  expect(existsSync(`${file}.renewed`)).toBe(false);
  expect(lines.join('\n')).toMatch(/WARNING certificate ".*seal\.cert\.pem" .* keyd cannot renew it \(audit store closed\)/);
  // an audit log that looks at the file when its record is written: still the old certificate then
  const seen: string[] = [];
  const watching = {
    append: async () => {
      seen.push(readFileSync(file, 'utf8'));
      return {};
    },
  } as unknown as AuditLog;
  expect(await new CertRenewer(policy, org.fx.orgCa, watching, undefined, opts).run(new Date(now))).toEqual([file]);
  expect(seen).toEqual([seal.pem]);
  expect(readFileSync(file, 'utf8')).not.toBe(seal.pem);
  expect(existsSync(`${file}.renewed`)).toBe(false);
});

test('a certificate file replaced while keyd renews it (ssmax ca issue --force meanwhile) is kept, never overwritten with the renewal', async () => {
  const org = makeOrg('g.example');
  const now = wholeSecondNow();
  const issue = () =>
    issueSealingCertificate(org.fx.orgCa, {
      domain: 'g.example',
      publicKey: generateP256KeyPair().publicKey,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 5 * DAY),
    });
  const file = join(org.fx.dir, 'seal.cert.pem');
  writeFileSync(file, issue().pem);
  const config = loadKeydConfig(org.fx.configFile);
  const policy = { ...certPolicyOf(config), files: [file] };
  const replacement = issue().pem;
  const lines: string[] = [];
  // the operator's new certificate lands while the renewal's record is being written
  const replacing = {
    append: async () => {
      writeFileSync(file, replacement);
      return {};
    },
  } as unknown as AuditLog;
  const renewer = new CertRenewer(policy, org.fx.orgCa, replacing, (l) => lines.push(l), {
    revocations: keydCaRevocations(config, org.fx.orgCa.certificate),
  });
  expect(await renewer.run(new Date(now))).toEqual([]);
  expect(readFileSync(file, 'utf8')).toBe(replacement);
  expect(existsSync(`${file}.renewed`)).toBe(false);
  expect(lines.join('\n')).toMatch(/certificate ".*seal\.cert\.pem" changed while keyd renewed it; the new file is kept/);
});

test('a revoked certificate is never renewed: not under its serial, nor its key under a later serial; the warning metric and an ERROR line name it', async () => {
  const org = makeOrg('e.example');
  const dir = org.fx.dir;
  const now = wholeSecondNow();
  // the fixture's revoked gateway certificate (in org-ca.crl.pem), and a sealing certificate keyd renews once
  const revokedFile = join(dir, 'gw-revoked.pem');
  writeFileSync(revokedFile, org.fx.clients.revoked.cert);
  const seal = issueSealingCertificate(org.fx.orgCa, {
    domain: 'e.example',
    publicKey: generateP256KeyPair().publicKey,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 5 * DAY),
  });
  const sealFile = join(dir, 'seal.cert.pem');
  writeFileSync(sealFile, seal.pem);
  const config = loadKeydConfig(org.fx.configFile);
  const policy = { ...certPolicyOf(config), files: [revokedFile, sealFile], renewBeforeMs: 400 * DAY, validityMs: 800 * DAY };
  const own = openKeyd(config, () => new Date(now));
  try {
    const lines: string[] = [];
    const renewer = new CertRenewer(policy, org.fx.orgCa, own.audit, (l) => lines.push(l), {
      revocations: keydCaRevocations(config, org.fx.orgCa.certificate),
      keySerials: storeKeySerials(own.store.meta),
    });
    const revokedSerial = parseCertificate(org.fx.clients.revoked.cert).serial;
    expect(await renewer.run(new Date(now))).toEqual([sealFile]);
    expect(readFileSync(revokedFile, 'utf8')).toBe(org.fx.clients.revoked.cert);
    expect(existsSync(`${revokedFile}.renewed`)).toBe(false);
    expect(lines.join('\n')).toContain(
      `keyd: ERROR certificate "${revokedFile}" ("${parseCertificate(org.fx.clients.revoked.cert).subject}", serial ${revokedSerial}) is not renewed: serial ${revokedSerial} is revoked (in the CRL "${join(dir, 'org-ca.crl.pem')}" (keyCompromise))`,
    );
    expect(renewer.status()[0]).toMatchObject({ file: revokedFile, renewable: false, warning: true });
    // the warning stands outside the warning window too (365 days left, warn_at_days_left 14)
    const metrics = await keydMetrics(own, () => new Date(now), { certs: renewer }).metrics();
    expect(metrics).toContain(`ssmax_keyd_renewal_warning{item="cert:${revokedFile}"} 1`);
    expect(metrics).toContain(`ssmax_keyd_renewal_warning{item="cert:${sealFile}"} 0`);
    expect(own.audit.tail(100).filter((r) => r.op === 'cert.renew')).toHaveLength(1);

    // the sealing certificate's first serial is revoked after its renewal: the renewed one (same key) is not renewed again
    const renewed = parseCertificate(readFileSync(sealFile, 'utf8'));
    expect(renewed.serial).not.toBe(seal.serial);
    const crl = createCrl(org.fx.orgCa, {
      entries: [
        { serial: revokedSerial, revokedAt: new Date(now - 1000), reason: 'keyCompromise' },
        { serial: seal.serial, revokedAt: new Date(now), reason: 'keyCompromise' },
      ],
      thisUpdate: new Date(now),
      nextUpdate: new Date(now + 7 * DAY),
      crlNumber: 3,
    });
    writeFileSync(join(dir, 'org-ca.crl.pem'), crl.pem);
    lines.length = 0;
    const later = new Date(now + 450 * DAY);
    expect(await renewer.run(later)).toEqual([]);
    expect(readFileSync(sealFile, 'utf8')).toBe(renewed.pem.endsWith('\n') ? renewed.pem : `${renewed.pem}\n`);
    expect(lines.join('\n')).toContain(
      `keyd: ERROR certificate "${sealFile}" ("${renewed.subject}", serial ${renewed.serial}) is not renewed: its public key was certified under serial ${seal.serial}, which is revoked`,
    );
    expect(await keydMetrics(own, () => later, { certs: renewer }).metrics()).toContain(
      `ssmax_keyd_renewal_warning{item="cert:${sealFile}"} 1`,
    );
  } finally {
    await own.store.close();
  }
});

test("no renewal while the org CA's revocations cannot be read: a CRL gone or unreadable, none of the org CA, a bad ca.json, none given", async () => {
  const org = makeOrg('f.example');
  const dir = org.fx.dir;
  const now = wholeSecondNow();
  const sealFile = join(dir, 'seal.cert.pem');
  const seal = issueSealingCertificate(org.fx.orgCa, {
    domain: 'f.example',
    publicKey: generateP256KeyPair().publicKey,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 5 * DAY),
  });
  writeFileSync(sealFile, seal.pem);
  const config = loadKeydConfig(org.fx.configFile);
  const policy = { ...certPolicyOf(config), files: [sealFile] };
  const audit = { append: async () => ({}) } as unknown as AuditLog;
  const attempt = async (opts: ConstructorParameters<typeof CertRenewer>[4]) => {
    const lines: string[] = [];
    const renewed = await new CertRenewer(policy, org.fx.orgCa, audit, (l) => lines.push(l), opts).run(new Date(now));
    expect(readFileSync(sealFile, 'utf8')).toBe(seal.pem);
    expect(renewed).toEqual([]);
    return lines.join('\n');
  };
  const crlFile = join(dir, 'org-ca.crl.pem');
  const crlText = readFileSync(crlFile, 'utf8');
  const revocations = keydCaRevocations(config, org.fx.orgCa.certificate);
  // the org CA's CRL gone
  rmSync(crlFile);
  expect(await attempt({ revocations })).toMatch(
    new RegExp(
      `ERROR certificate "${sealFile}" .*serial ${seal.serial}\\) is not renewed: keyd cannot tell whether serial ${seal.serial} is revoked: cannot read the CRL "${crlFile}"`,
    ),
  );
  // not a CRL
  writeFileSync(crlFile, 'garbage\n');
  expect(await attempt({ revocations })).toMatch(/is not renewed: keyd cannot tell whether serial .* cannot read the CRL/);
  // a CRL naming the org CA, signed by another key
  const forged = createCrl(
    { certificate: org.fx.orgCa.certificate, privateKey: generateP256KeyPair().privateKey },
    {
      entries: [],
      thisUpdate: new Date(now),
      nextUpdate: new Date(now + DAY),
      crlNumber: 9,
    },
  );
  writeFileSync(crlFile, forged.pem);
  expect(await attempt({ revocations })).toMatch(/signature does not verify with the org CA's key/);
  writeFileSync(crlFile, crlText);
  // only the root's CRL listed: nothing says what the org CA revoked
  const rootOnly = { ...config, pki: { ...config.pki, crls: [join(dir, 'root.crl.pem')] } };
  expect(await attempt({ revocations: keydCaRevocations(rootOnly, org.fx.orgCa.certificate) })).toMatch(
    /no CRL of the org CA .* in \[pki\] crls/,
  );
  // ca.json beside [pki] org_ca_cert: its revoked list counts, and one that cannot be read stops renewal
  const caJson = join(dir, 'ca.json');
  writeFileSync(
    caJson,
    JSON.stringify({
      kind: 'org',
      issued: [],
      revoked: [{ serial: seal.serial, revokedAt: new Date(now).toISOString(), reason: 'superseded' }],
    }),
  );
  expect(await attempt({ revocations })).toContain(`serial ${seal.serial} is revoked (in "${caJson}" (superseded))`);
  writeFileSync(caJson, '{');
  expect(await attempt({ revocations })).toMatch(/cannot tell whether .* Cannot read CA state .*ca\.json.*not JSON/);
  rmSync(caJson);
  // the CA folder elsewhere, named by [pki] org_ca_state: its ca.json counts the same; named but not there: nothing renewed
  const caDir = join(dir, 'ca-folder');
  mkdirSync(caDir);
  writeFileSync(
    join(caDir, 'ca.json'),
    JSON.stringify({
      kind: 'org',
      issued: [],
      revoked: [{ serial: seal.serial, revokedAt: new Date(now).toISOString(), reason: 'superseded' }],
    }),
  );
  const named = (orgCaState: string) => keydCaRevocations({ ...config, pki: { ...config.pki, orgCaState } }, org.fx.orgCa.certificate);
  expect(await attempt({ revocations: named(caDir) })).toContain(
    `serial ${seal.serial} is revoked (in "${join(caDir, 'ca.json')}" (superseded))`,
  );
  expect(await attempt({ revocations: named(join(dir, 'no-ca-folder')) })).toMatch(
    /cannot tell whether .* Cannot read CA state .*no-ca-folder\/ca\.json.*no such file/,
  );
  // a renewer given no revocations renews nothing
  expect(await attempt({})).toMatch(/is not renewed: keyd cannot tell whether .* keyd was given no revocation state/);
  // and with everything readable and nothing revoked, it renews
  expect(await new CertRenewer(policy, org.fx.orgCa, audit, undefined, { revocations }).run(new Date(now))).toEqual([sealFile]);
  // a revocation refused by recertify itself, whoever calls it
  expect(() => recertify(org.fx.orgCa, org.fx.clients.revoked.cert, new Date(now), new Date(now + DAY), { revocations })).toThrow(
    RenewalRefused,
  );
});

test('[certificates]: shipped defaults written out; a bad value is refused naming it', () => {
  const shipped = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-keyd.ini'), 'utf8');
  const from = shipped.indexOf('\n[certificates]\n');
  const section = shipped.slice(from, shipped.indexOf('\n[', from + 2));
  const commented = Object.fromEntries([...section.matchAll(/^;([a-z_]+)=(\S*)$/gm)].map((m) => [m[1], m[2]]));
  expect(commented).toEqual(Object.fromEntries(Object.entries(CERT_RENEWAL_DEFAULTS).map(([k, v]) => [k, String(v)])));
  const org = makeOrg('c.example');
  writeFileSync(
    org.fx.configFile,
    withOverrides(`${readFileSync(org.fx.configFile, 'utf8')}\n[certificates]\nlifetime_days=20\nrenew_at_days_left=30\n`),
  );
  expect(() => certPolicyOf(loadKeydConfig(org.fx.configFile))).toThrow(
    /\[certificates\] renew_at_days_left: must be less than lifetime_days/,
  );
});
