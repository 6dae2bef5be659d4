/**
 * Configuration of the sender-tracking tools (`ssmax abuse`, `ssmax
 * registry`): one ini file, config/ssmax-abuse.ini, which lists every key
 * with its default. Relative paths are resolved against the file's folder;
 * every value is checked at load, with an error naming the key, and so is
 * every key and section (the directory's too): one that no reader takes is
 * refused, named (src/config/ini.ts refuseUnknown). The
 * `[directory]`, `[peers]`, `[hosts]` and `[tls]` sections are those of the
 * directory config (docs/directory.md) and are read by `loadDirectoryConfig`.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, IniReader, defineSettings, readIniFile, readSettingFile, refuseUnknown, settingError } from '../config/ini';
import { DIRECTORY_SETTINGS, FREE_SECTIONS as DIRECTORY_FREE_SECTIONS } from '../directory/config';
import type { KeydClient } from '../keyd/client';
import { isKeydUrl, keydClientOf } from '../keyd/client-settings';
import { type SubmitSettings, submitSecurity } from './submit';
import { plaintextSmtpRefusal } from '../net/loopback';
import { errnoText } from '../errors/errno';

/** The one configuration error (src/config/ini.ts), under the name this module always exported. */
export const AbuseConfigError = ConfigError;
export type AbuseConfigError = ConfigError;

export interface KeydSettings {
  readonly url: string;
  readonly servername?: string;
  readonly ca: readonly string[];
  /** Operator (admin role) client certificate and key files. */
  readonly cert?: string;
  readonly key?: string;
  /** Disclosure role client certificate and key files. */
  readonly disclosureCert?: string;
  readonly disclosureKey?: string;
  readonly timeoutMs: number;
}

export interface AbuseConfig {
  readonly file: string;
  /** This organisation's domain. */
  readonly domain?: string;
  /** From: of the reports this organisation sends. */
  readonly from?: string;
  readonly reportingMta?: string;
  readonly keyd?: KeydSettings;
  readonly submit?: SubmitSettings;
  readonly server: { readonly host: string; readonly port: number; readonly bearerTokenFile?: string; readonly maxBytes: number };
  /** Whether the file has a [directory] section (needed to verify chains and bundles). */
  readonly hasDirectory: boolean;
  readonly registry: {
    readonly caDir?: string;
    readonly caCert?: string;
    readonly caKey?: string;
    readonly caPassphraseFile?: string;
    readonly crl?: string;
    readonly crlDays: number;
    readonly root?: string;
    readonly bundle?: string;
    readonly profiles?: string;
    readonly certificateDays: number;
  };
}

/** The settings of the abuse tools' file besides the directory's sections (read by each command). */
export const ABUSE_SETTINGS = defineSettings({
  'abuse.domain': { type: 'str' },
  'abuse.from': { type: 'str' },
  /** Default: mx.<domain>. */
  'abuse.reporting_mta': { type: 'str' },
  'keyd.url': { type: 'str' },
  'keyd.servername': { type: 'str' },
  'keyd.ca': { type: 'list', default: [] },
  'keyd.cert': { type: 'str' },
  'keyd.key': { type: 'str' },
  'keyd.disclosure_cert': { type: 'str' },
  'keyd.disclosure_key': { type: 'str' },
  'keyd.timeout_ms': { type: 'num', min: 100, max: 600000, whole: true, default: 5000 },
  'submit.host': { type: 'str' },
  'submit.port': { type: 'num', min: 1, max: 65535, whole: true, default: 587 },
  'submit.user': { type: 'str' },
  'submit.password_file': { type: 'str' },
  'submit.security': { type: 'enum', values: ['none', 'starttls', 'tls'] },
  'server.listen': { type: 'str', default: '127.0.0.1:8025' },
  'server.bearer_token_file': { type: 'str' },
  'server.max_bytes': { type: 'num', min: 1024, max: 1024 * 1024 * 1024, whole: true, default: 25 * 1024 * 1024 },
  'registry.ca_dir': { type: 'str' },
  'registry.ca_cert': { type: 'str' },
  'registry.ca_key': { type: 'str' },
  'registry.ca_passphrase_file': { type: 'str' },
  'registry.crl': { type: 'str' },
  'registry.crl_days': { type: 'num', min: 1, max: 365, whole: true, default: 7 },
  'registry.root': { type: 'str' },
  'registry.bundle': { type: 'str' },
  'registry.profiles': { type: 'str' },
  'registry.certificate_days': { type: 'num', min: 1, max: 3650, whole: true, default: 365 },
});

export function loadAbuseConfig(file: string): AbuseConfig {
  const ini = readIniFile(file, 'config');
  const r = new IniReader(ABUSE_SETTINGS, ini, file);
  // every key and section of the file, the directory's included, is one a reader takes; else refused, named
  refuseUnknown(new IniReader({ ...ABUSE_SETTINGS, ...DIRECTORY_SETTINGS }, ini, file), { free: DIRECTORY_FREE_SECTIONS });
  const opt = (name: keyof typeof ABUSE_SETTINGS) => r.opt(name) as string | undefined;
  const path = (name: keyof typeof ABUSE_SETTINGS) => r.optPath(name);
  const url = opt('keyd.url');
  if (url !== undefined && !isKeydUrl(url)) throw r.fail('keyd', 'url', `must be https://host:port, got '${url}'`);
  const keyd: KeydSettings | undefined =
    url === undefined
      ? undefined
      : {
          url,
          ...(opt('keyd.servername') ? { servername: opt('keyd.servername') as string } : {}),
          ca: r.paths('keyd.ca'),
          ...(path('keyd.cert') ? { cert: path('keyd.cert') as string } : {}),
          ...(path('keyd.key') ? { key: path('keyd.key') as string } : {}),
          ...(path('keyd.disclosure_cert') ? { disclosureCert: path('keyd.disclosure_cert') as string } : {}),
          ...(path('keyd.disclosure_key') ? { disclosureKey: path('keyd.disclosure_key') as string } : {}),
          timeoutMs: r.get('keyd.timeout_ms'),
        };
  if (keyd && keyd.ca.length === 0) throw r.fail('keyd', 'ca', "is required (the CA certificates keyd's certificate chains to)");
  let submit: SubmitSettings | undefined;
  const host = opt('submit.host');
  if (host !== undefined) {
    const security = r.opt('submit.security');
    const pwFile = path('submit.password_file');
    let password: string | undefined;
    if (pwFile) {
      try {
        password = readFileSync(pwFile, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        throw r.fail('submit', 'password_file', `cannot be read: ${errnoText(err)}`);
      }
    }
    // cleartext only on loopback (src/net/loopback.ts); off loopback the default is STARTTLS
    const port = r.get('submit.port');
    const effective = submitSecurity({ host, port, ...(security ? { security } : {}) });
    const refusal = plaintextSmtpRefusal(host, effective);
    if (refusal) throw r.fail('submit', 'security', refusal);
    submit = {
      host,
      port,
      ...(opt('submit.user') ? { user: opt('submit.user') as string } : {}),
      ...(password !== undefined ? { password } : {}),
      security: effective,
    };
  }
  const listen = r.hostPort('server.listen');
  const bearer = path('server.bearer_token_file');
  const domain = opt('abuse.domain')?.toLowerCase();
  return {
    file,
    ...(domain ? { domain } : {}),
    ...(opt('abuse.from') ? { from: opt('abuse.from') as string } : {}),
    ...(opt('abuse.reporting_mta')
      ? { reportingMta: opt('abuse.reporting_mta') as string }
      : domain
        ? { reportingMta: `mx.${domain}` }
        : {}),
    ...(keyd ? { keyd } : {}),
    ...(submit ? { submit } : {}),
    server: {
      host: listen.host,
      port: listen.port,
      ...(bearer ? { bearerTokenFile: bearer } : {}),
      maxBytes: r.get('server.max_bytes'),
    },
    hasDirectory: ini.directory !== undefined,
    registry: {
      ...(path('registry.ca_dir') ? { caDir: path('registry.ca_dir') as string } : {}),
      ...(path('registry.ca_cert') ? { caCert: path('registry.ca_cert') as string } : {}),
      ...(path('registry.ca_key') ? { caKey: path('registry.ca_key') as string } : {}),
      ...(path('registry.ca_passphrase_file') ? { caPassphraseFile: path('registry.ca_passphrase_file') as string } : {}),
      ...(path('registry.crl') ? { crl: path('registry.crl') as string } : {}),
      crlDays: r.get('registry.crl_days'),
      ...(path('registry.root') ? { root: path('registry.root') as string } : {}),
      ...(path('registry.bundle') ? { bundle: path('registry.bundle') as string } : {}),
      ...(path('registry.profiles') ? { profiles: path('registry.profiles') as string } : {}),
      certificateDays: r.get('registry.certificate_days'),
    },
  };
}

/** A keyd client with the operator (admin) certificate, or the disclosure one. */
export function keydClientFor(
  config: AbuseConfig,
  role: 'operator' | 'disclosure',
  override?: { cert?: string; key?: string },
): KeydClient {
  const k = config.keyd;
  if (!k) throw settingError(config.file, 'keyd', 'url', 'is required');
  const cert = override?.cert ?? (role === 'disclosure' ? k.disclosureCert : k.cert);
  const key = override?.key ?? (role === 'disclosure' ? k.disclosureKey : k.key);
  const names = role === 'disclosure' ? ['disclosure_cert', 'disclosure_key'] : ['cert', 'key'];
  if (!cert) throw settingError(config.file, 'keyd', names[0]!, 'is required (or --cert)');
  if (!key) throw settingError(config.file, 'keyd', names[1]!, 'is required (or --key)');
  return keydClientOf({ ...k, cert, key }, (file, setting) => readSettingFile(config.file, setting, file), {
    settings: { cert: `keyd.${names[0]!}`, key: `keyd.${names[1]!}` },
  });
}
