/**
 * Assembles a running inspector process from its configuration: a keyd
 * client with the inspector's OWN inspector-role certificate (blinded
 * decryption with a verified proof, user facts for consent, the org's public
 * keys), the inspection rules (ssmax-inspect.ini, ssmax-dlp.ini), the
 * quarantine store under its state folder, the same engine the gateway runs
 * inline (LocalInspector), and the HTTPS server. It keeps its held
 * messages openable across the organisation's key versions, as the gateway
 * does for the stores it holds (src/inspect/held-keys.ts: at start and
 * hourly). `stop()` shuts down gracefully.
 */
import { FileWatch } from '../ops/reload';
import { CrlFiles } from '../pki/crl-files';
import { dirname, join } from 'node:path';
import { defaultGroup } from '../crypto/backend';
import { LocalInspector } from '../inspect/engine';
import { startHeldKeys } from '../inspect/held-keys';
import { startInspectorOps } from '../ops/service-ops';
import { KeydOps } from '../keyd/client-ops';
import { Directory } from '../directory/directory';
import { parseInspectionConfig, readIni, refuseUnknownInspection } from '../inspect/config';
import { QuarantineStore } from '../inspect/quarantine';
import { keydClientOf } from '../keyd/client-settings';
import { ValidationCache } from '../pki/validate';
import { requestLimitsOf } from '../net/https-server';
import { type InspectorConfig, InspectorConfigError } from './config';
import { InspectorServer } from './server';
import { readSettingFile } from '../config/ini';
import { readCrlFile, readTlsPair } from '../config/setting-files';

/** A file a setting of the inspector's config names (src/config/ini.ts readSettingFile: the setting and the file named). */
function settingFile(config: InspectorConfig): (file: string, setting: string) => string {
  return (file, setting) => readSettingFile(config.file, setting, file);
}

export interface RunningInspector {
  readonly port: number;
  readonly engine: LocalInspector;
  stop(): Promise<void>;
}

export async function startInspector(
  config: InspectorConfig,
  opts: { clock?: () => Date; log?: (line: string) => void } = {},
): Promise<RunningInspector> {
  const clock = opts.clock ?? (() => new Date());
  const readPem = settingFile(config);
  const inspectIni = readIni(config.inspection.inspect);
  const dlpIni = readIni(config.inspection.dlpRules);
  // a misspelt key or section of either file stops the inspector, named (the gateway logs one instead)
  refuseUnknownInspection(config.inspection.inspect, inspectIni, config.inspection.dlpRules, dlpIni);
  const inspectConfig = parseInspectionConfig(inspectIni, dlpIni, dirname(config.inspection.inspect), config.stateDir);
  for (const w of inspectConfig.av?.startWarnings ?? []) opts.log?.(`WARNING: ${w}`);
  const keydClient = keydClientOf(config.keyd, readPem);
  const group = defaultGroup;
  // one client, the inspector role, for all its calls: /v1/decrypt, /v1/directory/users, /v1/public, and /v1/reencrypt to own-newer (held keys)
  const keyd = new KeydOps(group, keydClient, keydClient);
  // DLEQ proofs are checked against the org key certified in the organisation's own verified bundle
  const roots = config.pki.roots.map((f) => readPem(f, 'pki.roots'));
  const bundleUrl = config.bundle.url;
  // the CRLs of [pki] crls, for each new client connection and for the bundle: a file is read again only when it
  // changed (src/pki/crl-files.ts)
  for (const f of config.pki.crls) readCrlFile(config.file, 'pki.crls', f); // each a CRL, before the start
  const crls = new CrlFiles(config.pki.crls, (f) => readPem(f, 'pki.crls'));
  const directory = new Directory({
    roots,
    crls: () => crls.current(),
    tlsCa: roots,
    cacheDir: join(config.stateDir, 'directory'),
    ...(bundleUrl ? { staticPeers: { [config.domain]: bundleUrl }, resolver: null } : {}),
    ...(bundleUrl && config.bundle.address ? { hosts: { [new URL(bundleUrl).hostname]: config.bundle.address } } : {}),
  });
  keyd.anchorInBundle(directory, config.domain);
  const engine = new LocalInspector({
    config: inspectConfig,
    quarantine: new QuarantineStore(inspectConfig.quarantineDir, inspectConfig.quarantineCaps),
    keyd,
    group,
  });
  const tls = readTlsPair(config.file, { cert: 'tls.cert', key: 'tls.key' }, config.tls);
  const clientCas = config.tls.clientCas.map((f) => readPem(f, 'tls.client_ca'));
  if (clientCas.every((pem) => roots.some((r) => r.trim() === pem.trim())))
    throw new InspectorConfigError(
      `Config "${config.file}": [tls] client_ca must name the org CA (clients' certificates must be issued by it)`,
    );
  const server = new InspectorServer(engine, {
    domain: config.domain,
    host: config.host,
    port: config.port,
    cert: tls.cert,
    key: tls.key,
    clientCas,
    roots,
    orgCas: clientCas.filter((pem) => !roots.some((r) => r.trim() === pem.trim())),
    crls: () => crls.current(),
    clock,
    ...requestLimitsOf(config.limits),
    validationCache: new ValidationCache(),
    ...(opts.log ? { log: opts.log } : {}),
  });
  let port: number;
  let ops: Awaited<ReturnType<typeof startInspectorOps>>;
  try {
    port = await server.listen();
    ops = await startInspectorOps(config.file, engine, keyd, opts.log); // [ops]: health and metrics (docs/operations.md)
  } catch (err) {
    await server.close();
    keydClient.close();
    await engine.close();
    await directory.close();
    throw err;
  }
  // its quarantine's messages kept openable across key versions (src/inspect/held-keys.ts): at start, then hourly, one
  // run at a time; keyd re-encrypts each to the current version (target own-newer, which the inspector role may ask)
  const heldKeys = startHeldKeys([{ store: engine.quarantine, name: 'quarantine' }], keyd, config.domain, opts.log ?? (() => undefined));
  // renewed certificates (docs/operations.md, "Renewals"), picked up without a restart
  const note = (l: string) => opts.log?.(`inspector: ${l}`);
  const watches = [
    new FileWatch(
      [config.tls.cert, config.tls.key],
      ([cert, key]) => server.server.setSecureContext({ cert: cert!, key: key!, ca: clientCas, minVersion: 'TLSv1.2' }),
      note,
      'TLS certificate',
    ),
    new FileWatch(
      [config.keyd.cert, config.keyd.key],
      ([cert, key]) => keydClient.setCredentials(cert!, key!),
      note,
      'keyd client certificate',
    ),
  ].map((w) => w.start());
  return {
    port,
    engine,
    async stop() {
      await heldKeys.close();
      for (const w of watches) w.stop();
      await ops?.close();
      await server.close();
      keydClient.close();
      await engine.close();
      await directory.close();
    },
  };
}
