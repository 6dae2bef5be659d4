/**
 * Chooses the group backend. Three implementations of one interface that
 * agree byte for byte (test/crypto/group.test.ts):
 *   native        libsecp256k1 as an N-API addon (fastest; where its prebuilt binary loads)
 *   libsecp256k1  libsecp256k1 compiled to WebAssembly (everywhere)
 *   noble         @noble/curves, the audited pure-TypeScript reference
 * `defaultGroup` — what keyd, the gateway, the inspector and the user tools
 * use — is SSMAX_CRYPTO_BACKEND when set, else native when it loads, else
 * libsecp256k1.
 */
import { CryptoError } from './errors';
import type { Group, GroupName } from './group';
import { libsecp256k1Group } from './group-libsecp256k1';
import { nativeGroup } from './group-native';
import { nobleGroup } from './group-noble';

/** Every backend this platform has (native only where its addon loads). */
export const groups: Readonly<Record<Exclude<GroupName, 'native'>, Group>> & { readonly native?: Group } = {
  noble: nobleGroup,
  libsecp256k1: libsecp256k1Group,
  ...(nativeGroup ? { native: nativeGroup } : {}),
};

export function groupByName(name: string): Group {
  if (name === 'auto') return nativeGroup ?? libsecp256k1Group;
  const g = (groups as Record<string, Group | undefined>)[name];
  if (!g) {
    const why = name === 'native' ? ' (the secp256k1 native addon did not load on this platform)' : '';
    throw new CryptoError('bad-input', `Unknown crypto backend "${name}"${why} (have: auto, ${Object.keys(groups).join(', ')})`);
  }
  return g;
}

export const defaultGroup: Group = groupByName(process.env.SSMAX_CRYPTO_BACKEND ?? 'auto');
