/**
 * The anchors our figures are compared with, measured in the same run (issue 22):
 * Umbral's `reencrypt` in process (`@nucypher/umbral-pre`, the proxy
 * re-encryption scheme a user would pick instead of keyd), and — in
 * gateway.ts — Haraka relaying with its own DKIM signing plugin. No figure here
 * is typed in: a peer that cannot be loaded is reported as missing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { measure } from './harness';

/** Umbral re-encryptions/s in this process (one capsule fragment per call, threshold 1 of 1), or why it could not be measured. */
export async function umbralReencrypt(): Promise<{ rate: number; version: string } | { missing: string }> {
  let umbral: typeof import('@nucypher/umbral-pre');
  let version: string;
  try {
    umbral = await import('@nucypher/umbral-pre');
    version = (
      JSON.parse(readFileSync(join(require.resolve('@nucypher/umbral-pre'), '..', '..', 'package.json'), 'utf8')) as { version: string }
    ).version;
  } catch (err) {
    return { missing: `@nucypher/umbral-pre not loadable: ${(err as Error).message.split('\n')[0]}` };
  }
  const delegating = umbral.SecretKey.random();
  const receiving = umbral.SecretKey.random();
  const signer = new umbral.Signer(umbral.SecretKey.random());
  const kfrag = umbral.generateKFrags(delegating, receiving.publicKey(), signer, 1, 1, false, false)[0]!;
  const [capsule] = umbral.encrypt(delegating.publicKey(), new Uint8Array(32));
  const rate = await measure(() => umbral.reencrypt(capsule, kfrag).free()); // freed: WebAssembly memory is not collected
  return { rate, version };
}
