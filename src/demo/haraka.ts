/**
 * Lays out a Haraka folder with the ssmax plugin and starts Haraka as a real
 * process on a loopback port (for `ssmax demo`, the tests and the gateway
 * benchmark). Messages stay in memory while received (spool_after=-1), so no
 * plaintext submission touches the disk.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { failIfExitedBeforeUp } from './start-watch';

const PROJECT = resolve(__dirname, '..', '..');

export interface HarakaLayout {
  readonly port: number;
  /** Host name Haraka greets with (config/me). */
  readonly me: string;
  /** config/plugins, in order. */
  readonly plugins: readonly string[];
  /** Outbound retry schedule (Haraka's temp_fail_intervals, e.g. "1s*120"); Haraka's default when absent. */
  readonly retryIntervals?: string;
  /** Further config files: name → content (e.g. ssmax.ini, auth_flat_file.ini). */
  readonly files?: Readonly<Record<string, string>>;
}

export function layoutHaraka(dir: string, layout: HarakaLayout): void {
  mkdirSync(join(dir, 'config'), { recursive: true });
  mkdirSync(join(dir, 'plugins'), { recursive: true });
  for (const name of ['ssmax', 'ssmax-nodelay']) {
    try {
      symlinkSync(join(PROJECT, 'plugins', name), join(dir, 'plugins', name), 'dir');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const files: Record<string, string> = {
    'smtp.ini': withMain(harakaDefault('smtp.ini'), { listen: `127.0.0.1:${layout.port}`, nodes: '0' }),
    'connection.ini': withMain(harakaDefault('connection.ini'), { spool_after: '-1' }),
    'outbound.ini': `[main]\nenable_tls=false\n${layout.retryIntervals ? `temp_fail_intervals=${layout.retryIntervals}\n` : ''}`,
    'log.ini': '[main]\nlevel=info\ntimestamps=false\n',
    me: `${layout.me}\n`,
    plugins: `${layout.plugins.join('\n')}\n`,
    ...layout.files,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'config', name), text, { mode: 0o600 });
}

let foundRoot: string | undefined;

/**
 * The folder of the Haraka the demo runs: the one beside this code (the project's, or the site's node_modules), else
 * the `haraka` command on PATH (Haraka installed globally, the plugin package in a site folder: README's layout).
 */
export function harakaRoot(): string {
  foundRoot ??= findHarakaRoot();
  return foundRoot;
}

function findHarakaRoot(): string {
  try {
    return dirname(require.resolve('Haraka/package.json'));
  } catch {
    for (const dir of (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '')) {
      const bin = join(dir, 'haraka');
      if (!existsSync(bin)) continue;
      const root = dirname(dirname(realpathSync(bin)));
      try {
        if ((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name?: unknown }).name === 'Haraka') return root;
      } catch {
        // not Haraka's bin/haraka: the next one on PATH
      }
    }
    throw new Error('No Haraka found (neither beside the plugin nor a haraka command on PATH): install it, npm install -g Haraka@3.3.4');
  }
}

/** Haraka's shipped config file: a file we provide replaces it whole, so we start from it. */
function harakaDefault(name: string): string {
  return readFileSync(join(harakaRoot(), 'config', name), 'utf8');
}

/**
 * Sets keys of the [main] section, replacing any line for them; keys before
 * the first section header belong to [main] too, so the values go at the top.
 */
function withMain(ini: string, values: Record<string, string>): string {
  const lines = ini.split('\n').filter((l) => !Object.keys(values).some((k) => new RegExp(`^\\s*;?\\s*${k}\\s*=`).test(l)));
  const set = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  const at = lines.findIndex((l) => l.trim() === '[main]');
  if (at >= 0) lines.splice(at + 1, 0, ...set);
  else lines.unshift(...set);
  return lines.join('\n');
}

const handedOut = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 for a listener, below Linux's ephemeral range
 * (32768-60999): a port handed out from that range can be taken by an
 * outgoing connection before our listener binds it (EADDRINUSE under load).
 */
export async function freePort(): Promise<number> {
  // Each jest worker (or process) draws from its own slice of the range, and a
  // port is never handed out twice in one process: a probe only proves the
  // port free now, so two planned listeners must not share one.
  const worker = Number(process.env.JEST_WORKER_ID ?? '1');
  const slices = 4;
  const size = Math.floor(12000 / slices);
  const lo = 20000 + ((Number.isFinite(worker) ? worker - 1 : 0) % slices) * size;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = lo + Math.floor(Math.random() * size);
    if (handedOut.has(port)) continue;
    const ok = await new Promise<boolean>((res) => {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (ok) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('No free port found below 32000');
}

export interface HarakaProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  /** Everything Haraka printed so far. */
  logs(): string;
  stop(): Promise<void>;
}

/** `bin`: Haraka's bin/haraka (default: this project's Haraka; a separately installed one in the install test). */
export function startHaraka(
  dir: string,
  port: number,
  timeoutMs = 30000,
  bin = join(harakaRoot(), 'bin', 'haraka'),
): Promise<HarakaProcess> {
  return new Promise((resolveStart, reject) => {
    // SSMAX_HARAKA_NODE_ARGS: node flags for Haraka (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p" while benchmarking).
    const nodeArgs = (process.env.SSMAX_HARAKA_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
    const proc = spawn(process.execPath, [...nodeArgs, bin, '-c', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HARAKA: dir, NODE_ENV: 'production' },
    }); // under Jest NODE_ENV=test, which makes Haraka's outbound send an empty HELO
    let out = '';
    let up = false;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`Haraka did not start within ${timeoutMs} ms:\n${out.slice(-3000)}`));
    }, timeoutMs);
    const onData = (c: Buffer) => {
      out += c.toString();
      if (!up && !gone() && /Listening on/.test(out)) {
        up = true;
        clearTimeout(timer);
        resolveStart({
          proc,
          port,
          logs: () => out,
          async stop() {
            if (proc.exitCode !== null) return;
            proc.kill('SIGTERM');
            const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(killer);
          },
        });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    const gone = failIfExitedBeforeUp(
      proc,
      () => up,
      (code) => {
        clearTimeout(timer);
        reject(new Error(`Haraka exited ${code}:\n${out.slice(-3000)}`));
      },
    );
  });
}
