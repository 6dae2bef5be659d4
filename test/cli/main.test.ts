import { main } from '../../src/cli/main';
import { secp256k1 } from '@noble/curves/secp256k1.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

describe('ssmax dispatcher', () => {
  test('--help lists every command group and exits 0', async () => {
    const c = capture();
    expect(await main(['--help'], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/crypto/);
  });
  test('an unknown command is a usage error (64) naming the command', async () => {
    const c = capture();
    expect(await main(['nope'], c.io)).toBe(64);
    expect(c.err.join('\n')).toMatch(/unknown command "nope"/);
  });
  test('ESM-only dependencies load under Jest', () => {
    expect(secp256k1.Point.BASE.toBytes(true)).toHaveLength(33);
  });
});
