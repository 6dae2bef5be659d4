/**
 * `ssmax setup`: one command to provision an organisation (src/setup/organisation.ts;
 * docs/deploy.md). This file only parses arguments.
 */
import { parseArgs } from 'node:util';
import { SetupError, setupOrganisation } from '../setup/organisation';
import { type CliIo, type CommandGroup, CliError, EXIT, readPassphrase } from './command';

const HELP = `Usage: ssmax setup --domain DOMAIN --org-ca DIR --root-crl FILE --dir DIR [options]

Provisions an organisation into DIR: certificates from its org CA (made by the
SSMAX root's operator with "ssmax ca init-org"), keyd's master key, every ini
file (the shipped ones, with every setting and its default, set for this
organisation), and the gateway's Haraka folder DIR/gateway, made first with
"haraka -i DIR/gateway" (config/plugins: auth/flat_file, ssmax, and haraka -i's
conflicting defaults off; listen; me; ssmax.ini). Then prints what to do next
(docs/deploy.md), its paths as --dir was given: absolute, or relative to the
folder setup ran in.

  DIR/pki/        root, org CA, CRLs, sealing certificate (every host needs it)
  DIR/keyd/       keyd.ini (+ master key and the org CA key: the keyd host only)
  DIR/publisher/  publisher.ini        DIR/gateway/   the Haraka folder (haraka -c DIR/gateway)
  DIR/inspector/  inspector.ini (--inspection remote)
  DIR/admin/      ssmax-abuse.ini for ssmax registry and ssmax abuse

Required:
  --domain DOMAIN            the organisation's mail domain (the org CA's name constraints must allow it)
  --org-ca DIR               the org CA directory (ca.cert.pem, ca.key.pem, chain.pem, ca.json)
  --root-crl FILE            the SSMAX root's current CRL ("ssmax ca crl --ca ROOT" by its operator)
  --dir DIR                  where to write (created)

Options:
  --keyd-listen HOST:PORT    keyd's address (default 127.0.0.1:7443)
  --keyd-url URL             how the other services reach keyd (default https://<keyd-listen>)
  --publisher-listen H:P     the bundle publisher's address (default 0.0.0.0:443)
  --smtp-listen HOST:PORT    the gateway's SMTP address (default [::0]:25)
  --inspection MODE          inline (in the gateway, default) or remote (a separate inspector process)
  --inspector-listen H:P     the inspector's address, remote (default 127.0.0.1:7543)
  --inspector-url URL        how the gateway reaches it (default https://<inspector-listen>)
  --delivery HOST:PORT       the mailbox store for local recipients (default 127.0.0.1:2525)
  --delivery-protocol P      smtp (default: Postfix, any SMTP server) or lmtp (Dovecot's LMTP)
  --delivery-over-network    accept a --delivery host that is not a loopback address: the decrypted copies
                             for users without an SSMAX client then cross the network in cleartext
                             ([delivery] allow_plaintext_over_network=true; refused without it)
  --peer DOMAIN=URL          a peer's bundle URL without DNS (repeatable; closed networks)
  --host NAME=ADDRESS        a fixed address for a bundle host name (repeatable)
  --route DOMAIN=HOST:PORT   the next hop for a domain instead of its MX (repeatable)
  --ops-port PORT            health and metrics on 127.0.0.1 ([ops] listen): the gateway on PORT, keyd
                             PORT+1, the publisher PORT+2, the inspector PORT+3; docker/org.compose.yaml's
                             healthchecks expect 9520 (default: no such listener)
  --days N                   validity of the certificates issued (default 365, at most the org CA's)
  --org-ca-passphrase-file F the org CA key's passphrase
  --force                    replace existing files (never an existing keyd/master.key); a private key
                             or password file is replaced by a new 0600 file (an existing file or
                             symlink there is never written into), and its folder is set to 0700
  -h, --help                 this text

Exit codes (docs/cli.md): 0 done, 64 usage, 65 refused input, 66 missing file or Haraka folder,
73 a file exists (without --force).`;

function opsPortOf(v: string): number {
  const n = Number(v);
  if (!/^\d{1,5}$/.test(v) || n < 1 || n > 65532)
    throw new CliError(`Cannot use --ops-port "${v}": expected a port from 1 to 65532 (four ports from it are used)`, EXIT.usage);
  return n;
}

function pairs(values: string[] | undefined, what: string, re: RegExp): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const m = re.exec(v);
    if (!m)
      throw new CliError(
        `Cannot use --${what} "${v}": expected ${what === 'peer' ? 'DOMAIN=https://…' : what === 'host' ? 'NAME=ADDRESS' : 'DOMAIN=HOST:PORT'}`,
        EXIT.usage,
      );
    out[m[1]!.toLowerCase()] = m[2]!;
  }
  return out;
}

async function run(argv: string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        force: { type: 'boolean' },
        domain: { type: 'string' },
        'org-ca': { type: 'string' },
        'root-crl': { type: 'string' },
        dir: { type: 'string' },
        'ops-port': { type: 'string' },
        'keyd-listen': { type: 'string' },
        'keyd-url': { type: 'string' },
        'publisher-listen': { type: 'string' },
        'smtp-listen': { type: 'string' },
        inspection: { type: 'string' },
        'inspector-listen': { type: 'string' },
        'inspector-url': { type: 'string' },
        delivery: { type: 'string' },
        'delivery-protocol': { type: 'string' },
        'delivery-over-network': { type: 'boolean' },
        peer: { type: 'string', multiple: true },
        host: { type: 'string', multiple: true },
        route: { type: 'string', multiple: true },
        days: { type: 'string' },
        'org-ca-passphrase-file': { type: 'string' },
      },
    }));
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${HELP}`, EXIT.usage);
  }
  if (values.help) {
    io.out(HELP);
    return EXIT.ok;
  }
  for (const k of ['domain', 'org-ca', 'root-crl', 'dir'] as const)
    if (!values[k]) throw new CliError(`Missing --${k} (see --help)`, EXIT.usage);
  const inspection = values.inspection ?? 'inline';
  if (inspection !== 'inline' && inspection !== 'remote')
    throw new CliError(`Cannot use --inspection "${inspection}": inline or remote`, EXIT.usage);
  const protocol = values['delivery-protocol'];
  if (protocol !== undefined && protocol !== 'smtp' && protocol !== 'lmtp')
    throw new CliError(`Cannot use --delivery-protocol "${protocol}": smtp or lmtp`, EXIT.usage);
  const days = values.days === undefined ? undefined : Number(values.days);
  if (days !== undefined && (!Number.isSafeInteger(days) || days < 1))
    throw new CliError(`Cannot use --days "${values.days}": not a positive integer`, EXIT.usage);
  const passphrase = values['org-ca-passphrase-file'] ? readPassphrase(values['org-ca-passphrase-file']) : undefined;
  try {
    const r = await setupOrganisation({
      dir: values.dir!,
      domain: values.domain!,
      orgCaDir: values['org-ca']!,
      rootCrl: values['root-crl']!,
      inspection,
      ...(passphrase !== undefined ? { orgCaPassphrase: passphrase, orgCaPassphraseFile: values['org-ca-passphrase-file']! } : {}),
      ...(values['keyd-listen'] ? { keydListen: values['keyd-listen'] } : {}),
      ...(values['ops-port'] !== undefined ? { opsPort: opsPortOf(values['ops-port']) } : {}),
      ...(values['keyd-url'] ? { keydUrl: values['keyd-url'] } : {}),
      ...(values['publisher-listen'] ? { publisherListen: values['publisher-listen'] } : {}),
      ...(values['smtp-listen'] ? { smtpListen: values['smtp-listen'] } : {}),
      ...(values['inspector-listen'] ? { inspectorListen: values['inspector-listen'] } : {}),
      ...(values['inspector-url'] ? { inspectorUrl: values['inspector-url'] } : {}),
      ...(values.delivery ? { delivery: values.delivery } : {}),
      ...(protocol ? { deliveryProtocol: protocol } : {}),
      ...(values['delivery-over-network'] === true ? { deliveryOverNetwork: true } : {}),
      peers: pairs(values.peer, 'peer', /^([^=\s]+)=(https:\/\/\S+)$/),
      hosts: pairs(values.host, 'host', /^([^=\s]+)=(\S+)$/),
      routes: pairs(values.route, 'route', /^([^=\s]+)=(\S+:\d{1,5})$/),
      ...(days !== undefined ? { days } : {}),
      force: values.force === true,
    });
    io.out(`Wrote ${r.files.length} files.\n${r.next}`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof SetupError) {
      const code =
        err.kind === 'usage'
          ? EXIT.usage
          : err.kind === 'exists'
            ? EXIT.cantCreate
            : err.kind === 'missing'
              ? EXIT.noInput
              : err.kind === 'busy'
                ? EXIT.tempFail
                : EXIT.dataErr;
      throw new CliError(err.message, code);
    }
    throw err;
  }
}

export const setupCommand: CommandGroup = {
  summary: 'Provision an organisation: certificates, every ini file, the Haraka folder',
  run,
};
