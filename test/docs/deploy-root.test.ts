/**
 * docs/deploy.md step 4, the SSMAX root's operator: the blocks marked
 * `deploy-root-init` and `deploy-root` run as written, with bash in an empty
 * folder, the `ssmax` of this checkout's build (npm run build) first on PATH.
 * The walkthrough (test/install/deploy-walkthrough.test.ts) runs `deploy-root`
 * against a root shared with its second organisation, so it cannot make its
 * own; this is where making a root from nothing is proven.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCertificate } from '../../src/pki/certificate';
import { parseCrl } from '../../src/pki/crl';
import { fromPemAll } from '../../src/pki/pem';
import { runBlock, testedBlocks } from '../support/doc-blocks';

jest.setTimeout(60000);

const PROJECT = join(__dirname, '..', '..');
const DOC = join(PROJECT, 'docs', 'deploy.md');
const work = mkdtempSync(join(tmpdir(), 'ssmax-deploy-root-'));
const bin = join(work, '.bin');

beforeAll(() => {
  // `ssmax` as the installed package provides it: this checkout's bin/ssmax (it runs dist/)
  mkdirSync(bin);
  writeFileSync(join(bin, 'ssmax'), `#!/bin/sh\nexec "${process.execPath}" "${join(PROJECT, 'bin', 'ssmax')}" "$@"\n`);
  chmodSync(join(bin, 'ssmax'), 0o755);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("a root from nothing, then an organisation's CA and the root's CRL from it, as step 4 says", async () => {
  const env = { PATH: `${bin}:${process.env.PATH ?? ''}`, DOMAIN: 'a.example', ORG: 'A Corp' };
  const init = await runBlock(testedBlocks(DOC, 'deploy-root-init')[0]!, work, env);
  expect(init.output).toMatch(/Created root CA .* in ssmax-root/);
  expect(init.status).toBe(0);
  const org = await runBlock(testedBlocks(DOC, 'deploy-root')[0]!, work, env);
  expect(org.output).toMatch(/Created organisation CA .* for a\.example in a\.example-ca/);
  expect(org.status).toBe(0);

  const root = parseCertificate(readFileSync(join(work, 'ssmax-root', 'ca.cert.pem'), 'utf8'));
  const orgCa = parseCertificate(readFileSync(join(work, 'a.example-ca', 'ca.cert.pem'), 'utf8'));
  expect(orgCa.issuer).toBe(root.subject);
  // the org CA's chain ends with the root that was just made (what ssmax setup requires of --org-ca)
  const chain = fromPemAll(readFileSync(join(work, 'a.example-ca', 'chain.pem'), 'utf8'), 'CERTIFICATE').map((d) => parseCertificate(d));
  expect(chain[chain.length - 1]!.serial).toBe(root.serial);
  const crl = parseCrl(readFileSync(join(work, 'root.crl.pem'), 'utf8'));
  expect(crl.crlNumber).toBe(1n);
});
