import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Whether the secp256k1 native addon has a binary for the platform this test
 * runs on, decided at run time the way the addon itself decides: the package's
 * own node-gyp-build looks for a local build, else a prebuilt binary matching
 * this platform, architecture and C library. Where there is one, the native
 * backend must load and be the default; where there is none, the WebAssembly
 * build must take over.
 */
export function nativeAddonBinary(): string | undefined {
  const dir = dirname(require.resolve('secp256k1/package.json'));
  const gypBuild = createRequire(join(dir, 'package.json'))('node-gyp-build') as { path(dir: string): string };
  try {
    return gypBuild.path(dir);
  } catch {
    return undefined;
  }
}

/** "linux-x64", "darwin-arm64", …: this machine, for test names. */
export const platformName = `${process.platform}-${process.arch}`;
