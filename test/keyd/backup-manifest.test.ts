/**
 * The manifest of a keyd backup (src/keyd/backup.ts) is read before anything
 * else of a restore: a manifest whose fields are not what they claim to be is
 * refused with a clear configuration error naming what it found, and nothing
 * is written.
 */
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restoreKeyd } from '../../src/keyd/backup';
import type { KeydConfig } from '../../src/keyd/config';
import { KeydError } from '../../src/keyd/errors';

test('a backup format that is no string (an object with a "toString" of its own) is an unknown format, said as such; data_dir stays empty', async () => {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-manifest-'));
  const dataDir = join(base, 'data');
  const from = join(base, 'backup');
  for (const d of [dataDir, from]) mkdirSync(d);
  writeFileSync(join(from, 'ssmax-keyd-backup.json'), '{"format":{"toString":1},"domain":"a.example"}\n');
  const config = { dataDir, domain: 'a.example' } as unknown as KeydConfig;
  const err = await restoreKeyd(config, from).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KeydError);
  expect((err as KeydError).code).toBe('config');
  expect((err as KeydError).message).toBe('Unknown backup format "an object"');
  expect(readdirSync(dataDir)).toEqual([]);
});
