/**
 * `ssmax user …`: the user side (docs/user.md). Creates a user profile with
 * the organisation CA, signs and encrypts a message to the own organisation,
 * submits it over SMTP with AUTH, and opens received mail (newest seal, then
 * decryption). The CLI only parses arguments and calls src/user/.
 *
 * Passwords never come from the command line: a file or an environment
 * variable. Decrypted content goes to stdout or `-o FILE` only after the
 * whole message authenticated.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { writeSecretFile } from '../fs/secret-file';
import { FolderBusyError } from '../fs/folder-lock';
import { join, resolve } from 'node:path';
import type { ParsedCertificate } from '../pki/certificate';
import { type CaState, CaStateError, caStatePath, readCaState, updateCaState } from '../pki/ca-state';
import type { SigningAuthority } from '../pki/issue';
import { UserError, type UserErrorCode } from '../user/errors';
import { OpenError, openMessage } from '../user/open';
import {
  type LoadUserProfileOptions,
  type SmtpSettings,
  createUserProfile,
  loadUserProfile,
  loadUserProfileSettings,
  updateOrgBundle,
} from '../user/profile';
import { signAndEncrypt } from '../user/sign-encrypt';
import { forwardMessage } from '../user/forward';
import { submitMessage } from '../user/submit';
import {
  CliError,
  type CliIo,
  EXIT,
  newKeyPassphrase,
  readPassphrase,
  type OptionValues,
  parseOptions,
  processIo,
  readInput as readInputFile,
  readInputText,
  requiredOption,
  requireFolder,
  subcommands,
} from './command';
import { loadSigningAuthority } from './ca-files';

/** The environment variable naming the file of the profile keys' passphrase (--key-passphrase-file wins). */
const KEY_PASSPHRASE_ENV = 'SSMAX_USER_KEY_PASSPHRASE_FILE';

const KEY_TEXT = `Keys encrypted by \`ssmax user init --key-passphrase-file\` are opened with the passphrase in
--key-passphrase-file FILE, or in the file ${KEY_PASSPHRASE_ENV} names.`;

const HELP = `Usage: ssmax user <subcommand> [options]

Subcommands:
  init           create a user profile: keys, certificates from the org CA, bundle, root, SMTP settings
  sign-encrypt   encrypt a message to the own organisation's key, then sign it as the user
  send           submit a message over SMTP with AUTH (envelope from the profile, --to recipients)
  open           verify the newest seal, decrypt with the user's key, print the verdicts of every hop
  forward        pass a received encrypted message on without decrypting its content (SSMAX §3.4)
  update-bundle  replace the profile's organisation bundle with a newer, verified one

Run \`ssmax user <subcommand> --help\` for details. Profile folder: docs/user.md.`;

const SUB_HELP: Record<string, string> = {
  init: `Usage: ssmax user init --ca DIR --root FILE --bundle FILE --email ADDR --pseudonym NAME --code CODE --out DIR
         (--key-passphrase-file FILE | --unencrypted-key) [--passphrase-file FILE] [--days N] [--at TIME]
         [--smtp-host HOST [--smtp-port 587] --smtp-user USER [--smtp-security starttls|tls|none]
          [--smtp-password-file FILE | --smtp-password-env VAR]]

Generates the user's signing key (P-256) and encryption key (secp256k1), has the organisation CA
in DIR (\`ssmax ca init-org\`) certify both, and writes the profile folder --out (mode 0700, keys 0600)
with the organisation bundle and the SSMAX root. The bundle must verify up to the root and name the CA.
Prints, as JSON, what the administrator registers at keyd (POST /v1/registry/users).
--pseudonym is never a real name; --code is an org-assigned code with a letter (docs/pki.md).
--smtp-user is the user's address: the gateway lets a login send only as that address.
--key-passphrase-file FILE encrypts the two private keys (PKCS#8, AES-256) with the passphrase in FILE
(0600; the commands that use the keys then need it: ${KEY_PASSPHRASE_ENV} or their
--key-passphrase-file); --unencrypted-key writes them plain on purpose; one of the two is required.
--passphrase-file is the organisation CA's key passphrase.`,
  'sign-encrypt': `Usage: ssmax user sign-encrypt --profile DIR [--in FILE] [-o FILE] [--attachments-only] [--at TIME]
         [--key-passphrase-file FILE]

Encrypts the message (FILE, or stdin) to the own organisation's current key <domain>:v<N> from the
profile's bundle — the whole message (profile "message"), or with --attachments-only each attachment
(profile "part") — then signs it (SSMAX-User-Signature). The From must be the profile's address.
Writes the result to -o FILE or stdout.
${KEY_TEXT}`,
  send: `Usage: ssmax user send --profile DIR --to ADDR [--to ADDR ...] [--in FILE]
         [--host HOST] [--port N] [--smtp-user USER] [--security starttls|tls|none]
         [--password-file FILE | --password-env VAR] [--auth-method PLAIN|LOGIN]

Submits the message (FILE, or stdin) as it is, with MAIL FROM = the profile's address and RCPT TO =
each --to, after AUTH (the login is the profile's address: the gateway lets a login send only as
that address). The SMTP settings come from the profile ("smtp" in profile.json; a profile made by
ssmax registry add has none); the options give or override them. The
password comes from a file or an environment variable, never from the command line.
--security none (no TLS) is for loopback tests only.`,
  open: `Usage: ssmax user open --profile DIR [--in FILE] [-o FILE] [--peer-bundle FILE ...] [--crl FILE ...]
         [--key-passphrase-file FILE]
         [--keep-seals] [--at TIME]

Verifies the newest SSMAX-Seal against the own organisation's sealing certificates (from the
profile's bundle, validated up to the SSMAX root with the bundle's CRLs and any --crl), then decrypts
with the user's key. Prints one line per hop (instance, domain, result, verdicts, how it was checked),
one line about decryption, then the message (or writes it to -o FILE: a new file, mode 0600, that
replaces FILE, so an existing file or symlink there is never written into). Earlier seals are vouched for
by the newest sealer; with --peer-bundle they are verified too. Nothing is printed of the content when
a seal or decryption fails (exit 1).
${KEY_TEXT}`,
  forward: `Usage: ssmax user forward --profile DIR --to ADDR [--to ADDR ...] [--in FILE] [-o FILE] [--at TIME]
         [--key-passphrase-file FILE]

Re-targets the capsule for your key in a received message (FILE, or stdin) to your organisation's
current key, without decrypting the content, gives it a new header (From: you, To: each --to,
Subject: "Fwd: ..."), and signs it. The content ciphertext is copied unchanged. Submit the result
with \`ssmax user send --to ADDR\`: your gateway re-encrypts it for the new recipients, inside the
organisation or in another one. Writes the message to -o FILE or stdout.
${KEY_TEXT}`,
  'update-bundle': `Usage: ssmax user update-bundle --profile DIR --bundle FILE [--at TIME]

Verifies the new organisation bundle (root, domain, not older than the current one) and stores it.
The publisher's bundles expire (one day by default), so fetch a fresh one regularly, e.g.
  curl --fail --cacert DIR/root.cert.pem https://ssmax.DOMAIN/.well-known/ssmax/bundle -o FILE
(the URL of the domain's _ssmax TXT record; docs/deploy.md, "Users").`,
};

type Values = OptionValues;

/** The subcommand's options (no positionals). */
function parse(args: string[], options: Parameters<typeof parseOptions>[1], usage: string): Values {
  return parseOptions(args, options, usage, false).values;
}

function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

function required(values: Values, name: string, usage: string): string {
  return requiredOption(values[name], name, usage);
}

// Arrays from parseArgs belong to Node's own realm: copy them.
function list(values: Values, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? Array.from(v, String) : [];
}

/** --profile, which must name an existing folder (66 otherwise, as every missing input). */
function profileFolder(v: Values, usage: string): string {
  const dir = required(v, 'profile', usage);
  requireFolder(dir, 'profile folder');
  return dir;
}

/** How to open the profile's private keys: the passphrase of --key-passphrase-file, or of the file $SSMAX_USER_KEY_PASSPHRASE_FILE names. */
function keyOptions(v: Values): LoadUserProfileOptions {
  const env = process.env[KEY_PASSPHRASE_ENV];
  const keyPassphrase = readPassphrase(str(v, 'key-passphrase-file') ?? (env === '' ? undefined : env));
  return keyPassphrase === undefined ? {} : { keyPassphrase };
}

async function readInput(path: string | undefined): Promise<Buffer> {
  if (path !== undefined && path !== '-') return readInputFile(path, 'message');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

function writeOutput(io: CliIo, path: string | undefined, data: Buffer, secret = false): void {
  if (path !== undefined && path !== '-') {
    try {
      // a decrypted message: a new 0600 file renamed over the path (an existing file or symlink there is replaced, never written into)
      if (secret) writeSecretFile(path, data);
      else writeFileSync(path, data, { mode: 0o644 });
    } catch {
      throw new CliError(`Cannot write "${path}"`, EXIT.cantCreate);
    }
    return;
  }
  // Bytes as they are on a real stdout; captured output (tests) gets text.
  if (io === processIo) process.stdout.write(data);
  else io.out(data.toString('utf8'));
}

function timeOption(values: Values): Date {
  const v = str(values, 'at');
  if (v === undefined) return new Date();
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new CliError(`Cannot use --at "${v}": not an ISO 8601 time`, EXIT.usage);
  return d;
}

function portOption(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535)
    throw new CliError(`Cannot use --${name} "${v}": not a port number`, EXIT.usage);
  return Number(v);
}

function securityOption(v: string | undefined, name: string): SmtpSettings['security'] | undefined {
  if (v === undefined) return undefined;
  if (v !== 'starttls' && v !== 'tls' && v !== 'none')
    throw new CliError(`Cannot use --${name} "${v}": expected starttls, tls or none`, EXIT.usage);
  return v;
}

const EXIT_FOR: Record<UserErrorCode, number> = {
  profile: EXIT.dataErr,
  bundle: EXIT.dataErr,
  message: EXIT.dataErr,
  seal: EXIT.failure,
  decrypt: EXIT.failure,
  smtp: EXIT.failure,
};

/** The org CA of an `ssmax ca` directory (docs/pki.md "CLI"). */
function loadOrgCa(
  dir: string,
  passphraseFile: string | undefined,
): { authority: SigningAuthority; record: (certs: ParsedCertificate[]) => Promise<void> } {
  const authority = loadSigningAuthority(join(dir, 'ca.cert.pem'), join(dir, 'ca.key.pem'), passphraseFile);
  let state: CaState | undefined;
  if (existsSync(caStatePath(dir))) {
    try {
      state = readCaState(dir);
    } catch (err) {
      if (err instanceof CaStateError) throw new CliError(err.message, EXIT.dataErr);
      throw err;
    }
    if (state.kind !== 'org') throw new CliError(`Cannot use CA "${dir}": it is a ${state.kind} CA, not an organisation CA`, EXIT.dataErr);
  }
  return {
    authority,
    // Keep the CA's record of issued serials (ssmax ca revoke and audits use it): read again and changed under the
    // CA folder's lock, so what another command recorded since the check above is kept (src/pki/ca-state.ts)
    record: async (certs) => {
      if (!state) return;
      try {
        await updateCaState(dir, (now) => {
          for (const c of certs) now.issued.push({ serial: c.serial, subject: c.subject, notAfter: c.notAfter.toISOString() });
        });
      } catch (err) {
        if (err instanceof CaStateError) throw new CliError(err.message, err.reason === 'busy' ? EXIT.tempFail : EXIT.dataErr);
        throw err;
      }
    },
  };
}

async function runSub(sub: string, args: string[], io: CliIo): Promise<number> {
  const usage = SUB_HELP[sub] ?? HELP;
  switch (sub) {
    case 'init': {
      const v = parse(
        args,
        {
          ca: { type: 'string' },
          root: { type: 'string' },
          bundle: { type: 'string' },
          email: { type: 'string' },
          pseudonym: { type: 'string' },
          code: { type: 'string' },
          out: { type: 'string' },
          'passphrase-file': { type: 'string' },
          'key-passphrase-file': { type: 'string' },
          'unencrypted-key': { type: 'boolean' },
          days: { type: 'string' },
          at: { type: 'string' },
          'smtp-host': { type: 'string' },
          'smtp-port': { type: 'string' },
          'smtp-user': { type: 'string' },
          'smtp-security': { type: 'string' },
          'smtp-password-file': { type: 'string' },
          'smtp-password-env': { type: 'string' },
        },
        usage,
      );
      if (v.help) return (io.out(usage), EXIT.ok);
      const caDir = required(v, 'ca', usage);
      const rootPath = required(v, 'root', usage);
      const bundlePath = required(v, 'bundle', usage);
      const email = required(v, 'email', usage);
      const pseudonym = required(v, 'pseudonym', usage);
      const code = required(v, 'code', usage);
      const out = required(v, 'out', usage);
      const keyPassphrase = newKeyPassphrase(v, 'key-passphrase-file', "user's");
      const days = str(v, 'days');
      if (days !== undefined && (!/^\d+$/.test(days) || Number(days) < 1))
        throw new CliError(`Cannot use --days "${days}": not a positive integer`, EXIT.usage);
      let smtp: SmtpSettings | undefined;
      const host = str(v, 'smtp-host');
      if (host !== undefined) {
        const passwordFile = str(v, 'smtp-password-file');
        const passwordEnv = str(v, 'smtp-password-env');
        smtp = {
          host,
          port: portOption(str(v, 'smtp-port'), 'smtp-port') ?? 587,
          user: required(v, 'smtp-user', usage),
          security: securityOption(str(v, 'smtp-security'), 'smtp-security') ?? 'starttls',
          ...(passwordFile ? { passwordFile } : {}),
          ...(passwordEnv ? { passwordEnv } : {}),
        };
      }
      const ca = loadOrgCa(caDir, str(v, 'passphrase-file'));
      const registration = createUserProfile(out, {
        address: email,
        pseudonym,
        code,
        orgCa: ca.authority,
        rootPem: readInputText(rootPath, 'root certificate'),
        orgBundle: readInputText(bundlePath, 'organisation bundle'),
        now: timeOption(v),
        ...(smtp ? { smtp } : {}),
        ...(days ? { validDays: Number(days) } : {}),
        ...(keyPassphrase !== undefined ? { keyPassphrase } : {}),
      });
      const profile = loadUserProfile(out, keyPassphrase !== undefined ? { keyPassphrase } : {});
      await ca.record([profile.signingCertificate, profile.encryptionCertificate]);
      io.err(`Created user profile for ${email} in ${out}; register it at keyd with the JSON below`);
      io.out(JSON.stringify(registration, null, 2));
      return EXIT.ok;
    }
    case 'sign-encrypt': {
      const v = parse(
        args,
        {
          profile: { type: 'string' },
          in: { type: 'string' },
          out: { type: 'string', short: 'o' },
          'attachments-only': { type: 'boolean' },
          at: { type: 'string' },
          'key-passphrase-file': { type: 'string' },
        },
        usage,
      );
      if (v.help) return (io.out(usage), EXIT.ok);
      const profile = loadUserProfile(profileFolder(v, usage), keyOptions(v));
      const now = timeOption(v);
      const message = await readInput(str(v, 'in'));
      const result = await signAndEncrypt(profile, message, { now, attachmentsOnly: v['attachments-only'] === true });
      writeOutput(io, str(v, 'out'), result);
      return EXIT.ok;
    }
    case 'send': {
      const v = parse(
        args,
        {
          profile: { type: 'string' },
          to: { type: 'string', multiple: true },
          in: { type: 'string' },
          host: { type: 'string' },
          port: { type: 'string' },
          'smtp-user': { type: 'string' },
          security: { type: 'string' },
          'password-file': { type: 'string' },
          'password-env': { type: 'string' },
          'auth-method': { type: 'string' },
        },
        usage,
      );
      if (v.help) return (io.out(usage), EXIT.ok);
      const profileDir = profileFolder(v, usage);
      const to = list(v, 'to');
      if (to.length === 0) throw new CliError(`--to is required\n\n${usage}`, EXIT.usage);
      const authMethod = str(v, 'auth-method')?.toUpperCase();
      if (authMethod !== undefined && authMethod !== 'PLAIN' && authMethod !== 'LOGIN')
        throw new CliError(`Cannot use --auth-method "${authMethod}": expected PLAIN or LOGIN`, EXIT.usage);
      const passwordFile = str(v, 'password-file');
      const passwordEnv = str(v, 'password-env');
      if (passwordFile && passwordEnv) throw new CliError('Cannot use both --password-file and --password-env', EXIT.usage);
      const host = str(v, 'host');
      const port = portOption(str(v, 'port'), 'port');
      const user = str(v, 'smtp-user');
      const security = securityOption(str(v, 'security'), 'security');
      const smtp: Partial<SmtpSettings> = {
        ...(host ? { host } : {}),
        ...(port ? { port } : {}),
        ...(user ? { user } : {}),
        ...(security ? { security } : {}),
        // A password source given here replaces the profile's; a relative file is relative to the working directory.
        ...(passwordFile ? { passwordFile: resolve(passwordFile), passwordEnv: undefined } : {}),
        ...(passwordEnv ? { passwordEnv, passwordFile: undefined } : {}),
      };
      const profile = loadUserProfileSettings(profileDir);
      const message = await readInput(str(v, 'in'));
      const result = await submitMessage(profile, message, { to, smtp, ...(authMethod ? { authMethod } : {}) });
      io.out(
        `Submitted to ${result.accepted.join(', ')}${result.rejected.length ? `; rejected: ${result.rejected.join(', ')}` : ''}: ${result.response}`,
      );
      return result.rejected.length ? EXIT.failure : EXIT.ok;
    }
    case 'forward': {
      const v = parse(
        args,
        {
          profile: { type: 'string' },
          to: { type: 'string', multiple: true },
          in: { type: 'string' },
          out: { type: 'string', short: 'o' },
          at: { type: 'string' },
          'key-passphrase-file': { type: 'string' },
        },
        usage,
      );
      if (v.help) return (io.out(usage), EXIT.ok);
      const profile = loadUserProfile(profileFolder(v, usage), keyOptions(v));
      const to = list(v, 'to');
      if (to.length === 0) throw new CliError(`--to is required\n\n${usage}`, EXIT.usage);
      const result = await forwardMessage(profile, await readInput(str(v, 'in')), { to, now: timeOption(v) });
      writeOutput(io, str(v, 'out'), result);
      return EXIT.ok;
    }
    case 'open': {
      const v = parse(
        args,
        {
          profile: { type: 'string' },
          in: { type: 'string' },
          out: { type: 'string', short: 'o' },
          'peer-bundle': { type: 'string', multiple: true },
          crl: { type: 'string', multiple: true },
          'keep-seals': { type: 'boolean' },
          at: { type: 'string' },
          'key-passphrase-file': { type: 'string' },
        },
        usage,
      );
      if (v.help) return (io.out(usage), EXIT.ok);
      const profile = loadUserProfile(profileFolder(v, usage), keyOptions(v));
      const now = timeOption(v);
      const peerBundles = list(v, 'peer-bundle').map((p) => readInputText(p, 'peer bundle'));
      const crls = list(v, 'crl').map((p) => readInputText(p, 'CRL'));
      const message = await readInput(str(v, 'in'));
      let opened;
      try {
        opened = await openMessage(profile, message, { now, peerBundles, crls, keepSeals: v['keep-seals'] === true });
      } catch (err) {
        if (err instanceof OpenError) for (const line of err.trace) io.err(line);
        throw err;
      } finally {
        profile.encryption.privateKey.fill(0); // the user's private scalar is not kept once the message is open
      }
      for (const line of opened.trace) io.out(line);
      const out = str(v, 'out');
      if (out !== undefined && out !== '-') {
        writeOutput(io, out, opened.plaintext, true);
        io.out(`message written to ${out}`);
      } else {
        io.out('');
        writeOutput(io, undefined, opened.plaintext);
      }
      return EXIT.ok;
    }
    case 'update-bundle': {
      const v = parse(args, { profile: { type: 'string' }, bundle: { type: 'string' }, at: { type: 'string' } }, usage);
      if (v.help) return (io.out(usage), EXIT.ok);
      const profile = loadUserProfileSettings(profileFolder(v, usage));
      const bundle = await updateOrgBundle(profile, readInputText(required(v, 'bundle', usage), 'organisation bundle'), timeOption(v));
      io.out(
        `Organisation bundle of ${bundle.domain} updated to serial ${bundle.serial} (current key v${bundle.currentKey.version}, expires ${bundle.expires.toISOString()})`,
      );
      return EXIT.ok;
    }
    default:
      throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
  }
}

export const userCommand = subcommands(
  'User side: create a profile, sign and encrypt, send (SMTP AUTH), open (verify and decrypt)',
  HELP,
  runSub,
  (err) =>
    err instanceof UserError
      ? new CliError(err.message, EXIT_FOR[err.code])
      : // another update-bundle holds the profile's lock for longer than we wait: try again (75, as ssmax ca)
        err instanceof FolderBusyError
        ? new CliError(`Cannot update the profile: ${err.message}`, EXIT.tempFail)
        : undefined,
);
