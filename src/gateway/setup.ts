/**
 * Builds a gateway from its ssmax.ini: keyd clients (gateway and inspector
 * roles), the peer directory, the sealing key, local delivery, the inspection
 * step (inline, or a client of the remote inspector process). The Haraka
 * plugin calls it at register(); tests call it to run the very same steps
 * in-process.
 */
import cluster from 'node:cluster';
import { createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { FileWatch } from '../ops/reload';
import { CrlFiles } from '../pki/crl-files';
import { certificateRef } from '../chain/certificate-lookup';
import { defaultGroup } from '../crypto/backend';
import { p256PrivateKeyFrom } from '../crypto/ecdsa';
import { Directory, type TxtResolver } from '../directory/directory';
import type { KeydClient } from '../keyd/client';
import { keydClientOf } from '../keyd/client-settings';
import { parseCertificate } from '../pki/certificate';
import { ValidationCache } from '../pki/validate';
import { type GatewayConfig, parseGatewayConfig, readText } from './config';
import { LocalDelivery } from './delivery';
import type { GatewayDeps } from './deps';
import { Advertiser, KeyWatch, nextHopResolver } from './key-exchange';
import { parseInspectionConfig } from '../inspect/config';
import { type Ini, readIniFile } from '../config/ini';
import { MODERATION_CAP_SETTINGS, QuarantineStore } from '../inspect/quarantine';
import { KeydOps } from '../keyd/client-ops';
import { type HeldStore, startHeldKeys } from '../inspect/held-keys';
import { type Inspector, LocalInspector } from '../inspect/engine';
import { RemoteInspector } from '../inspector/client';
import { Lists } from '../lists/expand';
import { SealSwitch } from './seal-switch';
import type { KeydHealth } from './keyd-probe';

export interface Gateway {
  readonly config: GatewayConfig;
  readonly deps: GatewayDeps;
  readonly delivery: LocalDelivery;
  /** keyd's GET /v1/health with this gateway's client certificate (the start-up probe: keyd-probe.ts). */
  keydHealth(): Promise<KeydHealth>;
  /** The EHLO advertisement of this gateway's key version and sealing certificate (undefined when [key_exchange] advertise=false). */
  readonly advertiser?: Advertiser;
  close(): Promise<void>;
}

export interface SetupOptions {
  /** The DNS TXT resolver for peer discovery when [directory] dns=true (default node:dns; tests inject a zone). */
  readonly resolver?: TxtResolver;
  /** Reads one of the gateway's other ini files by name (ssmax-inspect.ini, ssmax-dlp.ini): the plugin passes Haraka's config loader; default: the file in <haraka>/config, empty when missing. */
  readonly readIni?: (name: string) => Ini;
}

/** `ini` as Haraka's config loader (or the `ini` package) parses ssmax.ini; `haraka` is the Haraka folder. */
export function setupGateway(
  ini: Record<string, Record<string, unknown>>,
  haraka: string,
  log: (line: string) => void,
  stateName = 'ssmax-state',
  opts: SetupOptions = {},
): Gateway {
  const config = parseGatewayConfig(ini, join(haraka, 'config'));
  const ca = config.keyd.ca.map((f) => readText(f, 'keyd.ca')); // also the chain of this organisation's certificates
  const client = (cert: string, key: string, settings = { cert: 'keyd.cert', key: 'keyd.key' }): KeydClient =>
    keydClientOf({ ...config.keyd, cert, key }, readText, { settings, maxAnswerBytes: config.keyd.maxAnswerBytes });
  const gatewayClient = client(config.keyd.cert, config.keyd.key);
  const inspectorClient =
    config.keyd.inspectorCert && config.keyd.inspectorKey
      ? client(config.keyd.inspectorCert, config.keyd.inspectorKey, { cert: 'keyd.inspector_cert', key: 'keyd.inspector_key' })
      : undefined;
  const roots = config.pki.roots.map((f) => readText(f, 'pki.roots'));
  const sealCert = parseCertificate(readText(config.seal.cert, 'seal.cert'));
  // the CRLs of [pki] crls, for each user-signature check and each peer bundle and seal: a file is read again only
  // when it changed (src/pki/crl-files.ts); the root's among them revokes a peer's org CA (src/pki/known-crls.ts)
  const crls = new CrlFiles(config.pki.crls, (f) => readText(f, 'pki.crls'));
  // [directory] dns_servers: the TXT lookups and the publishers' host names go to them (unless pinned in [hosts]).
  const directory = new Directory({
    roots,
    crls: () => crls.current(),
    staticPeers: config.peers,
    resolver: config.directory.dns ? opts.resolver : null,
    dnsServers: config.directory.dnsServers,
    cacheDir: join(haraka, stateName, 'directory'),
    fetchTimeoutMs: config.directory.fetchTimeoutMs,
    retryMs: config.directory.retryMs,
    tlsCa: roots,
    hosts: config.directory.hosts,
    allowPrivateAddresses: config.directory.allowPrivateAddresses,
    log: (l) => log(`ssmax directory: ${l}`),
  });
  const group = defaultGroup;
  const keyd = new KeydOps(
    group,
    gatewayClient,
    inspectorClient,
    config.keyd.userFactsTtlMs,
    Date.now,
    config.keyd.batch,
    config.keyd.notFoundTtlMs,
  );
  // proofs are checked against the org key certified in this organisation's own verified bundle
  keyd.anchorInBundle(directory, config.domain);
  const kx = config.keyExchange;
  const keyWatch = new KeyWatch({
    probe: kx.probe,
    probeIntervalMs: kx.probeIntervalMs,
    probeTimeoutMs: kx.probeTimeoutMs,
    refreshMinIntervalMs: kx.refreshMinIntervalMs,
    helo: `mx.${config.domain}`,
    nextHop: nextHopResolver(config.routes),
    refresh: (d) => directory.refresh(d),
    log,
  });
  const advertiser = kx.advertise ? new Advertiser(() => keyd.orgKeys(), sealCert.serial) : undefined;
  // Inspection: inline (ssmax-inspect.ini here, the inspector certificate of [keyd]) or remote (the inspector
  // process, called with this gateway's own gateway-role certificate; no inspector credentials needed here).
  let inspection: Inspector | undefined;
  const ins = config.inspection;
  if (ins.mode === 'remote') {
    inspection = new RemoteInspector({
      url: ins.url,
      servername: ins.servername,
      ca: ins.ca.map((f) => readText(f, ins.ca.join() === config.keyd.ca.join() ? 'keyd.ca' : 'inspection.inspector_ca')),
      timeoutMs: ins.timeoutMs,
      cert: readText(config.keyd.cert, 'keyd.cert'),
      key: readText(config.keyd.key, 'keyd.key'),
      keyd,
      group,
      log,
    });
  } else {
    const readIni = opts.readIni ?? ((name: string) => readIniFile(join(haraka, 'config', name), name, true));
    const inspectConfig = parseInspectionConfig(
      readIni('ssmax-inspect.ini'),
      readIni('ssmax-dlp.ini'),
      join(haraka, 'config'),
      join(haraka, stateName),
    );
    for (const w of inspectConfig.av?.startWarnings ?? []) log(`ssmax inspection: WARNING: ${w}`);
    if (inspectConfig.dlp || inspectConfig.av)
      inspection = new LocalInspector({
        config: inspectConfig,
        quarantine: new QuarantineStore(inspectConfig.quarantineDir, inspectConfig.quarantineCaps),
        keyd,
        group,
      });
  }
  // mailing lists: posts held for moderation stay encrypted in <state>/list-moderation (docs/lists.md)
  const lists = new Lists(
    new QuarantineStore(join(haraka, stateName, 'list-moderation'), config.moderation, MODERATION_CAP_SETTINGS),
    (l) => log(l),
  );
  const deps: GatewayDeps = {
    config,
    group,
    keyd,
    directory,
    keyWatch,
    lists,
    ...(inspection ? { inspection } : {}),
    seal: { privateKey: p256PrivateKeyFrom(readText(config.seal.key, 'seal.key')), certRef: certificateRef(sealCert.der) },
    roots,
    intermediates: ca,
    crls: () => crls.current(),
    validationCache: new ValidationCache(),
    clock: () => new Date(),
  };
  // Renewed certificates (docs/operations.md, "Renewals"), picked up without a restart: the client
  // certificates at once; the sealing certificate once the organisation's own published bundle
  // carries it, so a peer that refreshes on the unknown certificate finds it.
  const note = (l: string) => log(`ssmax: ${l}`);
  const watches: FileWatch[] = [];
  const keydCreds = (c: KeydClient, cert: string, key: string, what: string) =>
    watches.push(
      new FileWatch(
        [cert, key],
        ([certPem, keyPem]) => {
          c.setCredentials(certPem!, keyPem!);
          if (c === gatewayClient && inspection instanceof RemoteInspector) inspection.setCredentials(certPem!, keyPem!);
        },
        note,
        what,
      ).start(),
    );
  keydCreds(gatewayClient, config.keyd.cert, config.keyd.key, 'gateway client certificate');
  if (inspectorClient && config.keyd.inspectorCert && config.keyd.inspectorKey)
    keydCreds(inspectorClient, config.keyd.inspectorCert, config.keyd.inspectorKey, 'inspector client certificate');
  const sealPublic = createPublicKey(deps.seal.privateKey).export({ type: 'spki', format: 'der' });
  // when to switch to a renewed sealing certificate: src/gateway/seal-switch.ts
  const sealSwitch = new SealSwitch({ fetchOwn: () => directory.refresh(config.domain), log: note, domain: config.domain });
  watches.push(
    new FileWatch(
      [config.seal.cert],
      ([pem]) => {
        const cert = parseCertificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem!)?.[0] ?? '');
        if (!Buffer.from(cert.spki).equals(sealPublic)) throw new Error('the new sealing certificate is not for the sealing key');
        const ref = certificateRef(cert.der);
        if (ref !== deps.seal.certRef && !sealSwitch.decide(ref, cert.serial, deps.seal.certRef)) return 'later';
        deps.seal.certRef = ref;
        advertiser?.setSealSerial(cert.serial);
        return undefined;
      },
      note,
      'sealing certificate',
    ).start(),
  );
  // held messages kept openable across key versions (src/inspect/held-keys.ts): at start, then hourly; one run at a time;
  // by the master (or the single process) only: Haraka's cluster workers share these stores, and one run each would ask keyd once per worker
  const held: HeldStore[] = [{ store: lists.moderation, name: 'list moderation' }];
  if (inspection instanceof LocalInspector) held.unshift({ store: inspection.quarantine, name: 'quarantine' });
  const heldKeys = startHeldKeys(held, keyd, config.domain, log, { runner: !cluster.isWorker });
  if (config.delivery.plaintextOverNetwork)
    log(
      `ssmax delivery: WARNING: the mailbox store ${config.delivery.host}:${config.delivery.port} is not on this machine: the decrypted copies for users without an SSMAX client are handed to it in cleartext (accepted: [delivery] allow_plaintext_over_network=true)`,
    );
  const delivery = new LocalDelivery(
    config.delivery.host,
    config.delivery.port,
    config.delivery.timeoutMs,
    join(haraka, stateName, 'delivered'),
    config.delivery.protocol,
    config.delivery.deliveryId,
  );
  return {
    config,
    deps,
    delivery,
    keydHealth: () => gatewayClient.call<KeydHealth>('GET', '/v1/health'),
    ...(advertiser ? { advertiser } : {}),
    async close() {
      await heldKeys.close(); // a run under way ends at its next entry (the rest is moved at the next start)
      for (const w of watches) w.stop();
      gatewayClient.close();
      inspectorClient?.close();
      await directory.close();
      await delivery.close();
      await inspection?.close();
      await lists.close();
    },
  };
}
