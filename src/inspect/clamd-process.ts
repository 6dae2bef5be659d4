/**
 * Starts a real clamd for tests, the demo and benchmarks, with a signature
 * database generated here (no freshclam): an MD5 signature of the EICAR test
 * file (sigtool --md5) and an extended substring signature. TCP on loopback.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClamdClient } from './clamd';
import { memoryFileSystem } from './clamd-settings';

/** The EICAR anti-virus test file (harmless by design). */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
/** A substring our generated database also detects (signature "Ssmax.Test.Marker"). */
export const TEST_MARKER = 'SSMAX-AV-TEST-MARKER-6b1f0c2e';

export interface ClamdProcess {
  readonly port: number;
  readonly proc: ChildProcess;
  /** clamd's configuration file (for `[av] clamd_config`). */
  readonly conf: string;
  /** Where clamd keeps its temporary files: a fresh folder on a memory file system. */
  readonly tempDir: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function bin(name: string): string {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin']) {
    try {
      execFileSync('test', ['-x', join(dir, name)]);
      return join(dir, name);
    } catch {
      /* next */
    }
  }
  return name;
}

export function writeTestDatabase(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const eicarFile = join(dir, 'eicar.com');
  writeFileSync(eicarFile, EICAR);
  const md5 = execFileSync(bin('sigtool'), ['--md5', eicarFile], { encoding: 'utf8' })
    .trim()
    .replace(/:[^:]*$/, ':Eicar-Test-Signature');
  writeFileSync(join(dir, 'ssmax-test.hdb'), `${md5}\n`);
  writeFileSync(join(dir, 'ssmax-test.ndb'), `Ssmax.Test.Marker:0:*:${Buffer.from(TEST_MARKER).toString('hex')}\n`);
  execFileSync('rm', ['-f', eicarFile]);
}

/** The memory file system clamd's temporary files go to: /dev/shm, checked to be a tmpfs (never a disk). */
export const MEMORY_TEMP_ROOT = '/dev/shm';

/**
 * `tempRoot`: where clamd's temporary folder is made; it must be on a memory
 * file system unless `allowDiskTemp` (only for the test that shows what
 * happens on disk without it).
 */
export async function startClamd(
  dir: string,
  port: number,
  opts: { readonly tempRoot?: string; readonly allowDiskTemp?: boolean; readonly streamMaxLength?: string } = {},
): Promise<ClamdProcess> {
  const db = join(dir, 'db');
  writeTestDatabase(db);
  const tempRoot = opts.tempRoot ?? MEMORY_TEMP_ROOT;
  if (!opts.allowDiskTemp && !memoryFileSystem(tempRoot))
    throw new Error(`Cannot start clamd: ${tempRoot} is not a tmpfs, and clamd's temporary files (the mail it scans) must stay in memory`);
  const tempDir = mkdtempSync(join(tempRoot, 'ssmax-clamd-'));
  const conf = join(dir, 'clamd.conf');
  writeFileSync(
    conf,
    [
      `DatabaseDirectory ${db}`,
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      'Foreground yes',
      `LogFile ${join(dir, 'clamd.log')}`,
      `PidFile ${join(dir, 'clamd.pid')}`,
      // the scanned mail and what clamd unpacks from it stay in memory, and are removed after each scan
      `TemporaryDirectory ${tempDir}`,
      'LeaveTemporaryFiles no',
      // archives and documents are opened; mail over a scan limit is reported (Heuristics.Limits.Exceeded), not passed as clean
      'ScanArchive yes',
      'ScanMail yes',
      'ScanOLE2 yes',
      'ScanPDF yes',
      'AlertExceedsMax yes',
      `StreamMaxLength ${opts.streamMaxLength ?? '100M'}`,
      'MaxScanSize 400M',
      'MaxFileSize 100M',
      '',
    ].join('\n'),
  );
  const proc = spawn(bin('clamd'), ['--config-file', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  proc.stderr!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const client = new ClamdClient({ host: '127.0.0.1', port, timeoutMs: 1000 });
  const deadline = Date.now() + 60000;
  while (!(await client.ping())) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`clamd did not start: ${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    port,
    proc,
    conf,
    tempDir,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill(signal);
        await exited;
      }
      rmSync(tempDir, { recursive: true, force: true });
    },
  };
}
