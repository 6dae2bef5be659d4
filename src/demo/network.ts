/**
 * Two (or more) SSMAX organisations on loopback, from nothing but a fresh
 * SSMAX root: per organisation an org CA, keyd (process), the bundle
 * publisher (process), a mailbox store, and a Haraka gateway (process) with
 * the ssmax plugin — optionally a separate inspector process (remote
 * inspection); users registered at keyd (as organisation members or
 * individuals, with or without inspection consent), with user profiles for
 * SSMAX clients. Used by `ssmax demo`, the gateway tests and the gateway benchmark.
 */
import { iniKeyLines } from '../config/ini';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { generateP256KeyPair } from '../crypto/ecdsa';
import { KeydClient } from '../keyd/client';
import { type SigningAuthority, createRootCa, issueBundleSignerCertificate, issueSealingCertificate } from '../pki/issue';
import { issueTlsCredentials } from '../pki/tls-credentials';
import { privateKeyToPem } from '../pki/keys';
import { createUserProfile } from '../user/profile';
import { type HarakaProcess, freePort, layoutHaraka, startHaraka } from './haraka';
import { MailboxStore } from './mailbox';
import { type OrgFixture, provisionOrg } from './provision';
import { failIfExitedBeforeUp } from './start-watch';

const BIN = resolve(__dirname, '..', '..', 'bin', 'ssmax');
const DAY = 86400000;
/** How long a process of the first start may take to listen: the organisations start at once, so on a busy machine each takes longer than alone. */
const AT_ONCE_MS = 60000;

export interface UserSpec {
  readonly address: string;
  /** SSMAX client (keys and a profile) or a plain mail client (transparent mode). */
  readonly client: 'ssmax' | 'plain';
  readonly password: string;
  /** Registered as an individual (ISP mode, SSMAX §3.5) or an organisation member (keyd's default). */
  readonly kind?: 'individual' | 'organisation';
  /** The individual's consent to inspection (registered as `inspectionConsent`, as `ssmax registry add --inspection-consent`). */
  readonly consent?: boolean;
}

/** A separate inspector process for the organisation (`ssmax inspector run`): the gateway runs with [inspection] mode=remote. */
export interface InspectorSpec {
  /** Its ssmax-inspect.ini ([dlp], [av], [quarantine]); default: nothing enabled. */
  readonly inspectIni?: string;
  /** Its ssmax-dlp.ini; default: the shipped config/ssmax-dlp.ini. */
  readonly dlpIni?: string;
  /** Further ssmax-inspector.ini lines, appended (later keys win). */
  readonly extraIni?: readonly string[];
}

/**
 * An ini text built from base lines and a spec's own lines after them, a key the spec gives again replacing the
 * base's value where the base wrote it: the readers warn of a key given twice in one section (src/config/ini.ts
 * duplicateKeys), so an override must not be a second line. Lines without a key are kept as they are.
 */
export function withOverrides(text: string): string {
  const lines = text.split('\n');
  const first = new Map<string, number>();
  for (const { index, section, key } of iniKeyLines(text)) {
    const id = `${section}\0${key}`;
    const at = first.get(id);
    if (at === undefined) first.set(id, index);
    else {
      lines[at] = lines[index]!; // the later value, where the key was first written
      lines[index] = '';
    }
  }
  return lines.join('\n');
}

export interface OrgSpec {
  readonly domain: string;
  readonly users: readonly UserSpec[];
  /** [policy] lines for ssmax.ini, e.g. { default: 'opportunistic', 'b.example': 'require' }. */
  readonly policy?: Readonly<Record<string, string>>;
  readonly keydTimeoutMs?: number;
  /** keyd's [keys] section (provision.ts default: 90-day keys, 30-day grace, 60 s schedule). */
  readonly keydKeys?: string;
  /**
   * Validity in days of the certificates of the services (keyd's TLS, the client certificates, the
   * sealing, bundle-signer and publisher TLS certificates); default 365. keyd renews them
   * ([certificates] renew of its config; the shipped schedule unless `keydIni` sets one).
   */
  readonly certDays?: number;
  /** Further lines of keyd's config, appended after its [certificates] section, e.g. ['renew_at_days_left=10', '[crl]', 'lifetime_days=8']. */
  readonly keydIni?: readonly string[];
  /** The publisher's bundle lifetime (lifetime_seconds); default 3600. */
  readonly bundleLifetimeSeconds?: number;
  /** Further ssmax.ini lines of the gateway, appended (later keys win), e.g. ['[key_exchange]', 'probe=false']. */
  readonly gatewayIni?: readonly string[];
  /**
   * Discover peers by DNS TXT through these resolvers (ip:port, comma-separated) instead of the
   * static [peers] map: the gateway is then configured with nothing of its peers but the root.
   */
  readonly dnsServers?: string;
  /** [directory] retry_ms of the gateway; default 500. */
  readonly directoryRetryMs?: number;
  /**
   * Run inspection in a separate inspector process with its own inspector certificate; the
   * gateway then has [inspection] mode=remote and NO inspector credentials (so transparent
   * delivery to plain-client users of this organisation tempfails: use SSMAX-client recipients).
   */
  readonly inspector?: InspectorSpec;
}

export interface ServiceProcess {
  readonly proc: ChildProcess;
  readonly port: number;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface OrgNode {
  readonly domain: string;
  readonly dir: string;
  readonly fx: OrgFixture;
  keyd: ServiceProcess;
  publisher: ServiceProcess;
  haraka: HarakaProcess;
  /** The inspector process, when the spec asks for one. */
  inspector?: ServiceProcess;
  /** Its folder (inspector.ini, ssmax-inspect.ini, ssmax-dlp.ini, state/ with the quarantine). */
  readonly inspectorDir: string;
  readonly mailbox: MailboxStore;
  readonly ports: {
    readonly keyd: number;
    readonly publisher: number;
    readonly smtp: number;
    readonly mailbox: number;
    readonly inspector: number;
    readonly ops: OpsPorts;
  };
  readonly bundleUrl: string;
  /** SSMAX-client users: their profile folders. */
  readonly profiles: Record<string, string>;
  readonly harakaDir: string;
  /** Restarts keyd (fault tests). */
  restartKeyd(): Promise<void>;
  restartPublisher(): Promise<void>;
  restartHaraka(): Promise<void>;
  /** Stops the inspector process (when there is one); `restartInspector` starts it again (stopped or not). */
  stopInspector(): Promise<void>;
  restartInspector(): Promise<void>;
  admin(): KeydClient;
}

/** The plain-HTTP operations listeners ([ops] listen: health and metrics, docs/operations.md) of each process. */
export interface OpsPorts {
  readonly gateway: number;
  readonly keyd: number;
  readonly publisher: number;
  readonly inspector: number;
}

export interface Network {
  readonly root: SigningAuthority;
  readonly orgs: readonly OrgNode[];
  org(domain: string): OrgNode;
  stop(): Promise<void>;
}

/** How long `stop` waits for a service to end after its signal (keyd's own stop waits at most 30 s for a crypto thread). */
const STOP_WAIT_MS = 45000;

/** Starts `ssmax <args>` and waits for the line matching `ready` (its first group is the port). */
export function startService(args: string[], ready: RegExp, timeoutMs = 20000): Promise<ServiceProcess> {
  return new Promise((res, rej) => {
    const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } }); // this module's view of the environment (under Jest a copy, which tests may set)
    let out = '';
    let up = false;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      rej(new Error(`"ssmax ${args[0]}" did not start: ${out.slice(-2000)}`));
    }, timeoutMs);
    const onData = (c: Buffer) => {
      out += c.toString();
      const m = ready.exec(out);
      if (m && !up && !gone()) {
        up = true;
        clearTimeout(timer);
        res({
          proc,
          port: Number(m[1]),
          output: () => out,
          async stop(signal: NodeJS.Signals = 'SIGTERM') {
            if (proc.exitCode !== null || proc.signalCode !== null) return;
            proc.kill(signal);
            // a service that does not stop within STOP_WAIT_MS is killed, and what it printed is told: a stop that
            // hangs is a fault to see (once, in a loaded test run, keyd's did, and the test waited out its 180 s)
            const killer = setTimeout(() => {
              process.stderr.write(
                `"ssmax ${args.join(' ')}" (pid ${proc.pid}) did not stop within ${STOP_WAIT_MS} ms of ${signal}: killed. Its last output:\n${out.slice(-3000)}\n`,
              );
              proc.kill('SIGKILL');
            }, STOP_WAIT_MS);
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
        rej(new Error(`"ssmax ${args[0]}" exited ${code}: ${out.slice(-2000)}`));
      },
    );
  });
}

/** Waits for every start; when one failed, throws its error once the others have settled (so that stopping finds all they started). */
async function allSettledOrThrow(starts: readonly Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(starts)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function fetchBundle(url: string, ca: string[]): Promise<string> {
  const u = new URL(url);
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port: u.port, path: u.pathname, servername: u.hostname, ca, method: 'GET' }, (r) => {
      const parts: Buffer[] = [];
      r.on('data', (c: Buffer) => parts.push(c));
      r.on('end', () =>
        r.statusCode === 200 ? res(Buffer.concat(parts).toString('utf8')) : rej(new Error(`bundle fetch: HTTP ${r.statusCode}`)),
      );
    });
    req.on('error', rej);
    req.end();
  });
}

interface Planned {
  spec: OrgSpec;
  dir: string;
  ports: { keyd: number; publisher: number; smtp: number; mailbox: number; inspector: number; ops: OpsPorts };
}

export async function startNetwork(
  base: string,
  specs: readonly OrgSpec[],
  log: (line: string) => void = () => undefined,
): Promise<Network> {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const validity = { notBefore: new Date(now - 31 * DAY), notAfter: new Date(now + 3651 * DAY) };
  const root = createRootCa({ ...validity, privateKey: generateP256KeyPair().privateKey, commonName: 'SSMAX Demo Root' });
  const planned: Planned[] = [];
  for (const spec of specs) {
    planned.push({
      spec,
      dir: join(base, spec.domain),
      ports: {
        keyd: await freePort(),
        publisher: await freePort(),
        smtp: await freePort(),
        mailbox: await freePort(),
        inspector: spec.inspector ? await freePort() : 0,
        ops: {
          gateway: await freePort(),
          keyd: await freePort(),
          publisher: await freePort(),
          inspector: spec.inspector ? await freePort() : 0,
        },
      },
    });
  }
  /** The organisations' processes, in the order of `specs` (empty where an organisation got no further than its plan). */
  const started: (OrgNode | undefined)[] = planned.map(() => undefined);
  // the organisations stop at once, each its gateway first and its keyd last
  const stopAll = async () => {
    await Promise.all(
      started.map(async (o) => {
        if (!o) return;
        await o.haraka?.stop().catch(() => undefined);
        await o.inspector?.stop().catch(() => undefined);
        await o.publisher?.stop().catch(() => undefined);
        await o.keyd?.stop().catch(() => undefined);
        await o.mailbox.close().catch(() => undefined);
      }),
    );
  };
  try {
    // The organisations start at once (each its keyd, then its publisher, then its users), then their gateways at once:
    // most of a start is node loading its modules, and one organisation's processes need nothing of another's.
    const startOrg = async (p: Planned, i: number): Promise<void> => {
      const { domain } = p.spec;
      log(`${domain}: provisioning org CA, keyd, publisher, gateway`);
      const certDays = p.spec.certDays ?? 365;
      const fx = provisionOrg(join(p.dir, 'pki'), {
        domain,
        root,
        port: p.ports.keyd,
        certDays,
        ...(p.spec.keydKeys ? { keys: p.spec.keydKeys } : {}),
      });
      const w = (name: string, text: string) => writeFileSync(join(fx.dir, name), text, { mode: 0o600 });
      // keyd renews the services' certificates before they lapse (docs/operations.md, "Renewals")
      const renew = [
        'keyd.pem',
        'gateway.pem',
        'inspector.pem',
        'admin.pem',
        'seal.cert.pem',
        'signer.cert.pem',
        'publisher.pem',
        ...(p.spec.inspector ? ['inspector-server.pem'] : []),
      ];
      writeFileSync(
        fx.configFile,
        withOverrides(
          `${readFileSync(fx.configFile, 'utf8')}\n[ops]\nlisten=127.0.0.1:${p.ports.ops.keyd}\n[certificates]\nrenew=${renew.join(',')}\n${(p.spec.keydIni ?? []).join('\n')}\n`,
        ),
      );
      const v = { notBefore: new Date(now - DAY), notAfter: new Date(now + certDays * DAY) };
      const seal = generateP256KeyPair();
      w('seal.cert.pem', issueSealingCertificate(fx.orgCa, { ...v, domain, host: `mx.${domain}`, publicKey: seal.publicKey }).pem);
      w('seal.key.pem', privateKeyToPem(seal.privateKey));
      const signer = generateP256KeyPair();
      w('signer.cert.pem', issueBundleSignerCertificate(fx.orgCa, { ...v, domain, publicKey: signer.publicKey }).pem);
      w('signer.key.pem', privateKeyToPem(signer.privateKey));
      // the publisher's TLS server credential, as `ssmax setup` makes it (a keyd-role certificate for ssmax.<domain>)
      const tls = issueTlsCredentials(fx.orgCa, 'keyd', v, [`ssmax.${domain}`]);
      w('publisher.pem', tls.cert + fx.orgCa.certificate.pem);
      w('publisher.key', tls.key);
      for (const role of ['admin', 'gateway', 'inspector'] as const) {
        w(`${role}.pem`, fx.clients[role].cert);
        w(`${role}.key`, fx.clients[role].key);
      }
      // the inspector process's server certificate is the inspector credential (inspect.<domain>, inspector role;
      // serverAuth and clientAuth), written before keyd starts: keyd renews it
      if (p.spec.inspector) w('inspector-server.pem', fx.clients.inspector.cert + fx.orgCa.certificate.pem);
      w(
        'publisher.ini',
        [
          '[publisher]',
          `domain=${domain}`,
          `listen=127.0.0.1:${p.ports.publisher}`,
          'state_file=publisher-state.json',
          `lifetime_seconds=${p.spec.bundleLifetimeSeconds ?? 3600}`,
          'poll_seconds=1',
          '[policy]',
          'encryption=required',
          'seal=required',
          '[tls]',
          'cert=publisher.pem',
          'key=publisher.key',
          '[signer]',
          'cert=signer.cert.pem',
          'key=signer.key.pem',
          '[keyd]',
          `url=https://127.0.0.1:${p.ports.keyd}`,
          `servername=keyd.${domain}`,
          'cert=admin.pem',
          'key=admin.key',
          'ca=org-ca.pem,root.pem',
          '[pki]',
          'roots=root.pem',
          'org_ca_chain=org-ca.pem',
          'sealing_certificates=seal.cert.pem',
          'crls=org-ca.crl.pem,root.crl.pem',
          '[ops]',
          `listen=127.0.0.1:${p.ports.ops.publisher}`,
          '',
        ].join('\n'),
      );

      const mailbox = new MailboxStore();
      await mailbox.listen(p.ports.mailbox);
      const node = {
        domain,
        dir: p.dir,
        fx,
        mailbox,
        ports: p.ports,
        profiles: {} as Record<string, string>,
        harakaDir: join(p.dir, 'haraka'),
        inspectorDir: join(p.dir, 'inspector'),
        bundleUrl: `https://ssmax.${domain}:${p.ports.publisher}/.well-known/ssmax/bundle`,
      } as unknown as OrgNode;
      started[i] = node;
      node.keyd = await startService(['keyd', 'run', '--config', fx.configFile], /keyd listening on [^:]+:(\d+)/, AT_ONCE_MS);
      node.publisher = await startService(
        ['publish', '--config', join(fx.dir, 'publisher.ini')],
        /publisher listening on [^:]+:(\d+)/,
        AT_ONCE_MS,
      );
      node.admin = () =>
        new KeydClient({
          url: `https://127.0.0.1:${p.ports.keyd}`,
          servername: `keyd.${domain}`,
          cert: fx.clients.admin.cert,
          key: fx.clients.admin.key,
          ca: fx.caPem,
        });
      node.restartKeyd = async () => {
        await node.keyd.stop();
        node.keyd = await startService(['keyd', 'run', '--config', fx.configFile], /keyd listening on [^:]+:(\d+)/);
      };
      node.restartPublisher = async () => {
        await node.publisher.stop();
        node.publisher = await startService(['publish', '--config', join(fx.dir, 'publisher.ini')], /publisher listening on [^:]+:(\d+)/);
      };
      node.stopInspector = async () => {
        await node.inspector?.stop();
      };
      node.restartInspector = async () => {
        throw new Error(`${domain}: no inspector process in this network`);
      };
      if (p.spec.inspector) {
        const ins = p.spec.inspector;
        const idir = node.inspectorDir;
        mkdirSync(idir, { recursive: true, mode: 0o700 });
        const pki = (f: string) => join(fx.dir, f);
        writeFileSync(join(idir, 'ssmax-inspect.ini'), ins.inspectIni ?? '', { mode: 0o600 });
        writeFileSync(
          join(idir, 'ssmax-dlp.ini'),
          ins.dlpIni ?? readFileSync(resolve(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8'),
          { mode: 0o600 },
        );
        writeFileSync(
          join(idir, 'inspector.ini'),
          withOverrides(
            [
              '[inspector]',
              `domain=${domain}`,
              `listen=127.0.0.1:${p.ports.inspector}`,
              'state_dir=state',
              '[tls]',
              `cert=${pki('inspector-server.pem')}`,
              `key=${pki('inspector.key')}`,
              `client_ca=${pki('org-ca.pem')},${pki('root.pem')}`,
              '[pki]',
              `roots=${pki('root.pem')}`,
              `crls=${pki('org-ca.crl.pem')},${pki('root.crl.pem')}`,
              '[keyd]',
              `url=https://127.0.0.1:${p.ports.keyd}`,
              `servername=keyd.${domain}`,
              `ca=${pki('org-ca.pem')},${pki('root.pem')}`,
              `cert=${pki('inspector.pem')}`,
              `key=${pki('inspector.key')}`,
              '[bundle]',
              `url=${node.bundleUrl}`,
              'address=127.0.0.1',
              '[ops]',
              `listen=127.0.0.1:${p.ports.ops.inspector}`,
              '[inspection]',
              'inspect=ssmax-inspect.ini',
              'dlp_rules=ssmax-dlp.ini',
              ...(ins.extraIni ?? []),
              '',
            ].join('\n'),
          ),
          { mode: 0o600 },
        );
        const start = (timeoutMs?: number) =>
          startService(['inspector', 'run', '--config', join(idir, 'inspector.ini')], /inspector listening on [^:]+:(\d+)/, timeoutMs);
        node.inspector = await start(AT_ONCE_MS);
        node.restartInspector = async () => {
          await node.inspector?.stop();
          node.inspector = await start();
        };
      }

      let bundle: string;
      for (let attempt = 0; ; attempt++) {
        try {
          bundle = await fetchBundle(node.bundleUrl, fx.caPem);
          break;
        } catch (err) {
          if (attempt >= 40)
            throw new Error(`${domain}: no bundle from the publisher: ${(err as Error).message}\n${node.publisher.output().slice(-2000)}`, {
              cause: err,
            });
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      const admin = node.admin();
      let code = 1000;
      for (const user of p.spec.users) {
        code++;
        // the registry fields of `ssmax registry add --kind … [--inspection-consent]` (src/registry/registration.ts)
        const extra = {
          ...(user.kind ? { kind: user.kind } : {}),
          ...(user.consent !== undefined ? { inspectionConsent: user.consent } : {}),
        };
        if (user.client === 'ssmax') {
          const profileDir = join(p.dir, 'users', user.address);
          const reg = createUserProfile(profileDir, {
            address: user.address,
            pseudonym: `user-${code}`,
            code: `U-${code}`,
            orgCa: fx.orgCa,
            rootPem: root.certificate.pem,
            orgBundle: bundle,
            now: new Date(),
            smtp: { host: '127.0.0.1', port: p.ports.smtp, user: user.address, security: 'none', passwordFile: 'smtp-password' },
          });
          writeFileSync(join(profileDir, 'smtp-password'), `${user.password}\n`, { mode: 0o600 });
          node.profiles[user.address] = profileDir;
          await admin.call('POST', '/v1/registry/users', { ...reg, ...extra, identityRef: `EMP-${code}` });
        } else {
          await admin.call('POST', '/v1/registry/users', {
            address: user.address,
            code: `U-${code}`,
            ...extra,
            identityRef: `EMP-${code}`,
          });
        }
      }
      admin.close();
    };
    await allSettledOrThrow(planned.map(startOrg));
    const startGateway = async (p: Planned, i: number): Promise<void> => {
      const node = started[i]!;
      const peers = planned.filter((q) => q !== p);
      const iniLines = [
        '[main]',
        `domain=${p.spec.domain}`,
        'hook_timeout_ms=20000',
        '[keyd]',
        `url=https://127.0.0.1:${p.ports.keyd}`,
        `servername=keyd.${p.spec.domain}`,
        `ca=${join(node.fx.dir, 'org-ca.pem')},${join(node.fx.dir, 'root.pem')}`,
        `cert=${join(node.fx.dir, 'gateway.pem')}`,
        `key=${join(node.fx.dir, 'gateway.key')}`,
        // remote inspection: the gateway holds no inspector credentials at all
        ...(p.spec.inspector
          ? []
          : [`inspector_cert=${join(node.fx.dir, 'inspector.pem')}`, `inspector_key=${join(node.fx.dir, 'inspector.key')}`]),
        `timeout_ms=${p.spec.keydTimeoutMs ?? 3000}`,
        '[seal]',
        `cert=${join(node.fx.dir, 'seal.cert.pem')}`,
        `key=${join(node.fx.dir, 'seal.key.pem')}`,
        '[pki]',
        `roots=${join(node.fx.dir, 'root.pem')}`,
        `crls=${join(node.fx.dir, 'org-ca.crl.pem')},${join(node.fx.dir, 'root.crl.pem')}`,
        '[policy]',
        ...Object.entries(p.spec.policy ?? { default: 'opportunistic' }).map(([k, val]) => `${k}=${val}`),
        // the own bundle too: proofs of the own key service are checked against the key it certifies
        '[peers]',
        ...(p.spec.dnsServers
          ? []
          : planned.map((q) => `${q.spec.domain}=https://ssmax.${q.spec.domain}:${q.ports.publisher}/.well-known/ssmax/bundle`)),
        // with DNS servers, the publishers' host names are theirs to answer too (A records), nothing pinned
        '[hosts]',
        ...(p.spec.dnsServers ? [] : planned.map((q) => `ssmax.${q.spec.domain}=127.0.0.1`)),
        '[directory]',
        // a lab on one machine: the publishers' names resolve to 127.0.0.1, which DNS-named URLs may not reach by default
        ...(p.spec.dnsServers ? ['dns=true', `dns_servers=${p.spec.dnsServers}`, 'allow_private_addresses=true'] : ['dns=false']),
        'fetch_timeout_ms=2000',
        `retry_ms=${p.spec.directoryRetryMs ?? 500}`,
        '[routes]',
        ...peers.map((q) => `${q.spec.domain}=127.0.0.1:${q.ports.smtp}`),
        '[delivery]',
        `host=127.0.0.1:${p.ports.mailbox}`,
        '[ops]',
        `listen=127.0.0.1:${p.ports.ops.gateway}`,
        ...(p.spec.inspector
          ? [
              '[inspection]',
              'mode=remote',
              `inspector_url=https://127.0.0.1:${p.ports.inspector}`,
              `inspector_servername=inspect.${p.spec.domain}`,
              'inspector_timeout_ms=10000',
            ]
          : []),
        ...(p.spec.gatewayIni ?? []),
        '',
      ].join('\n');
      const ini = withOverrides(iniLines);
      const users = p.spec.users.map((u) => `${u.address}=${u.password}`).join('\n');
      layoutHaraka(node.harakaDir, {
        port: p.ports.smtp,
        me: `mx.${p.spec.domain}`,
        plugins: ['auth/flat_file', 'ssmax'],
        retryIntervals: '5s*120',
        files: { 'ssmax.ini': ini, 'auth_flat_file.ini': `[core]\nmethods=PLAIN,LOGIN\n\n[users]\n${users}\n` },
      });
      node.haraka = await startHaraka(node.harakaDir, p.ports.smtp, AT_ONCE_MS);
      node.restartHaraka = async () => {
        await node.haraka.stop();
        node.haraka = await startHaraka(node.harakaDir, p.ports.smtp);
      };
      log(
        `${p.spec.domain}: gateway on 127.0.0.1:${p.ports.smtp}, keyd :${p.ports.keyd}, publisher :${p.ports.publisher}, mailbox :${p.ports.mailbox}${p.spec.inspector ? `, inspector :${p.ports.inspector}` : ''}`,
      );
    };
    await allSettledOrThrow(planned.map(startGateway));
  } catch (err) {
    await stopAll();
    throw err;
  }
  const orgs = started.map((o) => o!);
  return {
    root,
    orgs,
    org(domain: string) {
      const o = orgs.find((x) => x.domain === domain);
      if (!o) throw new Error(`No organisation "${domain}" in this network`);
      return o;
    },
    stop: stopAll,
  };
}
