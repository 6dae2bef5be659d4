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

describe('ssmax crypto demo', () => {
  test('runs the whole chain and bob reads what alice wrote, on both backends', async () => {
    for (const backend of ['libsecp256k1', 'noble']) {
      const c = capture();
      expect(await main(['crypto', 'demo', '--backend', backend], c.io)).toBe(0);
      const out = c.out.join('\n');
      expect(out).toMatch(/DLEQ proof verified/);
      expect(out).toMatch(/content unchanged: true[\s\S]*content unchanged: true/);
      expect(out).toMatch(/bob decrypts: identical to what alice wrote/);
    }
  });
  test('--help exits 0; an unknown option or backend is refused', async () => {
    expect(await main(['crypto', 'demo', '--help'], capture().io)).toBe(0);
    const bad = capture();
    expect(await main(['crypto', 'demo', '--nope'], bad.io)).toBe(64);
    const bad2 = capture();
    expect(await main(['crypto', 'demo', '--backend', 'x'], bad2.io)).toBe(64);
    expect(bad2.err.join('')).toMatch(/Cannot use --backend "x": one of auto, native, libsecp256k1, noble/);
  });
});
