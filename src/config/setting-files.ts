/**
 * The files a configuration names, read and checked before a service uses
 * them (docs/configuration.md, "Files a setting names"): a file that cannot
 * be read, or holds no certificate, CRL or key of the kind its setting
 * wants, is an error naming the file, the setting and the file it is set in
 * (src/config/ini.ts settingFileError), so that a service refuses to start
 * (exit 78) instead of failing on its first request.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { parseCrl } from '../pki/crl';
import { pemTexts } from '../pki/pem';
import { readSettingFile, settingFileError } from './ini';

/** The certificates (PEM blocks) of a file a setting names; at least one, each a certificate. */
export function readCertificateFile(configFile: string, setting: string, path: string): string {
  const text = readSettingFile(configFile, setting, path);
  const blocks = pemTexts(text, 'CERTIFICATE');
  if (blocks.length === 0) throw settingFileError(configFile, setting, path, `"${path}" holds no PEM certificate`);
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw settingFileError(configFile, setting, path, `"${path}" is not a certificate (${(err as Error).message})`);
    }
  }
  return text;
}

/** The text of a CRL file a setting names, checked to be a CRL. */
export function readCrlFile(configFile: string, setting: string, path: string): string {
  const text = readSettingFile(configFile, setting, path);
  try {
    parseCrl(text);
  } catch (err) {
    throw settingFileError(configFile, setting, path, `"${path}" is not a CRL (${(err as Error).message})`);
  }
  return text;
}

/**
 * A TLS certificate and its key as two settings name them ("tls.cert",
 * "tls.key"), checked to be a certificate, a key, and a pair: what OpenSSL
 * would otherwise refuse at the listener with no file named.
 */
export function readTlsPair(
  configFile: string,
  settings: { readonly cert: string; readonly key: string },
  paths: { readonly cert: string; readonly key: string },
): { cert: string; key: string } {
  const cert = readCertificateFile(configFile, settings.cert, paths.cert);
  const key = readSettingFile(configFile, settings.key, paths.key);
  let keyObject;
  try {
    keyObject = createPrivateKey(key);
  } catch (err) {
    throw settingFileError(
      configFile,
      settings.key,
      paths.key,
      `"${paths.key}" is not an unencrypted private key (${(err as Error).message})`,
    );
  }
  const first = new X509Certificate(pemTexts(cert, 'CERTIFICATE')[0]!);
  if (!first.checkPrivateKey(keyObject)) {
    const dot = settings.cert.indexOf('.');
    const certName = `[${settings.cert.slice(0, dot)}] ${settings.cert.slice(dot + 1)}`;
    throw settingFileError(
      configFile,
      settings.key,
      paths.key,
      `"${paths.key}" is not the key of the certificate "${paths.cert}" (${certName})`,
    );
  }
  return { cert, key };
}
