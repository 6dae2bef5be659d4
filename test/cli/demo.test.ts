import { main } from '../../src/cli/main';

jest.setTimeout(90000);

test('ssmax demo: two organisations, alice -> bob, the trace of both hops, and Bob reads what Alice wrote', async () => {
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  expect(await main(['demo'], io)).toBe(0);
  const text = out.join('\n');
  expect(text).toMatch(/gateway: 250 Queued \(SSMAX client mode, 1 copy\)/);
  expect(text).toMatch(/seal i=1 +a\.example +pass/);
  expect(text).toMatch(/seal i=2 +b\.example +pass/);
  expect(text).toMatch(/ssmax-chain=pass header\.d=b\.example header\.i=2/);
  expect(text).toMatch(/Bob read exactly what Alice wrote\./);
});

test('ssmax demo --help and a bad option', async () => {
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  expect(await main(['demo', '--help'], io)).toBe(0);
  expect(await main(['demo', '--nope'], io)).toBe(64);
});
