/**
 * Assembles a running key service from its configuration: master key,
 * LMDB store, keyring (certifying new versions with the org CA when keyd
 * holds it), registry, tracking keys, audit log, service, HTTPS server, and
 * the key schedule timer. `stop()` shuts down gracefully.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { defaultGroup } from '../crypto/backend';
import type { Group } from '../crypto/group';
import { systemRng } from '../crypto/random';
import { constrainedDomains, parseCertificate } from '../pki/certificate';
import { issueEncryptionKeyCertificate } from '../pki/issue';
import { CrlFiles } from '../pki/crl-files';
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
import { KeydStore } from './store';
import { TrackingKeys } from './tracking';
import { keyRenewalLate, startKeydOps } from '../ops/keyd-ops';
import { CrlRenewer, crlPolicyOf, orgCaOf } from './renewal';
import type { SigningAuthority } from '../pki/issue';
import { CertRenewer, certPolicyOf } from './cert-renewal';
import { cannotRead } from '../errors/errno';

export interface KeydParts {
  readonly store: KeydStore;
  readonly service: KeyService;
  readonly audit: AuditLog;
  readonly keyring: OrgKeyring;
}

export const KEYD_ACTOR: Actor = { role: 'keyd', name: 'keyd schedule' };

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new KeydError('config', cannotRead(what, file, err));
  }
}

/**
 * Opens the store and builds the service (no network): used by the daemon and by the CLI. `crypto`: where blinded
 * operations run (inline when absent). `ca`: the org CA as the caller already read it (the daemon: once, at start),
 * else read here.
 */
export function openKeyd(
  config: KeydConfig,
  clock: () => Date = () => new Date(),
  crypto?: KeydCrypto,
  ca: SigningAuthority | undefined = orgCaOf(config),
): KeydParts {
  const wrapper = new SecretWrapper(loadMasterKey(config.masterKeyFile));
  const store = KeydStore.open(config.dataDir);
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
  const service = new KeyService({
    store,
    group,
    rng: systemRng,
    clock,
    keyring,
    registry: new Registry(store, wrapper, config.domain),
    tracking: new TrackingKeys(store, wrapper, config.domain, config.trackingRetentionMs),
    audit,
    roots: config.pki.roots.map((f) => readPem(f, 'SSMAX root')),
    validationCache: new ValidationCache(),
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
  const pem = readPem(config.pki.orgCa, 'org CA ([pki] org_ca)');
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
  if (config.pki.orgCaCert && parseCertificate(readPem(config.pki.orgCaCert, 'org CA certificate')).fingerprint !== cert.fingerprint) {
    throw new KeydError('config', `${where} and [pki] org_ca_cert must be the same certificate`);
  }
  return pem;
}

export async function startKeyd(config: KeydConfig, opts: { clock?: () => Date; log?: (line: string) => void } = {}): Promise<RunningKeyd> {
  const clock = opts.clock ?? (() => new Date());
  const orgCa = orgAnchor(config); // before anything is opened: keyd refuses to start without its anchor
  const orgCaAuthority = orgCaOf(config, opts.log); // read once; warns once, at start, of an unencrypted key
  const threads = cryptoThreadsFor(config.limits.cryptoThreads);
  const crypto = threads > 0 ? new ThreadedCrypto(threads) : undefined;
  let opened: KeydParts | undefined;
  try {
    return await startService(config, { ...opts, clock, orgCa, orgCaAuthority, crypto }, (p) => (opened = p));
  } catch (err) {
    // a start that fails (a bad TLS key, the port taken…) stops its crypto threads and closes the store before the
    // error reaches the command: a process exiting while a worker thread still starts up can abort instead of exiting
    await crypto?.close().catch(() => undefined);
    await opened?.store.close().catch(() => undefined);
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
  const parts = openKeyd(config, clock, crypto, orgCaAuthority);
  onOpen(parts);
  await parts.service.maintain(KEYD_ACTOR);
  const crlFiles = config.pki.crls;
  // CRLs renewed before they lapse (docs/operations.md, "Renewals")
  const renewer = new CrlRenewer(crlFiles, orgCaAuthority, crlPolicyOf(config), parts.audit, st.log);
  parts.service.crls = renewer; // revocation (POST /v1/registry/users/{address}/revoke) signs through it
  await renewer.run(clock());
  // certificates too (keyd's own TLS certificate among them, picked up below without a restart)
  const certRenewer = new CertRenewer(certPolicyOf(config), orgCaAuthority, parts.audit, st.log);
  await certRenewer.run(clock());
  // read when they change, for callers and for the administrator a console request names alike (src/pki/crl-files.ts)
  const crls = new CrlFiles(crlFiles, (f) => readPem(f, 'CRL'));
  const server = new KeydServer(parts.service, parts.audit, {
    host: config.host,
    port: config.port,
    cert: readPem(config.tls.cert, 'TLS certificate'),
    key: readPem(config.tls.key, 'TLS key'),
    clientCas: config.tls.clientCas.map((f) => readPem(f, 'client CA')),
    roots: config.pki.roots.map((f) => readPem(f, 'SSMAX root')),
    orgCa,
    crls: () => crls.current(),
    clock,
    ...requestLimitsOf(config.limits),
    maxBatchOps: config.limits.maxBatchOps,
    validationCache: new ValidationCache(),
    ...(st.log ? { log: st.log } : {}),
  });
  const port = await server.listen();
  const tlsFiles = [config.tls.cert, config.tls.key];
  let tlsText = tlsFiles.map((f) => readPem(f, 'TLS certificate or key')).join('');
  const reloadTls = () => {
    try {
      const [cert, key] = tlsFiles.map((f) => readFileSync(f, 'utf8'));
      if (`${cert}${key}` === tlsText) return;
      server.server.setSecureContext({ cert, key, ca: config.tls.clientCas.map((f) => readPem(f, 'client CA')), minVersion: 'TLSv1.2' });
      tlsText = `${cert}${key}`;
      st.log?.(`keyd: TLS certificate "${config.tls.cert}" reloaded`);
    } catch (err) {
      st.log?.(`keyd: WARNING cannot reload the TLS certificate "${config.tls.cert}", the previous one stays: ${(err as Error).message}`);
    }
  };
  const ops = await startKeydOps(config, parts, clock, st.log, renewer, certRenewer).catch(async (err: unknown) => {
    await server.close();
    throw err;
  }); // [ops]: health and metrics (docs/operations.md)
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
  const timer = setInterval(() => void schedule(), config.keys.scheduleMs);
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
