import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CHUNK_SIZE, DEFAULT_LIMITS } from '../../src/envelope';

/** The shipped config/ssmax-format.ini writes out exactly the built-in defaults. */
test('config/ssmax-format.ini lists every default with its built-in value', () => {
  const ini = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-format.ini'), 'utf8');
  const values = Object.fromEntries([...ini.matchAll(/^([a-z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  expect(values).toEqual({
    max_parts: String(DEFAULT_LIMITS.maxParts),
    max_depth: String(DEFAULT_LIMITS.maxDepth),
    max_headers: String(DEFAULT_LIMITS.maxHeaders),
    max_header_length: String(DEFAULT_LIMITS.maxHeaderLength),
    max_header_block: String(DEFAULT_LIMITS.maxHeaderBlock),
    max_capsules: String(DEFAULT_LIMITS.maxCapsules),
    chunk_size: String(DEFAULT_CHUNK_SIZE),
    backend: 'auto',
  });
});
