/**
 * `ssmax keyd backup` into a folder that exists already, empty, with a wider
 * mode (src/keyd/backup.ts backupKeyd): the folder is made 0700 and each file
 * in it 0600, as docs/operations.md ("Backups") says — mkdir's mode only
 * counts for a folder it creates.
 */
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BACKUP_FILE, MANIFEST_FILE, backupKeyd } from '../../src/keyd/backup';
import { loadKeydConfig } from '../../src/keyd/config';
import { KEYD_ACTOR, openKeyd } from '../../src/keyd/daemon';
import { makeOrgFixture } from '../support/org-fixture';

jest.setTimeout(60000);

test('an existing empty folder of mode 0755 is made 0700; the copy and its manifest are 0600', async () => {
  const fx = makeOrgFixture();
  const config = loadKeydConfig(fx.configFile);
  const parts = openKeyd(config);
  await parts.service.maintain(KEYD_ACTOR);
  await parts.store.close();
  const out = join(fx.dir, 'backup-out');
  mkdirSync(out, { mode: 0o755 });
  expect(statSync(out).mode & 0o777).toBe(0o755);
  await backupKeyd(config, out);
  expect((statSync(out).mode & 0o777).toString(8)).toBe('700');
  const files = readdirSync(out).sort();
  expect(files).toEqual([BACKUP_FILE, MANIFEST_FILE].sort());
  for (const f of files) expect((statSync(join(out, f)).mode & 0o777).toString(8)).toBe('600');
});
