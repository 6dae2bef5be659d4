/**
 * Assembles a running key service from its configuration: master key,
 * LMDB store, keyring (certifying new versions with the org CA when keyd
 * holds it), registry, tracking keys, audit log, service, HTTPS server, and
 * the key schedule timer. `stop()` shuts down gracefully.
 */
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';

import { defaultGroup } from '../crypto/backend';
import type { Group } from '../crypto/group';
import { systemRng } from '../crypto/random';
import { constrainedDomains, parseCertificate } from '../pki/certificate';
import { issueEncryptionKeyCertificate } from '../pki/issue';
import { CrlFiles } from '../pki/crl-files';
import { KnownCrls } from '../pki/known-crls';
import { ValidationCache } from '../pki/validate';
import { requestLimitsOf } from '../net/https-server';
import { AuditLog } from './audit';
import type { KeydConfig } from './config';
import { type KeydCrypto, ThreadedCrypto } from './crypto-threads';
import { KeydError } from './errors';
import { SecretWrapper, loadMasterKey } from './master-key';
import { type Certify, OrgKeyring } from './org-keys';
import { Registry } from './registry';
import { KeydServer } from './server';
import { type Actor, KeyService } from './service';
import { markCrlRevocations } from './rollback';
import { KeydStore } from './store';
import { lockStore } from './store-lock';
import { TrackingKeys } from './tracking';
import { keyRenewalLate, startKeydOps } from '../ops/keyd-ops';
import { CrlRenewer, crlPolicyOf, orgCaOf } from './renewal';
import type { SigningAuthority } from '../pki/issue';
import { caStateFileOf, caStateNote, keydCaRevocations } from './ca-revocations';
import { CertRenewer, certPolicyOf, storeKeySerials } from './cert-renewal';
import { ConfigError, readSettingFile } from '../config/ini';
import { readCertificateFile, readCrlFile, readTlsPair } from '../config/setting-files';

export interface KeydParts {
  readonly store: KeydStore;
  readonly service: KeyService;
  readonly audit: AuditLog;
  readonly keyring: OrgKeyring;
}

export const KEYD_ACTOR: Actor = { role: 'keyd', name: 'keyd schedule' };

/**
 * The files keyd needs, read and checked before anything is opened (docs/configuration.md, "Files a setting
 * names"): the CRLs of [pki] crls, the TLS certificate and key (a pair), the client CAs and the roots. keyd does
 * not start without them (exit 78, the setting and the file named); the org CA is checked by `orgAnchor`.
 */
export function checkKeydFiles(config: KeydConfig): { cert: string; key: string } {
  for (const f of config.pki.crls) readCrlFile(config.file, 'pki.crls', f);
  for (const f of config.tls.clientCas) readCertificateFile(config.file, 'tls.client_ca', f);
  for (const f of config.pki.roots) readCertificateFile(config.file, 'pki.roots', f);
  return readTlsPair(config.file, { cert: 'tls.cert', key: 'tls.key' }, config.tls);
}

/**
 * A file keyd needs that became unusable while it runs: the request is answered 503 `file-unavailable`, naming the
 * setting and the file (the gateway's 451 names the setting), instead of a 500 "internal".
 */
export function fileUnavailable(err: unknown): unknown {
  if (!(err instanceof ConfigError)) return err;
  const { section, key } = err.where;
  return new KeydError('file-unavailable', `keyd cannot use a file it needs: ${err.message}`, {
    ...(section && key ? { setting: `[${section}] ${key}` } : {}),
  });
}

/** What is wrong with the files keyd reads while it runs ([pki] crls, [tls] cert and key), for /health/ready; undefined when nothing. */
export function keydFileProblem(config: KeydConfig, crls: CrlFiles): string | undefined {
  try {
    crls.current();
    for (const [setting, path] of [
      ['tls.cert', config.tls.cert],
      ['tls.key', config.tls.key],
    ] as const)
      readSettingFile(config.file, setting, path);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Opens the store and builds the service (no network): used by the daemon and by the CLI. `crypto`: where blinded
 * operations run (inline when absent). `ca`: the org CA as the caller already read it (the daemon: once, at start),
 * else read here. `create`: whether a missing store is made (keyd's start, and tests); the offline tools pass
 * false and are refused (StoreMissingError, exit 66) creating nothing.
 */
export function openKeyd(
  config: KeydConfig,
  clock: () => Date = () => new Date(),
  crypto?: KeydCrypto,
  ca: SigningAuthority | undefined = orgCaOf(config),
  create = true,
): KeydParts {
  const wrapper = new SecretWrapper(loadMasterKey(config.masterKeyFile));
  const store = KeydStore.open(config.dataDir, { create });
  // read and, on a new store, written in one write transaction: of two processes opening a new store at once with
  // different master keys, the second finds the first one's check value and is refused
  const check = store.root.transactionSync(() => {
    const stored = store.meta.get('master-check') as string | undefined;
    if (stored === undefined) store.meta.put('master-check', wrapper.checkValue);
    return stored ?? wrapper.checkValue;
  });
  if (check !== wrapper.checkValue) {
    void store.close();
    throw new KeydError('config', `Master key "${config.masterKeyFile}" is not the one this store was made with`);
  }
  store.root.transactionSync(() => store.indexUserCodes());
  let certify: Certify | undefined;
  if (ca) {
    certify = (publicKey, version, notBefore, notAfter) => {
      // never past the CA's own validity
      const until = notAfter > ca.certificate.notAfter ? ca.certificate.notAfter : notAfter;
      return issueEncryptionKeyCertificate(ca, { domain: config.domain, version, publicKey, notBefore, notAfter: until }).pem;
    };
  }
  const group = defaultGroup;
  const keyring = new OrgKeyring(
    store,
    wrapper,
    group,
    config.domain,
    { validityMs: config.keys.validityMs, renewBeforeMs: config.keys.renewBeforeMs, graceMs: config.keys.graceMs },
    certify,
  );
  const audit = new AuditLog(store, wrapper.auditKey);
  const roots = config.pki.roots.map((f) => readCertificateFile(config.file, 'pki.roots', f));
  const validationCache = new ValidationCache();
  const localCrls = new CrlFiles(config.pki.crls, (f) => {
    try {
      return readCrlFile(config.file, 'pki.crls', f);
    } catch (err) {
      throw fileUnavailable(err);
    }
  });
  const service = new KeyService({
    store,
    group,
    rng: systemRng,
    clock,
    keyring,
    registry: new Registry(store, wrapper, config.domain),
    tracking: new TrackingKeys(store, wrapper, config.domain, config.trackingRetentionMs),
    audit,
    roots,
    // [pki] crls (read when they change; one unreadable is a 503 naming it) and the newest CRL seen per CA, for peer targets
    revocation: new KnownCrls({ local: () => localCrls.current(), roots, cache: validationCache }),
    validationCache,
    ...(crypto ? { crypto } : {}),
  });
  return { store, service, audit, keyring };
}

export interface RunningKeyd extends KeydParts {
  readonly port: number;
  readonly renewer: CrlRenewer;
  readonly certRenewer: CertRenewer;
  /** One run of the schedule (key versions, then CRLs), as the timer does it; for tests on a simulated clock. */
  schedule(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Worker threads for the blinded operations. `auto`: one, except with the
 * native backend on a single core (there its ~0.55 ms per operation is
 * cheaper to compute on the main thread than to hand over and wait for);
 * with a second core, the thread computes one batch while the main thread
 * takes the next in (docs/keyd-api.md, "Crypto threads").
 */
export function cryptoThreadsFor(setting: number | 'auto', group: Group = defaultGroup, cores: number = availableParallelism()): number {
  if (setting === 'auto') return group.name === 'native' && cores < 2 ? 0 : 1;
  return Math.floor(setting);
}

/**
 * The organisation anchor, `[pki] org_ca`: a CA certificate (not a root) whose name
 * constraints cover keyd's domain, chaining to one of the roots; the same certificate
 * as `org_ca_cert` when both are given. keyd does not start otherwise.
 */
export function orgAnchor(config: KeydConfig): string {
  const pem = readCertificateFile(config.file, 'pki.org_ca', config.pki.orgCa);
  const where = `Config "${config.file}": [pki] org_ca`;
  let cert;
  try {
    cert = parseCertificate(pem);
  } catch (err) {
    throw new KeydError('config', `${where} is not a certificate: ${(err as Error).message}`);
  }
  if (!cert.isCA || cert.selfIssued)
    throw new KeydError('config', `${where} must be the organisation's CA, not a root or an end-entity certificate`);
  const domains = constrainedDomains(cert);
  if (!domains.some((d) => d.replace(/^\./, '') === config.domain))
    throw new KeydError(
      'config',
      `${where} is not constrained to the domain ${config.domain} (its names: ${domains.join(', ') || 'none'})`,
    );
  if (
    config.pki.orgCaCert &&
    parseCertificate(readCertificateFile(config.file, 'pki.org_ca_cert', config.pki.orgCaCert)).fingerprint !== cert.fingerprint
  ) {
    throw new KeydError('config', `${where} and [pki] org_ca_cert must be the same certificate`);
  }
  return pem;
}

export async function startKeyd(config: KeydConfig, opts: { clock?: () => Date; log?: (line: string) => void } = {}): Promise<RunningKeyd> {
  const clock = opts.clock ?? (() => new Date());
  const orgCa = orgAnchor(config); // before anything is opened: keyd refuses to start without its anchor
  checkKeydFiles(config); // and without the files it needs (the TLS pair is read again after the renewals)
  const orgCaAuthority = orgCaOf(config, opts.log); // read once; warns once, at start, of an unencrypted key
  const lock = await lockStore(config.dataDir, opts.log); // one keyd per store (src/keyd/store-lock.ts)
  const threads = cryptoThreadsFor(config.limits.cryptoThreads);
  const crypto = threads > 0 ? new ThreadedCrypto(threads) : undefined;
  let opened: KeydParts | undefined;
  try {
    const running = await startService(config, { ...opts, clock, orgCa, orgCaAuthority, crypto }, (p) => (opened = p));
    return {
      ...running,
      async stop() {
        await running.stop();
        await lock.release();
      },
    };
  } catch (err) {
    // a start that fails (a bad TLS key, the port taken…) stops its crypto threads and closes the store before the
    // error reaches the command: a process exiting while a worker thread still starts up can abort instead of exiting
    await crypto?.close().catch(() => undefined);
    await opened?.store.close().catch(() => undefined);
    await lock.release();
    throw err;
  }
}

/** What startKeyd opened before the rest of the start, which `startService` does (closing them is startKeyd's on failure). */
interface StartState {
  readonly clock: () => Date;
  readonly log?: (line: string) => void;
  readonly orgCa: string;
  readonly orgCaAuthority: SigningAuthority | undefined;
  readonly crypto: ThreadedCrypto | undefined;
}

/** The rest of keyd's start: the store and service, renewals, the HTTPS server, the schedule. `onOpen` is told of the store once open. */
async function startService(config: KeydConfig, st: StartState, onOpen: (p: KeydParts) => void): Promise<RunningKeyd> {
  const { clock, orgCa, orgCaAuthority, crypto } = st;
  const parts = openKeyd(config, clock, crypto, orgCaAuthority, true); // only keyd's start makes a new store
  onOpen(parts);
  // revocations the store does not know (a restored older backup): users whose certificate is in the org CA's CRL (rollback.ts)
  const stateNote = caStateNote(config); // where keyd learns the org CA's revocations, said once when it reads no ca.json (once listening)
  const crlMarks = await markCrlRevocations(parts.store, parts.audit, config, clock(), 'at keyd start');
  for (const p of crlMarks.problems) st.log?.(`keyd: WARNING revocations: ${p}`);
  if (crlMarks.marked.length > 0)
    st.log?.(`keyd: marked revoked, as the org CA's CRL lists their certificates: ${crlMarks.marked.join(', ')}`);
  await parts.service.maintain(KEYD_ACTOR);
  const crlFiles = config.pki.crls;
  // CRLs renewed before they lapse (docs/operations.md, "Renewals")
  // re-signed under the CA lock `ssmax ca crl` and `ssmax registry revoke` take: the CA folder when keyd reads its ca.json, else the file's folder
  const renewer = new CrlRenewer(crlFiles, orgCaAuthority, crlPolicyOf(config), parts.audit, st.log, (file) => {
    const caState = caStateFileOf(config);
    return caState !== undefined ? dirname(caState) : dirname(file);
  });
  parts.service.crls = renewer; // revocation (POST /v1/registry/users/{address}/revoke) signs through it
  await renewer.run(clock());
  // certificates too (keyd's own TLS certificate among them, picked up below without a restart)
  // never a revoked one: each renewal first reads what the org CA revoked (src/keyd/ca-revocations.ts)
  const certRenewer = new CertRenewer(certPolicyOf(config), orgCaAuthority, parts.audit, st.log, {
    ...(orgCaAuthority ? { revocations: keydCaRevocations(config, orgCaAuthority.certificate) } : {}),
    keySerials: storeKeySerials(parts.store.meta),
  });
  await certRenewer.run(clock());
  // read again after the renewals: a certificate renewed just now (keyd was down past its renewal) is the one served
  const tls = readTlsPair(config.file, { cert: 'tls.cert', key: 'tls.key' }, config.tls);
  // read when they change, for callers and for the administrator a console request names alike (src/pki/crl-files.ts)
  // one that becomes unusable is a 503 naming it (fileUnavailable), and keyd is not ready (keydFileProblem)
  const crls = new CrlFiles(crlFiles, (f) => {
    try {
      return readCrlFile(config.file, 'pki.crls', f);
    } catch (err) {
      throw fileUnavailable(err);
    }
  });
  const server = new KeydServer(parts.service, parts.audit, {
    host: config.host,
    port: config.port,
    cert: tls.cert,
    key: tls.key,
    clientCas: config.tls.clientCas.map((f) => readCertificateFile(config.file, 'tls.client_ca', f)),
    roots: config.pki.roots.map((f) => readCertificateFile(config.file, 'pki.roots', f)),
    orgCa,
    crls: () => crls.current(),
    clock,
    ...requestLimitsOf(config.limits),
    maxBatchOps: config.limits.maxBatchOps,
    validationCache: new ValidationCache(),
    ...(st.log ? { log: st.log } : {}),
  });
  const port = await server.listen();
  if (stateNote) st.log?.(`keyd: NOTE revocations: ${stateNote}`); // after the listen: a start that fails says only why
  let tlsText = `${tls.cert}${tls.key}`;
  const reloadTls = () => {
    try {
      // checked as at start (a certificate, a key, a pair), so a bad file is named by its setting
      const { cert, key } = readTlsPair(config.file, { cert: 'tls.cert', key: 'tls.key' }, config.tls);
      if (`${cert}${key}` === tlsText) return;
      server.server.setSecureContext({
        cert,
        key,
        ca: config.tls.clientCas.map((f) => readSettingFile(config.file, 'tls.client_ca', f)),
        minVersion: 'TLSv1.2',
      });
      tlsText = `${cert}${key}`;
      st.log?.(`keyd: TLS certificate "${config.tls.cert}" reloaded`);
    } catch (err) {
      st.log?.(`keyd: WARNING cannot reload the TLS certificate "${config.tls.cert}", the previous one stays: ${(err as Error).message}`);
    }
  };
  const ops = await startKeydOps(config, parts, clock, st.log, renewer, certRenewer, () => keydFileProblem(config, crls)).catch(
    async (err: unknown) => {
      await server.close();
      throw err;
    },
  ); // [ops]: health and metrics (docs/operations.md)
  let scheduling: Promise<void> | undefined;
  const schedule = (): Promise<void> => {
    scheduling ??= parts.service
      .maintain(KEYD_ACTOR)
      .then(
        (changes) => {
          if (changes.length > 0) st.log?.(`keyd: key schedule: ${changes.map((c) => `${c.keyId} ${c.change}`).join(', ')}`);
        },
        (err: unknown) => st.log?.(`keyd: key schedule failed: ${(err as Error).message}`),
      )
      .then(() => {
        if (keyRenewalLate(parts.keyring, clock(), config.keys.renewBeforeMs)) {
          st.log?.(
            `keyd: WARNING no org key version is valid beyond half of renew_before_days from now (${clock().toISOString()}); the key schedule could not renew it (see the lines above)`,
          );
        }
      })
      .then(() => renewer.run(clock()))
      .then(() => certRenewer.run(clock()))
      .then(() => reloadTls())
      .finally(() => {
        scheduling = undefined;
      });
    return scheduling;
  };
  // the timer's run is awaited by nobody: a step that failed is logged, and the next run tries again (an unhandled
  // rejection would end keyd)
  const timer = setInterval(
    () => void schedule().catch((err: unknown) => st.log?.(`keyd: key schedule run failed: ${(err as Error).message}`)),
    config.keys.scheduleMs,
  );
  timer.unref();
  return {
    ...parts,
    port,
    renewer,
    certRenewer,
    schedule,
    async stop() {
      clearInterval(timer);
      await ops?.close();
      await server.close();
      await crypto?.close();
      await parts.store.close();
    },
  };
}
