/**
 * The publisher's configuration: an ini file (config/ssmax-publisher.ini lists
 * every key with its default). Relative paths are resolved against the file's
 * folder. Every value is checked at load, with an error naming the key.
 * `openPublisher` turns it into a ready Publisher (files read, keyd client made).
 */
import type { KeyObject } from 'node:crypto';
import { OPS_DEFAULTS } from '../ops/server';
import {
  ConfigError,
  IniReader,
  readSettingFile,
  settingFileError,
  defineSettings,
  settingError,
  readIniFile,
  type ServiceHead,
  readServiceHead,
  refuseUnknown,
} from '../config/ini';
import { type KeydConnection, keydClientOf, keydConnectionSettings, readKeydConnection } from '../keyd/client-settings';
import type { InboundPolicy } from '../pki/bundle';
import { privateKeyFromPem } from '../pki/keys';
import type { KeydPublic } from './material';
import { pemBlocks } from './material';
import { Publisher } from './publisher';
import { servedChain } from './tls-chain';
import { FileWatch, RELOAD_CHECK_MS } from '../ops/reload';
import { readCertificateFile, readCrlFile, readTlsPair } from '../config/setting-files';
import { pemTexts } from '../pki/pem';
import { listenerSettings } from '../net/listener-limits';

/** The one configuration error (src/config/ini.ts), under the name this module always exported. */
export const PublisherConfigError = ConfigError;
export type PublisherConfigError = ConfigError;

export interface PublisherConfig extends ServiceHead {
  readonly stateFile: string;
  /** The TLS handshake time and the cap on open connections of the HTTPS listener (src/net/listener-limits.ts). */
  readonly listener: { readonly handshakeTimeoutMs: number; readonly maxConnections: number };
  readonly lifetimeMs: number;
  readonly republishAfter: number;
  readonly pollMs: number;
  readonly abuseContact: string;
  readonly inboundPolicy: InboundPolicy;
  readonly tls: { readonly cert: string; readonly key: string };
  readonly signer: { readonly cert: string; readonly key: string; readonly passphraseFile?: string };
  /** keyd, called with the publisher's admin-role certificate (paths). */
  readonly keyd: KeydConnection;
  readonly pki: {
    readonly roots: readonly string[];
    readonly orgCaChain: readonly string[];
    readonly sealingCertificates: readonly string[];
    readonly crls: readonly string[];
  };
}

export const PUBLISHER_DEFAULTS = {
  listen: '0.0.0.0:8443',
  lifetime_seconds: 86400,
  republish_after: 0.5,
  poll_seconds: 30,
  encryption: 'required',
  seal: 'required',
  max_message_bytes: 26214400,
  timeout_ms: 5000,
} as const;

const MS = { type: 'num', min: 100, max: 600000 } as const;

/** The settings of the publisher's config file (read at start; [ops]: ops/service-ops.ts). */
export const PUBLISHER_SETTINGS = defineSettings({
  'publisher.domain': { type: 'str' },
  'publisher.listen': { type: 'str', default: PUBLISHER_DEFAULTS.listen },
  'publisher.state_file': { type: 'str' },
  'publisher.lifetime_seconds': { type: 'num', min: 60, max: 366 * 86400, default: PUBLISHER_DEFAULTS.lifetime_seconds },
  'publisher.republish_after': { type: 'num', min: 0.01, max: 0.99, default: PUBLISHER_DEFAULTS.republish_after },
  'publisher.poll_seconds': { type: 'num', min: 0.1, max: 86400, default: PUBLISHER_DEFAULTS.poll_seconds },
  /** Default: mailto:abuse@<domain>. */
  'publisher.abuse_contact': { type: 'str' },
  ...listenerSettings('publisher'),
  'policy.encryption': { type: 'enum', values: ['required', 'opportunistic'], default: PUBLISHER_DEFAULTS.encryption },
  'policy.seal': { type: 'enum', values: ['required', 'optional'], default: PUBLISHER_DEFAULTS.seal },
  'policy.max_message_bytes': { type: 'num', min: 1, max: 2 ** 40, whole: true, default: PUBLISHER_DEFAULTS.max_message_bytes },
  'tls.cert': { type: 'str' },
  'tls.key': { type: 'str' },
  'signer.cert': { type: 'str' },
  'signer.key': { type: 'str' },
  'signer.passphrase_file': { type: 'str' },
  ...keydConnectionSettings({ ...MS, default: PUBLISHER_DEFAULTS.timeout_ms }),
  'pki.roots': { type: 'list' },
  'pki.org_ca_chain': { type: 'list' },
  'pki.sealing_certificates': { type: 'list', default: [] },
  'pki.crls': { type: 'list' },
  'ops.listen': { type: 'str', default: OPS_DEFAULTS.listen },
});

export function loadPublisherConfig(file: string): PublisherConfig {
  const r = new IniReader(PUBLISHER_SETTINGS, readIniFile(file, 'publisher config'), file);
  refuseUnknown(r); // first: a misspelt key or section stops the publisher, named
  const head = readServiceHead(r, 'publisher');
  const { domain } = head;
  const abuseContact = r.opt('publisher.abuse_contact') ?? `mailto:abuse@${domain}`;
  if (!/^mailto:[^@\s]+@[^@\s]+$/.test(abuseContact))
    throw r.fail('publisher', 'abuse_contact', `"${abuseContact}" is not a mailto: address`);
  const passphraseFile = r.optPath('signer.passphrase_file');
  return {
    ...head,
    stateFile: r.path('publisher.state_file'),
    listener: { handshakeTimeoutMs: r.get('publisher.handshake_timeout_ms'), maxConnections: r.get('publisher.max_connections') },
    lifetimeMs: r.get('publisher.lifetime_seconds') * 1000,
    republishAfter: r.get('publisher.republish_after'),
    pollMs: r.get('publisher.poll_seconds') * 1000,
    abuseContact,
    inboundPolicy: {
      encryption: r.get('policy.encryption'),
      seal: r.get('policy.seal'),
      maxMessageBytes: r.get('policy.max_message_bytes'),
    },
    tls: { cert: r.path('tls.cert'), key: r.path('tls.key') },
    signer: { cert: r.path('signer.cert'), key: r.path('signer.key'), ...(passphraseFile ? { passphraseFile } : {}) },
    keyd: readKeydConnection(r),
    pki: {
      roots: r.paths('pki.roots'),
      orgCaChain: r.paths('pki.org_ca_chain'),
      sealingCertificates: r.paths('pki.sealing_certificates'),
      crls: r.paths('pki.crls'),
    },
  };
}

/**
 * Every file the publisher needs, read and checked before anything is published or listened on (docs/configuration.md,
 * "Files a setting names"): a missing or unusable one is an error naming its setting and the file (exit 78, as keyd).
 */
function checkPublisherFiles(config: PublisherConfig): {
  tlsCert: string;
  tlsKey: string;
  signerCert: string;
  signerKey: KeyObject;
  roots: string[];
} {
  const file = config.file;
  const roots = config.pki.roots.flatMap((f) => pemTexts(readCertificateFile(file, 'pki.roots', f), 'CERTIFICATE'));
  for (const f of config.pki.orgCaChain) readCertificateFile(file, 'pki.org_ca_chain', f);
  for (const f of config.pki.sealingCertificates) readCertificateFile(file, 'pki.sealing_certificates', f);
  for (const f of config.pki.crls) readCrlFile(file, 'pki.crls', f);
  const passphrase = config.signer.passphraseFile
    ? readSettingFile(file, 'signer.passphrase_file', config.signer.passphraseFile).trim()
    : undefined;
  const signerCert = pemTexts(readCertificateFile(file, 'signer.cert', config.signer.cert), 'CERTIFICATE')[0] as string;
  const keyPem = readSettingFile(file, 'signer.key', config.signer.key);
  let signerKey: KeyObject;
  try {
    signerKey = privateKeyFromPem(keyPem, passphrase);
  } catch (err) {
    throw settingFileError(
      file,
      'signer.key',
      config.signer.key,
      `"${config.signer.key}" cannot be read as a private key: ${(err as Error).message}`,
    );
  }
  const tls = readTlsPair(file, { cert: 'tls.cert', key: 'tls.key' }, config.tls);
  let tlsCert: string;
  try {
    tlsCert = servedChain(tls.cert, config.tls.cert, roots);
  } catch (err) {
    if (err instanceof PublisherConfigError) throw err;
    throw settingError(config.file, 'tls', 'cert', (err as Error).message);
  }
  return { tlsCert, tlsKey: tls.key, signerCert, signerKey, roots };
}

/** A Publisher for this configuration, with a keyd client (admin certificate) as its key source. Call `start()`. */
export function openPublisher(
  config: PublisherConfig,
  opts: { log?: (line: string) => void; clock?: () => number } = {},
): { publisher: Publisher; close: () => void } {
  const { tlsCert, tlsKey, signerCert, signerKey, roots } = checkPublisherFiles(config);
  const client = keydClientOf(config.keyd, (f, setting) => readSettingFile(config.file, setting, f), { maxSockets: 2 });
  const publisher = new Publisher({
    domain: config.domain,
    signer: { certificate: signerCert, privateKey: signerKey },
    files: { orgCaChain: config.pki.orgCaChain, sealingCertificates: config.pki.sealingCertificates, crls: config.pki.crls },
    roots,
    abuseContact: config.abuseContact,
    inboundPolicy: config.inboundPolicy,
    lifetimeMs: config.lifetimeMs,
    republishAfter: config.republishAfter,
    pollMs: config.pollMs,
    stateFile: config.stateFile,
    keyd: () => client.call<KeydPublic>('GET', '/v1/public'),
    tls: { cert: tlsCert, key: tlsKey },
    host: config.host,
    port: config.port,
    listener: config.listener,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
  // renewed certificates (docs/operations.md, "Renewals"), picked up without a restart
  const note = (l: string) => opts.log?.(`publisher: ${l}`);
  const watches = [
    new FileWatch(
      [config.signer.cert],
      ([pem]) => publisher.setSignerCertificate(pemBlocks(config.signer.cert, 'bundle-signer certificate')[0] ?? pem!),
      note,
      'bundle-signer certificate',
    ),
    new FileWatch(
      [config.tls.cert, config.tls.key],
      ([cert, key]) => publisher.setTls(servedChain(cert!, config.tls.cert, roots), key!),
      note,
      'TLS certificate',
    ),
    new FileWatch(
      [config.keyd.cert, config.keyd.key],
      ([cert, key]) => client.setCredentials(cert!, key!),
      note,
      'keyd client certificate',
    ),
  ].map((w) => w.start(Math.min(RELOAD_CHECK_MS, config.pollMs)));
  return {
    publisher,
    close: () => {
      for (const w of watches) w.stop();
      client.close();
    },
  };
}
