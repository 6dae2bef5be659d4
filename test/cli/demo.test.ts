import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main';

jest.setTimeout(90000);

test('ssmax demo: two organisations, alice -> bob, the trace of both hops, and Bob reads what Alice wrote', async () => {
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  expect(await main(['demo'], io)).toBe(0);
  const text = out.join('\n');
  expect(text).toMatch(/gateway: 250 Queued \(SSMAX client mode, 1 copy\)/);
  // the trace says what its columns are, and who checked the older seal
  expect(text).toMatch(/one line per seal, oldest first: instance, the organisation that sealed, the result/);
  expect(text).toMatch(/seal i=1 +a\.example +pass +\S+ +cv=none +checked by b\.example, not here: its seal i=2 says cv=pass/);
  expect(text).toMatch(/seal i=2 +b\.example +pass +\S+ +cv=pass +signature verified here/);
  expect(text).toMatch(/ssmax-chain=pass header\.d=b\.example header\.i=2/);
  expect(text).toMatch(/Bob read exactly what Alice wrote\./);
});

test('ssmax demo --help and a bad option', async () => {
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  expect(await main(['demo', '--help'], io)).toBe(0);
  expect(await main(['demo', '--nope'], io)).toBe(64);
});

test("ssmax demo --dir X --keep runs again in the same folder (the earlier run's files are replaced); a folder with other files is refused", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ssmax-demo-keep-')), 'demo');
  const run = async () => {
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    return { code: await main(['demo', '--dir', dir, '--keep'], io), text: out.join('\n') };
  };
  const first = await run();
  expect(first.code).toBe(0);
  const keyFile = join(dir, 'a.example', 'pki', 'master.key');
  const firstKey = readFileSync(keyFile, 'utf8');
  const second = await run();
  expect(second.text).toMatch(/Bob read exactly what Alice wrote\./);
  expect(second.code).toBe(0);
  expect(readFileSync(keyFile, 'utf8')).not.toBe(firstKey); // a new organisation, not the old files
  expect(readdirSync(dir).sort()).toEqual(['.ssmax-demo', 'a.example', 'b.example']);

  const other = mkdtempSync(join(tmpdir(), 'ssmax-demo-other-'));
  writeFileSync(join(other, 'notes.txt'), 'mine\n');
  const out: string[] = [];
  expect(await main(['demo', '--dir', other, '--keep'], { out: (t) => out.push(t), err: (t) => out.push(t) })).toBe(73);
  expect(out.join('\n')).toMatch(/Cannot use --dir .*not from an earlier `ssmax demo` run \(notes\.txt\)/);
  expect(readFileSync(join(other, 'notes.txt'), 'utf8')).toBe('mine\n');
}, 300000);
