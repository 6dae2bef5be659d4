/**
 * One exit-code table for every `ssmax` command (docs/cli.md): each command is
 * run as the operator runs it (`node bin/ssmax …`, the built CLI) with a
 * missing config file, an invalid one, bad arguments and missing inputs; the
 * exit code must be the table's, stderr one clear line and never a stack
 * trace ("    at " lines).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError, EXIT, exitOf } from '../../src/cli/command';
import { main } from '../../src/cli/main';
import { provisionOrg } from '../../src/demo/provision';

jest.setTimeout(300000);

const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');
const dir = mkdtempSync(join(tmpdir(), 'ssmax-exit-'));
const MISSING = join(dir, 'no-such-dir', 'ssmax.ini');
const INVALID = join(dir, 'invalid.ini');
const MESSAGE = join(dir, 'message.eml');
writeFileSync(INVALID, '[nothing]\nx=1\n');
writeFileSync(MESSAGE, 'From: a@a.example\r\nTo: b@b.example\r\nSubject: x\r\n\r\nhello\r\n');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function ssmax(args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60000);
    proc.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    proc.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    proc.once('error', reject);
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs every argument list, two at a time (the machine has two cores). */
async function runAll(list: readonly (readonly string[])[]): Promise<Run[]> {
  const out: Run[] = new Array(list.length);
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const i = next++;
      out[i] = await ssmax(list[i]!);
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}

function noStackTrace(r: Run): void {
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stdout).not.toMatch(/^\s+at /m);
}

/** Every command that reads a config file, with FILE where --config goes. */
const WITH_CONFIG: readonly (readonly string[])[] = [
  ['abuse', 'report', '--config', 'FILE', MESSAGE],
  ['abuse', 'resolve', '--config', 'FILE', '--token', 'x'],
  ['abuse', 'serve', '--config', 'FILE'],
  ['console', 'run', '--config', 'FILE'],
  ['directory', 'status', '--config', 'FILE'],
  ['directory', 'lookup', 'b.example', '--config', 'FILE'],
  ['inspector', 'run', '--config', 'FILE'],
  ['keyd', 'run', '--config', 'FILE'],
  ['keyd', '--config', 'FILE'],
  ['keyd', 'backup-master', '--config', 'FILE', '--shares', '3', '--threshold', '2'],
  ['keyd', 'audit', 'verify', '--config', 'FILE'],
  ['keyd', 'rotate', '--config', 'FILE'],
  ['publish', '--config', 'FILE'],
  ['publish', 'run', '--config=FILE'],
  ['registry', 'add', 'a@a.example', '--config', 'FILE', '--code', 'C-1', '--identity-ref', 'R-1', '--plain'],
  ['registry', 'show', 'a@a.example', '--config', 'FILE'],
  ['registry', 'suspend', 'a@a.example', '--config', 'FILE'],
  ['registry', 'reinstate', 'a@a.example', '--config', 'FILE'],
  ['registry', 'revoke', 'a@a.example', '--config', 'FILE'],
];

const withFile = (file: string) => WITH_CONFIG.map((args) => args.map((a) => a.replace('FILE', file)));

test('a missing config file: 66 from every command, one line naming the file, no stack trace', async () => {
  const runs = await runAll(withFile(MISSING));
  runs.forEach((r, i) => {
    const group = WITH_CONFIG[i]![0];
    expect({ args: WITH_CONFIG[i], code: r.code }).toEqual({ args: WITH_CONFIG[i], code: EXIT.noInput });
    expect(r.stderr).toBe(`ssmax ${group}: Cannot read config "${MISSING}": no such file\n`);
    noStackTrace(r);
  });
  expect(existsSync(join(dir, 'no-such-dir'))).toBe(false); // nothing was created on the way
});

test('an invalid config file (a required key missing): 78 from every command, naming file, section and key', async () => {
  const runs = await runAll(withFile(INVALID));
  runs.forEach((r, i) => {
    expect({ args: WITH_CONFIG[i], code: r.code }).toEqual({ args: WITH_CONFIG[i], code: EXIT.config });
    expect(r.stderr).toContain(INVALID);
    expect(r.stderr).toMatch(
      /\[[a-z_]+\] [a-z_]+: is required|\[[a-z_]+\] [a-z_]+(, or [a-z_ ,]+)? is required|a \[directory\] section|unknown section \[nothing\]/,
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    noStackTrace(r);
  });
});

test('bad arguments: 64 from every command and subcommand (unknown option, unknown subcommand, nothing given)', async () => {
  const cases: string[][] = [
    [],
    ['nope'],
    ...['abuse', 'ca', 'console', 'directory', 'inspector', 'keyd', 'publish', 'quarantine', 'registry', 'user'].flatMap((g) => [
      [g],
      [g, 'no-such-subcommand'],
    ]),
    ['abuse', 'report', '--bogus'],
    ['abuse', 'resolve', '--bogus'],
    ['abuse', 'serve', '--bogus'],
    ...['init-root', 'init-org', 'issue', 'revoke', 'crl', 'bundle', 'verify'].map((s) => ['ca', s, '--bogus']),
    ['crypto', 'demo', '--bogus'],
    ['crypto', 'demo', '--backend', 'nope'],
    ['demo', '--bogus'],
    ['directory', 'status', '--bogus'],
    ['directory', 'lookup', '--bogus'],
    ['inspector', 'run', '--bogus'],
    ['console', 'run', '--bogus'],
    ...['run', 'init-master', 'backup-master', 'restore-master', 'rotate'].map((s) => ['keyd', s, '--bogus']),
    ['keyd', 'audit', 'verify', '--bogus'],
    ['publish', 'run', '--bogus'],
    ['publish', 'run'],
    ['quarantine', 'list', '--bogus'],
    ['quarantine', 'list'],
    ...['add', 'show', 'suspend', 'reinstate', 'revoke'].map((s) => ['registry', s, '--bogus']),
    ...['init', 'sign-encrypt', 'send', 'open', 'update-bundle'].map((s) => ['user', s, '--bogus']),
  ];
  // In process (main() is what bin/ssmax runs; ~60 process starts take minutes on a loaded 2-core machine);
  // a few through the real binary as well.
  for (const args of cases) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
    expect({ args, code }).toEqual({ args, code: EXIT.usage });
    noStackTrace({ code, stdout: out.join('\n'), stderr: err.join('\n') });
  }
  const runs = await runAll([['keyd', 'run', '--bogus'], ['ca', 'issue', '--bogus'], ['nope']]);
  for (const r of runs) {
    expect(r.code).toBe(EXIT.usage);
    noStackTrace(r);
  }
});

test('missing inputs are 66, outputs that exist 73; `quarantine list` of a missing folder is an error and creates nothing', async () => {
  const missingDir = join(dir, 'absent');
  const cases: [string[], number, RegExp][] = [
    [['quarantine', 'list', '--state', missingDir], EXIT.noInput, /Cannot read quarantine folder ".*absent": no such folder/],
    [['quarantine', 'show', 'x', '--state', missingDir], EXIT.noInput, /no such folder/],
    [['quarantine', 'list', '--state', MESSAGE], EXIT.noInput, /not a folder/],
    [['user', 'open', '--profile', missingDir], EXIT.noInput, /Cannot read profile folder ".*absent": no such folder/],
    [['user', 'sign-encrypt', '--profile', missingDir], EXIT.noInput, /no such folder/],
    [['ca', 'crl', '--ca', missingDir], EXIT.noInput, /Cannot read CA certificate/],
    [['ca', 'verify', '--root', join(missingDir, 'root.pem'), '--cert', MESSAGE], EXIT.noInput, /Cannot read certificate file/],
    [
      ['keyd', 'restore-master', '--out', join(dir, 'restored.key'), join(missingDir, 'share-1.txt')],
      EXIT.noInput,
      /Cannot read share file/,
    ],
    [['keyd', 'init-master', '--out', MESSAGE], EXIT.cantCreate, /the file exists/],
  ];
  const runs = await runAll(cases.map((c) => c[0]));
  runs.forEach((r, i) => {
    const [args, code, message] = cases[i]!;
    expect({ args, code: r.code }).toEqual({ args, code });
    expect(r.stderr).toMatch(message);
    noStackTrace(r);
  });
  expect(existsSync(missingDir)).toBe(false);
});

test('output folders are created: backup-master --out-dir, init-master and restore-master --out in folders that do not exist yet', async () => {
  const fx = provisionOrg(join(dir, 'org'), { domain: 'a.example' });
  const sharesDir = join(dir, 'new', 'shares');
  const backup = await ssmax([
    'keyd',
    'backup-master',
    '--config',
    fx.configFile,
    '--shares',
    '3',
    '--threshold',
    '2',
    '--out-dir',
    sharesDir,
  ]);
  expect(backup.stderr).toBe('');
  expect(backup.code).toBe(0);
  expect(statSync(sharesDir).mode & 0o777).toBe(0o700);
  for (const n of [1, 2, 3]) expect(statSync(join(sharesDir, `share-${n}.txt`)).mode & 0o777).toBe(0o600);
  const restoredFile = join(dir, 'elsewhere', 'deeper', 'master.key');
  const restore = await ssmax([
    'keyd',
    'restore-master',
    '--out',
    restoredFile,
    join(sharesDir, 'share-1.txt'),
    join(sharesDir, 'share-3.txt'),
  ]);
  expect(restore.code).toBe(0);
  expect(readFileSync(fx.configFile, 'utf8')).toMatch(/^master_key=master\.key$/m);
  expect(readFileSync(restoredFile, 'utf8')).toBe(readFileSync(join(fx.dir, 'master.key'), 'utf8'));
  const again = await ssmax([
    'keyd',
    'restore-master',
    '--out',
    restoredFile,
    join(sharesDir, 'share-1.txt'),
    join(sharesDir, 'share-2.txt'),
  ]);
  expect(again.code).toBe(EXIT.cantCreate);
  const init = await ssmax(['keyd', 'init-master', '--out', join(dir, 'fresh', 'master.key')]);
  expect(init.code).toBe(0);
  expect(statSync(join(dir, 'fresh', 'master.key')).mode & 0o777).toBe(0o600);
  // an output folder that cannot be created: 73, one line
  mkdirSync(join(dir, 'blocked'));
  writeFileSync(join(dir, 'blocked', 'file'), 'x');
  const blocked = await ssmax([
    'keyd',
    'backup-master',
    '--config',
    fx.configFile,
    '--shares',
    '2',
    '--threshold',
    '2',
    '--out-dir',
    join(dir, 'blocked', 'file', 'sub'),
  ]);
  expect(blocked.code).toBe(EXIT.cantCreate);
  expect(blocked.stderr).toMatch(/^ssmax keyd: Cannot create folder ".*sub": ENOTDIR\n$/);
});

test('a service with a bad key file is 78, with its listen address taken 69; one line each', async () => {
  const fx = provisionOrg(join(dir, 'org2'), { domain: 'a.example' });
  const ini = readFileSync(fx.configFile, 'utf8');
  const badKey = join(fx.dir, 'bad-key.ini');
  writeFileSync(badKey, ini.replace(/^key=.*$/m, 'key=root.pem'));
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
  const busy = join(fx.dir, 'busy.ini');
  writeFileSync(busy, ini.replace(/^listen=.*$/m, `listen=127.0.0.1:${(taken.address() as AddressInfo).port}`));
  try {
    const [k, b] = await runAll([
      ['keyd', 'run', '--config', badKey],
      ['keyd', 'run', '--config', busy],
    ]);
    expect(k!.code).toBe(EXIT.config);
    // the setting and both files named (src/config/setting-files.ts), not OpenSSL's words alone
    expect(k!.stderr).toMatch(/^ssmax keyd: \S*bad-key\.ini \[tls\] key: "\S*\/root\.pem" is not an unencrypted private key \(.*\)\n$/);
    expect(b!.code).toBe(EXIT.unavailable);
    expect(b!.stderr).toMatch(/^ssmax keyd: listen EADDRINUSE: address already in use 127\.0\.0\.1:\d+\n$/);
  } finally {
    await new Promise((r) => taken.close(r));
  }
});

test('exitOf: the table for errors a command lets escape', () => {
  const errno = (code: string) => Object.assign(new Error(code), { code });
  expect(exitOf(new CliError('x', 65)).code).toBe(65);
  expect(exitOf(Object.assign(new Error('bad key'), { name: 'KeydConfigError' })).code).toBe(EXIT.config);
  expect(exitOf(errno('ENOENT')).code).toBe(EXIT.noInput);
  expect(exitOf(errno('EACCES')).code).toBe(EXIT.noPerm);
  expect(exitOf(errno('EEXIST')).code).toBe(EXIT.cantCreate);
  expect(exitOf(errno('ENOSPC')).code).toBe(EXIT.ioErr);
  expect(exitOf(errno('ECONNREFUSED')).code).toBe(EXIT.unavailable);
  expect(exitOf(errno('ETIMEDOUT')).code).toBe(EXIT.tempFail);
  expect(exitOf(errno('EADDRINUSE')).code).toBe(EXIT.unavailable);
  expect(exitOf(errno('ERR_OSSL_UNSUPPORTED'))).toEqual({
    code: EXIT.config,
    message: 'a TLS certificate or key of the configuration cannot be used (OpenSSL: ERR_OSSL_UNSUPPORTED)',
  });
  expect(exitOf(new Error('wrapped', { cause: errno('ENOENT') })).code).toBe(EXIT.noInput);
  expect(exitOf(new TypeError('a bug')).code).toBe(EXIT.software);
  expect(exitOf('a string').message).toBe('a string');
});
