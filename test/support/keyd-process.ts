import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { KeydClient } from '../../src/keyd/client';
import type { ClientCreds, OrgFixture } from './org-fixture';

const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');

export interface KeydProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly stderr: () => string;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `ssmax keyd run` (the built CLI) and waits until it listens. */
export function startKeydProcess(configFile: string): Promise<KeydProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, 'keyd', 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let gone = false;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`keyd did not start: ${err}`));
    }, 20000);
    proc.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
    });
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /keyd listening on [^:]+:(\d+)/.exec(out);
      if (m && !gone) {
        clearTimeout(timer);
        const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
        resolve({
          proc,
          port: Number(m[1]),
          stderr: () => err,
          stop: async (signal = 'SIGTERM') => {
            proc.kill(signal);
            return exited;
          },
        });
      }
    });
    // the output is complete at 'close', which can come after 'exit'; output read after 'exit' is not a start
    proc.once('exit', () => {
      gone = true;
    });
    proc.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`keyd exited ${code}: ${err}`));
    });
  });
}

export function clientFor(fx: OrgFixture, port: number, creds: ClientCreds, timeoutMs = 5000): KeydClient {
  return new KeydClient({
    url: `https://127.0.0.1:${port}`,
    servername: `keyd.${fx.domain}`,
    cert: creds.cert,
    key: creds.key,
    ca: fx.caPem,
    timeoutMs,
  });
}
