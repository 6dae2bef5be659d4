/**
 * Files a publisher needs, written into a provisioned organisation's folder,
 * and its ini file; plus a starter for `ssmax publish` as a real process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { privateKeyToPem } from '../../src/pki/keys';
import type { Org } from '../directory/fixtures';

const BIN = join(__dirname, '..', '..', 'bin', 'ssmax');

export function writePublisherFiles(org: Org): void {
  const w = (name: string, text: string) => writeFileSync(join(org.fx.dir, name), text, { mode: 0o600 });
  w('signer.pem', org.signer.certificate.pem);
  w('signer.key', privateKeyToPem(org.signer.privateKey));
  w('seal.pem', org.seal.pem);
  w('publisher.pem', org.tls.cert);
  w('publisher.key', org.tls.key);
  w('admin.pem', org.fx.clients.admin.cert);
  w('admin.key', org.fx.clients.admin.key);
  w('pub-org-ca.crl.pem', org.crls[0] as string);
  w('pub-root.crl.pem', org.crls[1] as string);
}

export function writePublisherIni(
  org: Org,
  opts: { keydPort: number; poll?: string; lifetime?: number; name?: string; port?: number },
): string {
  const file = join(org.fx.dir, opts.name ?? 'publisher.ini');
  writeFileSync(
    file,
    [
      '[publisher]',
      `domain=${org.domain}`,
      `listen=127.0.0.1:${opts.port ?? 0}`,
      'state_file=publisher-state.json',
      `lifetime_seconds=${opts.lifetime ?? 3600}`,
      'republish_after=0.5',
      `poll_seconds=${opts.poll ?? '0.2'}`,
      `abuse_contact=mailto:abuse@${org.domain}`,
      '[policy]',
      'encryption=required',
      'seal=required',
      'max_message_bytes=26214400',
      '[tls]',
      'cert=publisher.pem',
      'key=publisher.key',
      '[signer]',
      'cert=signer.pem',
      'key=signer.key',
      '[keyd]',
      `url=https://127.0.0.1:${opts.keydPort}`,
      `servername=keyd.${org.domain}`,
      'cert=admin.pem',
      'key=admin.key',
      'ca=org-ca.pem,root.pem',
      'timeout_ms=3000',
      '[pki]',
      'roots=root.pem',
      'org_ca_chain=org-ca.pem',
      'sealing_certificates=seal.pem',
      'crls=pub-org-ca.crl.pem,pub-root.crl.pem',
      '',
    ].join('\n'),
  );
  return file;
}

/** A TCP port free at the time of asking (loopback). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

export interface PublisherProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `ssmax publish --config FILE` (the built CLI) and waits until it listens. */
export function startPublisherProcess(configFile: string): Promise<PublisherProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, 'publish', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let gone = false;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`publisher did not start: ${err}`));
    }, 20000);
    proc.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
    });
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /publisher listening on [^:]+:(\d+)/.exec(out);
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
      reject(new Error(`publisher exited ${code}: ${err}`));
    });
  });
}
