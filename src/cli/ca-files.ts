/**
 * A signing CA from its files, for the commands that issue or revoke with
 * it (`ssmax ca`, `ssmax user create` with an org CA, `ssmax registry`): the
 * certificate (PEM), the private key (PKCS#8 PEM, optionally encrypted with
 * the passphrase of a file). Missing files are 66; a file that is there but
 * cannot be used (not a certificate, wrong passphrase) is 65, naming it.
 */
import { parseCertificate } from '../pki/certificate';
import type { SigningAuthority } from '../pki/issue';
import { privateKeyFromPem } from '../pki/keys';
import { CliError, EXIT, readInputText, readPassphrase } from './command';

export function loadSigningAuthority(certFile: string, keyFile: string, passphraseFile: string | undefined): SigningAuthority {
  const certText = readInputText(certFile, 'CA certificate');
  let certificate;
  try {
    certificate = parseCertificate(certText);
  } catch (err) {
    throw new CliError(`Cannot read CA certificate "${certFile}": ${(err as Error).message}`, EXIT.dataErr);
  }
  const keyText = readInputText(keyFile, 'CA key');
  const passphrase = readPassphrase(passphraseFile);
  try {
    return { certificate, privateKey: privateKeyFromPem(keyText, passphrase) };
  } catch (err) {
    throw new CliError(`${(err as Error).message} ("${keyFile}")`, EXIT.dataErr);
  }
}
