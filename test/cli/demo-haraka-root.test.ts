/**
 * `ssmax demo` from a Haraka site folder where the plugin package is installed
 * and Haraka is installed globally (README's layout): the demo's Haraka is the
 * `haraka` command on PATH, since no `Haraka` module is beside the package.
 * It printed "Cannot find module 'Haraka/package.json'" and exited 70.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('without a Haraka module beside the code, the Haraka of the haraka command on PATH is used; with neither, the error says how to install it', () => {
  const base = realpathSync(mkdtempSync(join(tmpdir(), 'ssmax-harakaroot-')));
  // the demo's module where no node_modules/Haraka can be found (as inside an installed package)
  const code = join(base, 'pkg', 'dist', 'demo');
  mkdirSync(code, { recursive: true });
  for (const f of ['haraka.js', 'start-watch.js']) copyFileSync(join(__dirname, '..', '..', 'dist', 'demo', f), join(code, f));
  // a global Haraka: <prefix>/lib/node_modules/Haraka with bin/haraka, linked from <prefix>/bin
  const global = join(base, 'prefix', 'lib', 'node_modules', 'Haraka');
  mkdirSync(join(global, 'bin'), { recursive: true });
  writeFileSync(join(global, 'package.json'), '{"name":"Haraka","version":"3.3.4"}');
  writeFileSync(join(global, 'bin', 'haraka'), '#!/usr/bin/env node\n', { mode: 0o755 });
  mkdirSync(join(base, 'prefix', 'bin'));
  symlinkSync(join(global, 'bin', 'haraka'), join(base, 'prefix', 'bin', 'haraka'));
  const rootWith = (path: string) =>
    execFileSync(
      process.execPath,
      [
        '-e',
        `try { console.log(require(${JSON.stringify(join(code, 'haraka.js'))}).harakaRoot()) } catch (e) { console.log('ERROR ' + e.message) }`,
      ],
      {
        cwd: base,
        env: { PATH: path, HOME: base },
        encoding: 'utf8',
      },
    ).trim();
  expect(rootWith(`${join(base, 'prefix', 'bin')}:/usr/bin:/bin`)).toBe(global);
  expect(rootWith('/nonexistent')).toMatch(/^ERROR No Haraka found .*npm install -g Haraka@3\.3\.4/);
});
