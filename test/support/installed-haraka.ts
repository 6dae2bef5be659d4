/**
 * Haraka installed the way an administrator installs it, apart from this
 * checkout: `npm install Haraka@<the version of package-lock.json>` into a
 * folder with its own node_modules, `haraka -i <site>`, and the plugin as the
 * packed tarball (scripts/pack-plugin.js). npm runs with its ordinary cache
 * and prefer-offline, so a second run downloads nothing.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const PROJECT = resolve(__dirname, '..', '..');

/** npm's settings for the tests: cached downloads first, no audit/fund round trips. */
export const NPM_ENV: Record<string, string> = {
  npm_config_prefer_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
  npm_config_loglevel: 'error',
};

export function lockedHarakaVersion(): string {
  const lock = JSON.parse(readFileSync(join(PROJECT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
  const v = lock.packages['node_modules/Haraka']?.version;
  if (!v) throw new Error('package-lock.json has no Haraka');
  return v;
}

function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((res, rej) => {
    execFile(
      cmd,
      args,
      { cwd, env: { ...process.env, ...NPM_ENV }, encoding: 'utf8', timeout: 300000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) rej(new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${err.message}\n${stdout}${stderr}`, { cause: err }));
        else res(stdout);
      },
    );
  });
}

/** Packs haraka-plugin-ssmax from the built checkout into `outDir`; returns the tarball's path. */
export async function packPlugin(outDir: string): Promise<string> {
  return (await run(process.execPath, [join(PROJECT, 'scripts', 'pack-plugin.js'), '--out', outDir], PROJECT)).trim().split('\n').pop()!;
}

/** Installs Haraka from the registry into `dir` (own package.json and node_modules); returns its bin/haraka. */
export async function installHaraka(dir: string, version = lockedHarakaVersion()): Promise<string> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{ "name": "haraka-install", "private": true }\n');
  await run('npm', ['install', `Haraka@${version}`], dir);
  return join(dir, 'node_modules', 'Haraka', 'bin', 'haraka');
}

/** `haraka -i <site>` with that Haraka. */
export async function harakaInit(bin: string, site: string): Promise<void> {
  await run(process.execPath, [bin, '-i', site], resolve(site, '..'));
}
