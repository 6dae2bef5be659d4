import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type OrgFixture, provisionOrg } from '../../src/demo/provision';

export type { ClientCreds, OrgFixture } from '../../src/demo/provision';

/** A provisioned organisation in a fresh temporary folder. */
export function makeOrgFixture(opts: Parameters<typeof provisionOrg>[1] = {}): OrgFixture {
  return provisionOrg(mkdtempSync(join(tmpdir(), 'ssmax-org-')), opts);
}
