/**
 * keyd's operations listener and metrics ([ops] in ssmax-keyd.ini;
 * docs/operations.md): operations by kind and result, refusals by reason
 * (keyd's error code), the audit chain's length, the org key versions with
 * their state and expiry. Counted as the audit log records each operation
 * (every operation, success or refusal, is audited before it answers); the
 * read-only lookups, which are not audited one by one (src/keyd/lookups.ts),
 * are counted as they answer.
 */
import { Counter, Gauge } from 'prom-client';
import type { KeydConfig } from '../keyd/config';
import type { KeydParts } from '../keyd/daemon';
import type { CertRenewer } from '../keyd/cert-renewal';
import type { OrgKeyring } from '../keyd/org-keys';
import type { CrlRenewer } from '../keyd/renewal';
import { type OpsListener, newRegistry, opsListenOf, opsSection, startOps } from './server';

/**
 * The current key version is within half of `renewBeforeMs` of its end and no
 * later version is ready: the key schedule is not doing its work.
 */
export function keyRenewalLate(keyring: OrgKeyring, now: Date, renewBeforeMs: number): boolean {
  const horizon = now.getTime() + renewBeforeMs / 2;
  return !keyring.all().some((k) => k.state === 'active' && k.notAfter > horizon);
}

export interface KeydRenewers {
  readonly crl?: CrlRenewer;
  readonly certs?: CertRenewer;
  /** [keys] renew_before_days, for the key item of the warning metric. */
  readonly keyRenewBeforeMs?: number;
}

export function keydMetrics(
  parts: KeydParts,
  clock: () => Date = () => new Date(),
  renewers: CrlRenewer | KeydRenewers = {},
): ReturnType<typeof newRegistry> {
  const registry = newRegistry('keyd');
  const {
    crl: renewer,
    certs,
    keyRenewBeforeMs,
  } = 'status' in renewers ? { crl: renewers, certs: undefined, keyRenewBeforeMs: undefined } : renewers;
  // one collect for the three (prom-client collects each metric just before writing it: the first one fills them all)
  const refreshRenewals = () => {
    crlNext.reset();
    certExpiry.reset();
    warning.reset();
    for (const c of renewer?.status() ?? []) {
      if (c.nextUpdate) crlNext.set({ crl: c.file, renewable: String(c.renewable) }, c.nextUpdate.getTime() / 1000);
      warning.set({ item: `crl:${c.file}` }, c.warning ? 1 : 0);
    }
    for (const c of certs?.status() ?? []) {
      if (c.notAfter) certExpiry.set({ file: c.file, renewable: String(c.renewable) }, c.notAfter.getTime() / 1000);
      warning.set({ item: `cert:${c.file}` }, c.warning ? 1 : 0);
    }
    if (keyRenewBeforeMs !== undefined)
      warning.set({ item: 'key:current' }, keyRenewalLate(parts.keyring, clock(), keyRenewBeforeMs) ? 1 : 0);
  };
  const warning: Gauge = new Gauge({
    name: 'ssmax_keyd_renewal_warning',
    help: '1 when the item (crl:FILE, cert:FILE, key:current) is within its warning window and keyd could not renew it',
    labelNames: ['item'],
    registers: [registry],
    collect: refreshRenewals,
  });
  const crlNext = new Gauge({
    name: 'ssmax_keyd_crl_next_update_timestamp_seconds',
    help: 'nextUpdate of each CRL keyd checks (Unix time); renewable="true" when keyd re-signs it',
    labelNames: ['crl', 'renewable'],
    registers: [registry],
  });
  const certExpiry = new Gauge({
    name: 'ssmax_keyd_certificate_expiry_timestamp_seconds',
    help: 'notAfter of each certificate file of [certificates] renew (Unix time); renewable="true" when keyd re-certifies it',
    labelNames: ['file', 'renewable'],
    registers: [registry],
  });
  const ops = new Counter({
    name: 'ssmax_keyd_operations_total',
    help: "keyd operations by kind (the audit record's op) and result (ok, refused, error)",
    labelNames: ['op', 'result'],
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'ssmax_keyd_refusals_total',
    help: "Refused or failed keyd operations by kind and reason (keyd's error code)",
    labelNames: ['op', 'reason'],
    registers: [registry],
  });
  const lookups = new Counter({
    name: 'ssmax_keyd_lookups_total',
    help: "Read-only lookups of gateways and inspectors (not audited one by one) by kind and result (ok, or keyd's error code)",
    labelNames: ['op', 'result'],
    registers: [registry],
  });
  parts.service.countLookup = (op, result) => lookups.inc({ op, result });
  const audit = parts.audit;
  const append = audit.append.bind(audit);
  audit.append = async (input, now, change) => {
    const record = await append(input, now, change);
    ops.inc({ op: record.op, result: record.result });
    if (record.result !== 'ok')
      refusals.inc({
        op: record.op,
        reason: record.result === 'error' ? 'internal' : (record.reason ?? '').split(':')[0]!.slice(0, 40) || 'unknown',
      });
    return record;
  };
  const length = new Gauge({
    name: 'ssmax_keyd_audit_records',
    help: 'Length of the audit chain (records since the store was made)',
    registers: [registry],
    collect() {
      const head = parts.store.meta.get('audit-head') as { seq?: number } | undefined;
      length.set(head?.seq ?? 0);
    },
  });
  // one collect for both (prom-client collects each metric just before writing it: the first one fills both)
  const refresh = () => {
    versions.reset();
    expiry.reset();
    for (const state of ['active', 'retired', 'destroyed']) versions.set({ state }, 0);
    for (const k of parts.keyring.all()) {
      versions.inc({ state: k.state });
      expiry.set({ key_id: k.keyId, state: k.state }, k.notAfter / 1000);
    }
  };
  const expiry: Gauge = new Gauge({
    name: 'ssmax_keyd_key_expiry_timestamp_seconds',
    help: 'notAfter of each org key version (Unix time), with its state',
    labelNames: ['key_id', 'state'],
    registers: [registry],
    collect: refresh,
  });
  const versions = new Gauge({
    name: 'ssmax_keyd_key_versions',
    help: 'Org key versions by state (active, retired, destroyed)',
    labelNames: ['state'],
    registers: [registry],
  });
  const current = new Gauge({
    name: 'ssmax_keyd_current_key_expiry_timestamp_seconds',
    help: 'notAfter of the current org key version (Unix time); 0 when there is none',
    registers: [registry],
    collect() {
      current.set((parts.keyring.current(clock())?.notAfter ?? 0) / 1000);
    },
  });
  return registry;
}

/** Starts keyd's listener when [ops] listen is set in its config file; undefined otherwise. */
export async function startKeydOps(
  config: KeydConfig,
  parts: KeydParts,
  clock: () => Date,
  log?: (line: string) => void,
  renewer?: CrlRenewer,
  certs?: CertRenewer,
  /** What is wrong with a file keyd needs while it runs (src/keyd/daemon.ts keydFileProblem); undefined when nothing. */
  fileProblem?: () => string | undefined,
): Promise<OpsListener | undefined> {
  const addr = opsListenOf(opsSection(config.file), `Config "${config.file}"`);
  if (!addr) return undefined;
  const listener = await startOps({
    ...addr,
    service: 'keyd',
    registry: keydMetrics(parts, clock, {
      ...(renewer ? { crl: renewer } : {}),
      ...(certs ? { certs } : {}),
      keyRenewBeforeMs: config.keys.renewBeforeMs,
    }),
    ready() {
      const checks: Record<string, string> = {};
      try {
        checks.store = parts.store.meta.get('master-check') !== undefined ? 'ok' : 'not initialised';
        checks.current_key = parts.keyring.current(clock()) ? 'ok' : 'none';
      } catch (err) {
        checks.store = `unreadable: ${(err as Error).message}`;
      }
      if (fileProblem) checks.files = fileProblem() ?? 'ok';
      // the last audit write failed (a full disk) and none has committed since: operations are refused meanwhile
      const audit = parts.audit.failing;
      checks.audit = audit === undefined ? 'ok' : `last write failed: ${audit}`;
      return Promise.resolve({ ready: Object.values(checks).every((c) => c === 'ok'), checks });
    },
  });
  log?.(`keyd ops listening on ${addr.host}:${listener.port} (/health/live, /health/ready, /metrics)`);
  return listener;
}
