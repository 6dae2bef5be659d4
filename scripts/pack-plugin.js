#!/usr/bin/env node
// Builds the npm package haraka-plugin-ssmax from this checkout and packs it:
//   node scripts/pack-plugin.js [--out DIR]     (npm run pack:plugin builds first)
// The package holds the compiled code (dist/, without the benchmarks), the
// `ssmax` command, every shipped config file (config/, the settings and their
// defaults), the docs, and its own dependencies: those of this project without
// Haraka, with the exact versions of package-lock.json (an npm-shrinkwrap.json,
// which npm honours when the tarball is installed). Haraka is a peer dependency:
// the plugin runs inside the administrator's Haraka and reaches its modules
// through this.haraka_require, so no second copy is installed next to it.
// Prints the tarball's path as its last line.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PROJECT = path.resolve(__dirname, '..');
const HELP = `Usage: node scripts/pack-plugin.js [--out DIR]

Packs the Haraka plugin package haraka-plugin-ssmax-<version>.tgz from the
built checkout (run "npm run build" first, or "npm run pack:plugin").

  --out DIR   where the tarball goes (created when missing); default: build/
  --help      this text

Install it in a Haraka folder with: npm install ./haraka-plugin-ssmax-<version>.tgz
`;

function fail(msg, code) {
  process.stderr.write(`pack-plugin: ${msg}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { out: path.join(PROJECT, 'build') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    } else if (a === '--out' && argv[i + 1]) opts.out = path.resolve(argv[++i]);
    else fail(`unknown argument "${a}" (see --help)`, 64);
  }
  return opts;
}

function copyTree(from, to, skip = () => false) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    if (skip(src)) continue;
    if (e.isDirectory()) copyTree(src, path.join(to, e.name), skip);
    else if (e.isFile()) fs.copyFileSync(src, path.join(to, e.name));
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dist = path.join(PROJECT, 'dist');
  if (!fs.existsSync(path.join(dist, 'gateway', 'plugin.js'))) fail('the project is not built; run "npm run build" first', 66);
  const root = JSON.parse(fs.readFileSync(path.join(PROJECT, 'package.json'), 'utf8'));
  const harakaVersion = root.dependencies.Haraka ?? root.devDependencies?.Haraka;
  if (!harakaVersion) fail('package.json names no Haraka version', 65);
  const dependencies = { ...root.dependencies };
  delete dependencies.Haraka;

  // a folder of its own per run (two packs at once do not meet), removed afterwards
  const stage = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ssmax-pack-')), 'haraka-plugin-ssmax');
  fs.mkdirSync(stage);
  try {
    pack(stage, dist, root, dependencies, harakaVersion, opts);
  } finally {
    fs.rmSync(path.dirname(stage), { recursive: true, force: true });
  }
}

function pack(stage, dist, root, dependencies, harakaVersion, opts) {
  copyTree(dist, path.join(stage, 'dist'), (p) => p === path.join(dist, 'bench'));
  copyTree(path.join(PROJECT, 'config'), path.join(stage, 'config'));
  copyTree(path.join(PROJECT, 'docs'), path.join(stage, 'docs'));
  copyTree(path.join(PROJECT, 'bin'), path.join(stage, 'bin'));
  fs.copyFileSync(path.join(PROJECT, 'README.md'), path.join(stage, 'README.md'));
  fs.writeFileSync(
    path.join(stage, 'index.js'),
    [
      "'use strict';",
      '// The ssmax Haraka plugin (config/plugins: ssmax). Haraka copies these exports onto the plugin object.',
      "module.exports = require('./dist/gateway/plugin.js');",
      '',
    ].join('\n'),
  );
  const pkg = {
    name: 'haraka-plugin-ssmax',
    version: root.version,
    description:
      'SSMAX for Haraka: encryption chain, authentication chain, inspection and sender tracking between organisations (the Haraka plugin "ssmax" and the ssmax command)',
    license: root.license,
    private: true,
    type: 'commonjs',
    main: 'index.js',
    bin: { ssmax: 'bin/ssmax' },
    files: ['index.js', 'dist/', 'bin/', 'config/', 'docs/', 'README.md'],
    engines: root.engines,
    dependencies,
    // the Haraka the plugin runs in; not installed with it (the administrator's Haraka is used)
    peerDependencies: { Haraka: `>=${harakaVersion} <4` },
    peerDependenciesMeta: { Haraka: { optional: true } },
  };
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);

  // The exact versions of this project's lock for the package's dependency tree:
  // start from package-lock.json and let npm drop what the package does not use.
  fs.copyFileSync(path.join(PROJECT, 'package-lock.json'), path.join(stage, 'package-lock.json'));
  const npm = (args) => execFileSync('npm', args, { cwd: stage, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  npm(['install', '--package-lock-only', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error']);
  checkPins(
    JSON.parse(fs.readFileSync(path.join(PROJECT, 'package-lock.json'), 'utf8')),
    JSON.parse(fs.readFileSync(path.join(stage, 'package-lock.json'), 'utf8')),
  );
  fs.renameSync(path.join(stage, 'package-lock.json'), path.join(stage, 'npm-shrinkwrap.json'));

  fs.mkdirSync(opts.out, { recursive: true });
  const out = npm(['pack', '--pack-destination', opts.out, '--loglevel=error']).trim().split('\n').pop();
  const tgz = path.join(opts.out, out);
  if (!fs.existsSync(tgz)) fail(`npm pack wrote no ${tgz}`, 70);
  process.stdout.write(`${tgz}\n`);
}

/** Every package in the shrinkwrap has the version this project's lock pins for it (no silent re-resolution). */
function checkPins(projectLock, packLock) {
  const byName = new Map();
  for (const [where, entry] of Object.entries(projectLock.packages)) {
    if (!where) continue;
    const name = where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (!byName.has(name)) byName.set(name, new Set());
    byName.get(name).add(entry.version);
  }
  const drift = [];
  for (const [where, entry] of Object.entries(packLock.packages)) {
    if (!where || entry.link) continue;
    const name = where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (!byName.get(name)?.has(entry.version)) drift.push(`${name}@${entry.version}`);
  }
  if (drift.length > 0) fail(`the package's tree differs from package-lock.json: ${drift.join(', ')}`, 65);
}

main();
