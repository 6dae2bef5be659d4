import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeAddonBinary, platformName } from '../support/native-addon';

/**
 * Where the native addon cannot load (no prebuilt binary for the platform),
 * `auto` falls back to the WebAssembly build and asking for `native` by name
 * says why. Run in a child process (the built dist/, as the product runs)
 * whose module loader refuses secp256k1's binding.
 */
const dist = join(__dirname, '..', '..', 'dist', 'crypto', 'backend.js');
const dir = mkdtempSync(join(tmpdir(), 'ssmax-backend-'));
const preload = join(dir, 'no-addon.js');
writeFileSync(
  preload,
  `const Module = require('module'); const load = Module._load;
Module._load = function (request, ...rest) { if (request === 'secp256k1/bindings') throw new Error('no prebuilt binary (simulated)'); return load.call(this, request, ...rest); };\n`,
);

function run(code: string, env: Record<string, string> = {}): { status: number | null; out: string; err: string } {
  const { SSMAX_CRYPTO_BACKEND: _ignored, ...base } = process.env;
  const r = spawnSync(process.execPath, ['-r', preload, '-e', code], { encoding: 'utf8', env: { ...base, ...env } });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr };
}

test('without the addon, auto is the WebAssembly backend and its answers are right', () => {
  const r = run(`const b = require(${JSON.stringify(dist)});
    const w = b.defaultGroup, n = b.groups.noble;
    const same = Buffer.from(w.encode(w.mul(w.mulBase(7n), 11n))).equals(Buffer.from(n.encode(n.mulBase(77n))));
    console.log(JSON.stringify({ names: Object.keys(b.groups), def: w.name, same }));`);
  expect(r.status).toBe(0);
  expect(JSON.parse(r.out)).toEqual({ names: ['noble', 'libsecp256k1'], def: 'libsecp256k1', same: true });
});

test('without the addon, SSMAX_CRYPTO_BACKEND=native is refused saying the addon did not load', () => {
  const r = run(`require(${JSON.stringify(dist)})`, { SSMAX_CRYPTO_BACKEND: 'native' });
  expect(r.status).not.toBe(0);
  expect(r.err).toMatch(/Unknown crypto backend "native" \(the secp256k1 native addon did not load on this platform\)/);
});

const binary = nativeAddonBinary();
test(`without the simulated failure, on ${platformName} the same child process picks ${binary ? 'native (a binary exists here)' : 'libsecp256k1 (no native binary here)'}`, () => {
  const { SSMAX_CRYPTO_BACKEND: _ignored, ...base } = process.env;
  const r = spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(dist)}).defaultGroup.name)`], {
    encoding: 'utf8',
    env: base,
  });
  expect(r.status).toBe(0);
  expect(r.stdout.trim()).toBe(binary ? 'native' : 'libsecp256k1');
});
