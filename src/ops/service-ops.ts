/**
 * The operations listeners of the bundle publisher and the inspector process
 * ([ops] in ssmax-publisher.ini / ssmax-inspector.ini; docs/operations.md).
 *  - publisher: the served bundle's serial, issue time and expiry, the last
 *    publication error's time, each CRL's nextUpdate; ready while a bundle is
 *    served;
 *  - inspector: clamd availability (when [av] is on); ready while keyd
 *    answers and clamd (if used) answers PING.
 */
import { readFileSync } from 'node:fs';
import { Gauge } from 'prom-client';
import type { LocalInspector } from '../inspect/engine';
import type { KeydOps } from '../keyd/client-ops';
import { parseCrl } from '../pki/crl';
import type { Publisher } from '../publisher/publisher';
import { type OpsListener, newRegistry, opsListenOf, opsSection, startOps, unavailableText } from './server';

/** [ops] listen of a service's config file (publisher, inspector): where its ops listener listens, or undefined for none. */
function listenOf(configFile: string): { host: string; port: number } | undefined {
  return opsListenOf(opsSection(configFile), `Config "${configFile}"`);
}

function crlGauge(name: string, files: readonly string[], registry: ReturnType<typeof newRegistry>): void {
  const g = new Gauge({
    name,
    help: 'nextUpdate of each CRL file (Unix time)',
    labelNames: ['crl'],
    registers: [registry],
    collect() {
      g.reset();
      for (const f of files) {
        try {
          const next = parseCrl(readFileSync(f, 'utf8')).nextUpdate;
          if (next) g.set({ crl: f }, next.getTime() / 1000);
        } catch {
          // unreadable: the series is missing (alert on absent())
        }
      }
    },
  });
}

export async function startPublisherOps(
  configFile: string,
  publisher: Publisher,
  crls: readonly string[],
  log: (line: string) => void,
): Promise<OpsListener | undefined> {
  const addr = listenOf(configFile);
  if (!addr) return undefined;
  const registry = newRegistry('publisher');
  // one collect for the four (prom-client collects each metric just before writing it: the first one fills them all)
  const refresh = () => {
    const s = publisher.status();
    serial.set(s.serial ?? 0);
    issued.set((s.issued?.getTime() ?? 0) / 1000);
    expires.set((s.expires?.getTime() ?? 0) / 1000);
    lastError.set(s.lastError ? (s.lastErrorAt?.getTime() ?? 0) / 1000 : 0);
    warning.set(s.warning ? 1 : 0);
  };
  const serial: Gauge = new Gauge({
    name: 'ssmax_publisher_bundle_serial',
    help: 'Serial of the bundle served (0: none)',
    registers: [registry],
    collect: refresh,
  });
  const issued = new Gauge({
    name: 'ssmax_publisher_bundle_issued_timestamp_seconds',
    help: 'When the served bundle was issued (Unix time)',
    registers: [registry],
  });
  const expires = new Gauge({
    name: 'ssmax_publisher_bundle_expiry_timestamp_seconds',
    help: 'When the served bundle expires (Unix time; 0: none served)',
    registers: [registry],
  });
  const lastError = new Gauge({
    name: 'ssmax_publisher_last_error_timestamp_seconds',
    help: 'When the last publication failed (Unix time; 0 when the last one succeeded)',
    registers: [registry],
  });
  const warning = new Gauge({
    name: 'ssmax_publisher_renewal_warning',
    help: '1 when the served bundle is within its warning window (less than half of the time from the scheduled re-publication to expiry left) and could not be renewed, or none is served',
    registers: [registry],
  });
  crlGauge('ssmax_publisher_crl_next_update_timestamp_seconds', crls, registry);
  const listener = await startOps({
    ...addr,
    service: 'publisher',
    registry,
    ready() {
      const s = publisher.status();
      const serving = s.expires !== undefined && s.expires.getTime() > Date.now();
      return Promise.resolve({
        ready: serving,
        checks: { bundle: serving ? 'ok' : 'none served', ...(s.lastError ? { last_publication: 'failed' } : {}) },
      });
    },
  });
  log(`publisher ops listening on ${addr.host}:${listener.port} (/health/live, /health/ready, /metrics)`);
  return listener;
}

export async function startInspectorOps(
  configFile: string,
  engine: LocalInspector,
  keyd: Pick<KeydOps, 'orgKeys'>,
  log?: (line: string) => void,
): Promise<OpsListener | undefined> {
  const addr = listenOf(configFile);
  if (!addr) return undefined;
  const registry = newRegistry('inspector');
  const av = engine.config.av;
  if (av) {
    const up = new Gauge({
      name: 'ssmax_inspector_clamd_up',
      help: '1 when clamd answers PING, else 0',
      registers: [registry],
      async collect() {
        up.set((await av.client.ping()) ? 1 : 0);
      },
    });
  }
  const listener = await startOps({
    ...addr,
    service: 'inspector',
    registry,
    async ready() {
      const checks: Record<string, string> = {};
      try {
        checks.keyd = (await keyd.orgKeys()).current ? 'ok' : 'no current key';
      } catch (err) {
        checks.keyd = unavailableText(err);
      }
      if (av) checks.clamd = (await av.client.ping()) ? 'ok' : 'unavailable';
      return { ready: Object.values(checks).every((c) => c === 'ok'), checks };
    },
  });
  log?.(`inspector ops listening on ${addr.host}:${listener.port} (/health/live, /health/ready, /metrics)`);
  return listener;
}
