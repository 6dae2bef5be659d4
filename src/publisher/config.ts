/**
 * The publisher's configuration: an ini file (config/ssmax-publisher.ini lists
 * every key with its default). Relative paths are resolved against the file's
 * folder. Every value is checked at load, with an error naming the key.
 * `openPublisher` turns it into a ready Publisher (files read, keyd client made).
 */
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'ini';
import { KeydClient } from '../keyd/client';
import type { InboundPolicy } from '../pki/bundle';
import { privateKeyFromPem } from '../pki/keys';
import type { KeydPublic } from './material';
import { pemBlocks } from './material';
import { Publisher } from './publisher';
import { servedChain } from './tls-chain';
import { FileWatch, RELOAD_CHECK_MS } from '../ops/reload';

export class PublisherConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PublisherConfigError';
  }
}

export interface PublisherConfig {
  readonly file: string;
  readonly domain: string;
  readonly host: string;
  readonly port: number;
  readonly stateFile: string;
  readonly lifetimeMs: number;
  readonly republishAfter: number;
  readonly pollMs: number;
  readonly abuseContact: string;
  readonly inboundPolicy: InboundPolicy;
  readonly tls: { readonly cert: string; readonly key: string };
  readonly signer: { readonly cert: string; readonly key: string; readonly passphraseFile?: string };
  readonly keyd: { readonly url: string; readonly servername?: string; readonly cert: string; readonly key: string; readonly ca: readonly string[]; readonly timeoutMs: number };
  readonly pki: { readonly roots: readonly string[]; readonly orgCaChain: readonly string[]; readonly sealingCertificates: readonly string[]; readonly crls: readonly string[] };
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

type Section = Record<string, unknown>;

export function loadPublisherConfig(file: string): PublisherConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PublisherConfigError(`Cannot read publisher config "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const ini = parse(text) as Record<string, Section>;
  const base = dirname(resolve(file));
  const bad = (s: string, k: string, why: string) => new PublisherConfigError(`Config "${file}": [${s}] ${k} ${why}`);
  const sec = (name: string): Section => (ini[name] ?? {}) as Section;
  const opt = (s: string, k: string): string | undefined => {
    const v = sec(s)[k];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const need = (s: string, k: string): string => {
    const v = opt(s, k);
    if (v === undefined) throw bad(s, k, 'is required');
    return v;
  };
  const path = (p: string) => resolve(base, p);
  const paths = (s: string, k: string, required: boolean): string[] => {
    const v = required ? need(s, k) : opt(s, k);
    return v ? v.split(',').map((x) => x.trim()).filter((x) => x !== '').map(path) : [];
  };
  const num = (s: string, k: 'lifetime_seconds' | 'republish_after' | 'poll_seconds' | 'max_message_bytes' | 'timeout_ms', min: number, max: number): number => {
    const raw = opt(s, k);
    const v = raw === undefined ? Number(PUBLISHER_DEFAULTS[k]) : Number(raw);
    if (!Number.isFinite(v) || v < min || v > max) throw bad(s, k, `must be a number from ${min} to ${max} (got "${raw}")`);
    return v;
  };
  const listen = opt('publisher', 'listen') ?? PUBLISHER_DEFAULTS.listen;
  const m = /^(.+):(\d{1,5})$/.exec(listen);
  if (!m) throw bad('publisher', 'listen', `must be host:port (got "${listen}")`);
  const domain = need('publisher', 'domain').toLowerCase();
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(domain)) throw bad('publisher', 'domain', `"${domain}" is not a domain name`);
  const abuseContact = opt('publisher', 'abuse_contact') ?? `mailto:abuse@${domain}`;
  if (!/^mailto:[^@\s]+@[^@\s]+$/.test(abuseContact)) throw bad('publisher', 'abuse_contact', `"${abuseContact}" is not a mailto: address`);
  const encryption = opt('policy', 'encryption') ?? PUBLISHER_DEFAULTS.encryption;
  if (encryption !== 'required' && encryption !== 'opportunistic') throw bad('policy', 'encryption', `must be required or opportunistic (got "${encryption}")`);
  const seal = opt('policy', 'seal') ?? PUBLISHER_DEFAULTS.seal;
  if (seal !== 'required' && seal !== 'optional') throw bad('policy', 'seal', `must be required or optional (got "${seal}")`);
  const republishAfter = num('publisher', 'republish_after', 0.01, 0.99);
  const passphraseFile = opt('signer', 'passphrase_file');
  const servername = opt('keyd', 'servername');
  return {
    file, domain, host: m[1] as string, port: Number(m[2]),
    stateFile: path(need('publisher', 'state_file')),
    lifetimeMs: num('publisher', 'lifetime_seconds', 60, 366 * 86400) * 1000,
    republishAfter,
    pollMs: num('publisher', 'poll_seconds', 0.1, 86400) * 1000,
    abuseContact,
    inboundPolicy: { encryption, seal, maxMessageBytes: Math.floor(num('policy', 'max_message_bytes', 1, 2 ** 40)) },
    tls: { cert: path(need('tls', 'cert')), key: path(need('tls', 'key')) },
    signer: { cert: path(need('signer', 'cert')), key: path(need('signer', 'key')), ...(passphraseFile ? { passphraseFile: path(passphraseFile) } : {}) },
    keyd: {
      url: need('keyd', 'url'), ...(servername ? { servername } : {}),
      cert: path(need('keyd', 'cert')), key: path(need('keyd', 'key')), ca: paths('keyd', 'ca', true),
      timeoutMs: num('keyd', 'timeout_ms', 100, 600000),
    },
    pki: {
      roots: paths('pki', 'roots', true), orgCaChain: paths('pki', 'org_ca_chain', true),
      sealingCertificates: paths('pki', 'sealing_certificates', false), crls: paths('pki', 'crls', true),
    },
  };
}

function readText(file: string, label: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new PublisherConfigError(`Cannot read ${label} "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A Publisher for this configuration, with a keyd client (admin certificate) as its key source. Call `start()`. */
export function openPublisher(config: PublisherConfig, opts: { log?: (line: string) => void; clock?: () => number } = {}): { publisher: Publisher; close: () => void } {
  const passphrase = config.signer.passphraseFile ? readText(config.signer.passphraseFile, 'signer passphrase').trim() : undefined;
  let signerKey: KeyObject;
  try {
    const pem = readText(config.signer.key, 'bundle-signer key');
    signerKey = privateKeyFromPem(pem, passphrase);
  } catch (err) {
    if (err instanceof PublisherConfigError) throw err;
    throw new PublisherConfigError(`Cannot read bundle-signer key "${config.signer.key}": ${(err as Error).message}`);
  }
  const signerCert = pemBlocks(config.signer.cert, 'bundle-signer certificate')[0] as string;
  const client = new KeydClient({
    url: config.keyd.url, cert: readText(config.keyd.cert, 'keyd client certificate'), key: readText(config.keyd.key, 'keyd client key'),
    ca: config.keyd.ca.map((f) => readText(f, 'keyd CA')), timeoutMs: config.keyd.timeoutMs, maxSockets: 2,
    ...(config.keyd.servername ? { servername: config.keyd.servername } : {}),
  });
  const roots = config.pki.roots.flatMap((f) => pemBlocks(f, 'root certificate'));
  let tlsCert: string;
  try {
    tlsCert = servedChain(readText(config.tls.cert, 'TLS certificate'), config.tls.cert, roots);
  } catch (err) {
    if (err instanceof PublisherConfigError) throw err;
    throw new PublisherConfigError(`Config "${config.file}": [tls] cert: ${(err as Error).message}`);
  }
  const publisher = new Publisher({
    domain: config.domain,
    signer: { certificate: signerCert, privateKey: signerKey },
    files: { orgCaChain: config.pki.orgCaChain, sealingCertificates: config.pki.sealingCertificates, crls: config.pki.crls },
    roots,
    abuseContact: config.abuseContact, inboundPolicy: config.inboundPolicy,
    lifetimeMs: config.lifetimeMs, republishAfter: config.republishAfter, pollMs: config.pollMs,
    stateFile: config.stateFile,
    keyd: () => client.call<KeydPublic>('GET', '/v1/public'),
    tls: { cert: tlsCert, key: readText(config.tls.key, 'TLS key') },
    host: config.host, port: config.port,
    ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.log ? { log: opts.log } : {}),
  });
  // renewed certificates (docs/operations.md, "Renewals"), picked up without a restart
  const note = (l: string) => opts.log?.(`publisher: ${l}`);
  const watches = [
    new FileWatch([config.signer.cert], ([pem]) => publisher.setSignerCertificate(pemBlocks(config.signer.cert, 'bundle-signer certificate')[0] ?? pem!), note, 'bundle-signer certificate'),
    new FileWatch([config.tls.cert, config.tls.key], ([cert, key]) => publisher.setTls(servedChain(cert!, config.tls.cert, roots), key!), note, 'TLS certificate'),
    new FileWatch([config.keyd.cert, config.keyd.key], ([cert, key]) => client.setCredentials(cert!, key!), note, 'keyd client certificate'),
  ].map((w) => w.start(Math.min(RELOAD_CHECK_MS, config.pollMs)));
  return {
    publisher,
    close: () => {
      for (const w of watches) w.stop();
      client.close();
    },
  };
}
