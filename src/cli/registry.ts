/**
 * `ssmax registry …`: registration of users for sender tracking (SSMAX §2.2;
 * docs/abuse.md "Registration"): add (certificates from the org CA for an
 * SSMAX client user, then keyd), show, suspend, reinstate, revoke (suspend,
 * and revoke the certificates in a new CRL that the bundle publisher
 * re-publishes). This file only parses arguments and calls src/registry.
 */
import { join } from 'node:path';
import { AbuseConfigError, type AbuseConfig, keydClientFor, loadAbuseConfig } from '../abuse/config';
import { DirectoryConfigError, loadDirectoryConfig } from '../directory/config';
import { FetchError, fetchBundleText } from '../directory/fetch';
import { REVOCATION_REASONS, isRevocationReason } from '../pki/crl';
import type { SigningAuthority } from '../pki/issue';
import {
  type RegisteredUser,
  RegistryError,
  addUser,
  certificateSerials,
  getUser,
  revokeUser,
  setUserStatus,
} from '../registry/registration';
import { CliError, type CliIo, EXIT, newKeyPassphrase, parseOptions, readInputText, requiredOption, subcommands } from './command';
import { loadSigningAuthority } from './ca-files';

const HELP = `Usage: ssmax registry <subcommand> --config FILE [options] ADDRESS

Subcommands:
  add ADDRESS --code CODE --identity-ref REF (--profile DIR | --plain)
                     register a user at keyd; an SSMAX client user (--profile) first gets
                     signing and encryption certificates from the org CA and a profile folder
  show ADDRESS       the registration as keyd holds it (never the identity reference)
  suspend ADDRESS    status suspended: keyd refuses the user as sender and recipient
  reinstate ADDRESS  status active again
  revoke ADDRESS [--reason REASON]
                     suspend, and revoke the user's certificates in a new CRL of the org CA:
                     signed by keyd when it holds the CA, else with [registry]'s CA here
                     (the bundle publisher re-publishes when the CRL file changes)

Run \`ssmax registry <subcommand> --help\` for details. Configuration: config/ssmax-abuse.ini
([keyd] with the admin client certificate; [registry] the CA, CRL, root and bundle).`;

const SUB_HELP: Record<string, string> = {
  add: `Usage: ssmax registry add --config FILE ADDRESS --code CODE (--identity-ref REF | --identity-ref-file FILE)
                          (--profile DIR (--key-passphrase-file FILE | --unencrypted-key) | --plain)
                          [--pseudonym NAME] [--kind individual|organisation] [--inspection-consent]

  --code CODE            the pseudonymous code (1-64 of A-Z a-z 0-9 . _ -); what tracking tokens resolve to
  --identity-ref REF     employee or contract number; keyd stores it encrypted and discloses it only
                         to the disclosure role, audited
  --identity-ref-file F  the same, read from a file (first line): keeps it out of the process list
  --profile DIR          SSMAX client user: issue the certificates with [registry] ca_dir (or ca_cert,
                         ca_key) and write the profile folder DIR (needs [registry] root and bundle)
  --key-passphrase-file F  with --profile: encrypt the profile's private keys (PKCS#8, AES-256) with
                         the passphrase in F (0600), which the user then gives to ssmax user
  --unencrypted-key      with --profile: write the profile's private keys unencrypted, on purpose
  --plain                a plain mail client user (transparent mode): no certificates
  --pseudonym NAME       pseudonym in the certificates (default the code)
  --kind KIND            who the user is for inspection, whatever the client (--profile or --plain):
                         organisation (default): a member of the organisation (staff), always inspected;
                         individual: a private person served by the organisation (ISP mode), inspected
                         only with --inspection-consent (docs/inspection.md, "Individuals")
  --inspection-consent   an individual's consent to inspection (default: none)`,
  show: 'Usage: ssmax registry show --config FILE [--json] ADDRESS\n\nPrints the registration (address, code, status, certificate serials); never the identity reference.',
  suspend:
    'Usage: ssmax registry suspend --config FILE ADDRESS\n\nSets the status to suspended at keyd (audited). Tokens of the user still resolve, showing the status.',
  reinstate: 'Usage: ssmax registry reinstate --config FILE ADDRESS\n\nSets the status back to active at keyd (audited).',
  revoke: `Usage: ssmax registry revoke --config FILE [--reason REASON] ADDRESS

Suspends the user at keyd and adds the serials of its certificates to the org CA's CRL,
with the next CRL number, keeping its earlier entries.

When keyd holds the org CA ([pki] org_ca_cert, org_ca_key of ssmax-keyd.ini), keyd does it
all in one audited call (POST /v1/registry/users/ADDRESS/revoke) and re-issues its own CRL
file; [registry] needs no CA then. Otherwise the CRL is signed here with [registry] ca_dir
(or ca_cert, ca_key) and written to [registry] crl (default <ca_dir>/crl.pem). Either way,
with ca_dir, ca.json records the revocations as well. Revocation is final: the user cannot
be reinstated.
Reasons: ${Object.keys(REVOCATION_REASONS).join(', ')} (default unspecified)`,
};

/**
 * The organisation's own signed bundle for a new profile: the file [registry] bundle, or else fetched
 * from the organisation's publisher as this file's directory sections name it ([peers] entry for the
 * [abuse] domain, [hosts], [tls] ca or the roots). The profile verifies it against the root either way.
 */
async function ownBundleText(config: AbuseConfig): Promise<string> {
  const r = config.registry;
  if (r.bundle) return readInputText(r.bundle, 'bundle');
  const missing = `Config "${config.file}": --profile needs the organisation's signed bundle: [registry] bundle (a file), or [abuse] domain with its URL under [peers] and a [directory] section`;
  if (!config.domain || !config.hasDirectory) throw new CliError(missing, EXIT.config);
  let dc;
  try {
    dc = loadDirectoryConfig(config.file, { otherSections: ['abuse', 'keyd', 'submit', 'server', 'registry'] });
  } catch (err) {
    if (err instanceof DirectoryConfigError) throw new CliError(err.message, EXIT.config);
    throw err;
  }
  const url = dc.peers[config.domain];
  if (!url) throw new CliError(missing, EXIT.config);
  const ca = (dc.tlsCa ?? dc.roots).map((f) => readInputText(f, 'TLS CA'));
  try {
    return await fetchBundleText(url, {
      timeoutMs: dc.fetchTimeoutMs,
      ca,
      hosts: new Map(Object.entries(dc.hosts).map(([h, a]) => [h.toLowerCase(), a])),
      allowPrivate: true, // the operator's own [peers] URL, not one a DNS record named
    });
  } catch (err) {
    if (err instanceof FetchError)
      throw new CliError(`Cannot fetch the organisation's bundle from ${url}: ${err.message}`, EXIT.unavailable);
    throw err;
  }
}

/** The org CA from [registry]: an `ssmax ca` directory, or certificate and key files. */
function loadAuthority(config: AbuseConfig): { ca: SigningAuthority; caDir?: string; crlFile: string } {
  const r = config.registry;
  const certFile = r.caDir ? join(r.caDir, 'ca.cert.pem') : r.caCert;
  const keyFile = r.caDir ? join(r.caDir, 'ca.key.pem') : r.caKey;
  if (!certFile || !keyFile)
    throw new CliError(`Config "${config.file}": [registry] ca_dir, or ca_cert and ca_key, is required`, EXIT.config);
  const ca = loadSigningAuthority(certFile, keyFile, r.caPassphraseFile);
  const crlFile = r.crl ?? (r.caDir ? join(r.caDir, 'crl.pem') : undefined);
  if (!crlFile)
    throw new CliError(`Config "${config.file}": [registry] crl is required (the CRL file the bundle publisher reads)`, EXIT.config);
  return { ca, crlFile, ...(r.caDir ? { caDir: r.caDir } : {}) };
}

/** What a registration's kind means (it says who the user is, not which mail client: --plain and --profile are both either). */
const KIND_MEANS: Record<string, string> = {
  organisation: 'a member of the organisation: inspected',
  individual: 'a private person, ISP mode: inspected only with consent',
};

function describe(u: RegisteredUser): string[] {
  let serials: string[];
  try {
    serials = certificateSerials(u);
  } catch {
    serials = u.certificateSerial ? [u.certificateSerial] : [];
  }
  return [
    `address: ${u.address}`,
    `code: ${u.code}`,
    `status: ${u.status}`,
    ...(u.kind ? [`kind: ${u.kind} (${KIND_MEANS[u.kind] ?? 'unknown kind'})`] : []),
    `certificate serial: ${u.certificateSerial ?? '(none)'}`,
    ...(serials.length > 1 ? [`certificates: ${serials.join(', ')}`] : []),
    ...(u.encryptionKeyId ? [`encryption key: ${u.encryptionKeyId}`] : []),
  ];
}

function oneAddress(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new CliError(`Give exactly one address\n\n${usage}`, EXIT.usage);
  return positionals[0] as string;
}

async function runSub(sub: string, args: string[], io: CliIo): Promise<number> {
  const usage = SUB_HELP[sub];
  if (!usage) throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
  const options: Record<string, { type: 'string' | 'boolean' }> =
    sub === 'add'
      ? {
          code: { type: 'string' },
          'identity-ref': { type: 'string' },
          'identity-ref-file': { type: 'string' },
          profile: { type: 'string' },
          'key-passphrase-file': { type: 'string' },
          'unencrypted-key': { type: 'boolean' },
          plain: { type: 'boolean' },
          pseudonym: { type: 'string' },
          kind: { type: 'string' },
          'inspection-consent': { type: 'boolean' },
        }
      : sub === 'revoke'
        ? { reason: { type: 'string' } }
        : sub === 'show'
          ? { json: { type: 'boolean' } }
          : {};
  const { values, positionals } = parseOptions(args, { ...options, config: { type: 'string' } }, usage);
  if (values.help) return (io.out(usage), EXIT.ok);
  const config = loadAbuseConfig(requiredOption(values.config, 'config', usage));
  const address = oneAddress(positionals, usage);
  // Check everything local before talking to keyd.
  let authority: ReturnType<typeof loadAuthority> | undefined;
  let reason: string | undefined;
  let keyPassphrase: string | undefined;
  if (sub === 'revoke') {
    reason = typeof values.reason === 'string' ? values.reason : 'unspecified';
    if (!isRevocationReason(reason))
      throw new CliError(`Cannot use reason "${reason}": one of ${Object.keys(REVOCATION_REASONS).join(', ')}`, EXIT.usage);
  }
  if (sub === 'add') {
    requiredOption(values.code, 'code', usage);
    if (typeof values['identity-ref-file'] === 'string') {
      if (values['identity-ref'] !== undefined)
        throw new CliError(`Give --identity-ref or --identity-ref-file, not both\n\n${usage}`, EXIT.usage);
      values['identity-ref'] = readInputText(values['identity-ref-file'], 'identity reference file').split(/\r?\n/)[0]?.trim() ?? '';
      if (values['identity-ref'] === '')
        throw new CliError(`Cannot use identity reference file "${values['identity-ref-file']}": it is empty`, EXIT.dataErr);
    }
    requiredOption(values['identity-ref'], 'identity-ref', usage);
    if ((values.plain === true) === (typeof values.profile === 'string'))
      throw new CliError(`Give --profile DIR or --plain\n\n${usage}`, EXIT.usage);
    if (values.kind !== undefined && values.kind !== 'individual' && values.kind !== 'organisation')
      throw new CliError(`Cannot use --kind "${String(values.kind)}": individual or organisation`, EXIT.usage);
    if (values.profile) {
      keyPassphrase = newKeyPassphrase(values, 'key-passphrase-file', "profile's");
      authority = loadAuthority(config);
    } else if (values['key-passphrase-file'] !== undefined || values['unencrypted-key'] === true)
      throw new CliError(
        `--key-passphrase-file and --unencrypted-key are for --profile (a plain user has no keys)\n\n${usage}`,
        EXIT.usage,
      );
  }
  const keyd = keydClientFor(config, 'operator');
  try {
    const now = new Date();
    switch (sub) {
      case 'add': {
        let profile;
        if (typeof values.profile === 'string') {
          const r = config.registry;
          if (!r.root) throw new CliError(`Config "${config.file}": [registry] root is required for --profile`, EXIT.config);
          profile = {
            dir: values.profile,
            orgCa: (authority as { ca: SigningAuthority }).ca,
            rootPem: readInputText(r.root, 'root certificate'),
            orgBundle: await ownBundleText(config),
            validDays: r.certificateDays,
            ...(keyPassphrase !== undefined ? { keyPassphrase } : {}),
            ...(typeof values.pseudonym === 'string' ? { pseudonym: values.pseudonym } : {}),
          };
        }
        const u = await addUser({
          keyd,
          address,
          code: values.code as string,
          identityRef: values['identity-ref'] as string,
          now,
          ...(values.kind ? { kind: values.kind as 'individual' | 'organisation' } : {}),
          ...(values['inspection-consent'] ? { inspectionConsent: true } : {}),
          ...(profile ? { profile } : {}),
        });
        io.out(
          `Registered ${u.address} as ${u.code}${profile ? ` with certificates (profile ${profile.dir})` : ' (plain client: no certificates, the gateway encrypts and decrypts for it)'}`,
        );
        for (const l of describe(u)) io.out(`  ${l}`);
        return EXIT.ok;
      }
      case 'show': {
        const u = await getUser(keyd, address);
        if (values.json) io.out(JSON.stringify(u, null, 2));
        else for (const l of describe(u)) io.out(l);
        return EXIT.ok;
      }
      case 'suspend':
      case 'reinstate': {
        const u = await setUserStatus(keyd, address, sub === 'suspend' ? 'suspended' : 'active');
        io.out(`${u.address} is ${u.status}`);
        return EXIT.ok;
      }
      case 'revoke': {
        const local = () => {
          const a = loadAuthority(config); // only for a keyd that holds no CA
          return { ca: a.ca, crlFile: a.crlFile, days: config.registry.crlDays, now, ...(a.caDir ? { caDir: a.caDir } : {}) };
        };
        const r = await revokeUser({
          keyd,
          address,
          reason: reason as 'unspecified',
          local,
          now,
          ...(config.registry.caDir ? { caDir: config.registry.caDir } : {}),
        });
        io.out(
          `${r.user.address} is ${r.user.status}; ${r.revoked.length > 0 ? `revoked certificate serial(s) ${r.revoked.join(', ')}` : 'no certificate to revoke'}; CRL number ${r.crlNumber} written to ${r.crlFile}${r.signer === 'keyd' ? ' by keyd' : ''}`,
        );
        return EXIT.ok;
      }
      default:
        throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
    }
  } finally {
    keyd.close();
  }
}

export const registryCommand = subcommands(
  'Sender tracking registry: add users (certificates + keyd), show, suspend, reinstate, revoke',
  HELP,
  runSub,
  (err) => {
    if (err instanceof RegistryError)
      return new CliError(
        err.message,
        err.code === 'unavailable'
          ? EXIT.unavailable
          : err.code === 'refused'
            ? EXIT.failure
            : err.code === 'busy'
              ? EXIT.tempFail
              : EXIT.dataErr,
      );
    if (err instanceof AbuseConfigError) return new CliError(err.message, EXIT.config);
    return undefined;
  },
);
