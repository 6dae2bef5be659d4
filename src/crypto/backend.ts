/**
 * Chooses the group backend. The fast one (libsecp256k1 in WASM) is the
 * default; SSMAX_CRYPTO_BACKEND=noble selects the reference, for comparison.
 */
import { CryptoError } from './errors';
import type { Group, GroupName } from './group';
import { libsecp256k1Group } from './group-libsecp256k1';
import { nobleGroup } from './group-noble';

export const groups: Readonly<Record<GroupName, Group>> = {
  noble: nobleGroup,
  libsecp256k1: libsecp256k1Group,
};

export function groupByName(name: string): Group {
  const g = (groups as Record<string, Group | undefined>)[name];
  if (!g) throw new CryptoError('bad-input', `Unknown crypto backend "${name}" (have: ${Object.keys(groups).join(', ')})`);
  return g;
}

export const defaultGroup: Group = groupByName(process.env.SSMAX_CRYPTO_BACKEND ?? 'libsecp256k1');
