/**
 * keyd's copy of the org CA key ([pki] org_ca_key): a private key at rest, so
 * never stored in the clear. It is an encrypted PKCS#8 PEM file, under
 *  - the passphrase in [pki] org_ca_passphrase_file when that is set, or else
 *  - a passphrase derived from keyd's master key ([keyd] master_key), which is
 *    how `ssmax setup` writes it: the file is useless without the master key,
 *    like every other secret keyd keeps.
 * An unencrypted file (written by earlier versions of `ssmax setup`) is still
 * read, with a warning saying how to wrap it (docs/deploy.md).
 */
import type { KeyObject } from 'node:crypto';
import { readSettingFile } from '../config/ini';
import { privateKeyFromPem, privateKeyToPem } from '../pki/keys';
import type { KeydConfig } from './config';
import { KeydError } from './errors';
import { loadMasterKey, orgCaKeyPassphrase } from './master-key';

/** The org CA key as keyd keeps it: PKCS#8 PEM encrypted under the master key's derived passphrase. */
export function wrapOrgCaKey(key: KeyObject, master: Uint8Array): string {
  return privateKeyToPem(key, orgCaKeyPassphrase(master));
}

/**
 * Reads [pki] org_ca_key of `config` (which must be set). `warn` is told when
 * the file is not encrypted.
 */
export function readOrgCaKey(config: KeydConfig, warn?: (line: string) => void): KeyObject {
  const file = config.pki.orgCaKey;
  if (!file) throw new KeydError('config', '[pki] org_ca_key is not set');
  const pem = readSettingFile(config.file, 'pki.org_ca_key', file);
  const encrypted = pem.includes('ENCRYPTED PRIVATE KEY');
  let passphrase: string | undefined;
  let under: string;
  if (config.pki.orgCaPassphraseFile) {
    passphrase = readSettingFile(config.file, 'pki.org_ca_passphrase_file', config.pki.orgCaPassphraseFile).trim();
    under = `the passphrase in "${config.pki.orgCaPassphraseFile}"`;
  } else if (encrypted) {
    passphrase = orgCaKeyPassphrase(loadMasterKey(config.masterKeyFile));
    under = `the master key "${config.masterKeyFile}"`;
  } else {
    under = 'no passphrase';
  }
  let key: KeyObject;
  try {
    key = privateKeyFromPem(pem, encrypted ? passphrase : undefined);
  } catch (err) {
    throw new KeydError('config', `Cannot read the org CA key "${file}" ([pki] org_ca_key) with ${under}: ${(err as Error).message}`);
  }
  if (!encrypted)
    warn?.(
      `keyd: WARNING the org CA key "${file}" ([pki] org_ca_key) is stored unencrypted; wrap it under the master key with ` +
        '`ssmax keyd wrap-org-ca-key --config FILE` (docs/deploy.md)',
    );
  return key;
}
