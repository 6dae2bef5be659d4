/**
 * Handing a held message back to the gateway from the command line (`ssmax
 * quarantine release`, `ssmax list release`) through the one release of
 * src/mail/release.ts (as the web console): the entry is in a release only
 * while the gateway takes it, and stays held when it does not.
 */
import { HostPortError, parseHostPort } from '../config/host-port';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type QuarantineSummary, type QuarantineStore } from '../inspect/quarantine';
import { ReinjectError, ReleaseStateError, describeRelease, passwordOf, releaseHeld } from '../mail/release';
import { CliError, type CliIo, EXIT, readInputText } from './command';

export interface ReinjectVia {
  readonly host: string;
  readonly port: number;
  readonly user?: string | undefined;
  readonly passwordFile?: string | undefined;
  /** --lease SECONDS: how long the release holds the entry (default: src/mail/release.ts). */
  readonly leaseSeconds?: number | undefined;
  /** --smtp-ca FILE, --smtp-servername NAME: how STARTTLS to a gateway that is not on loopback verifies its certificate. */
  readonly caFile?: string | undefined;
  readonly servername?: string | undefined;
}

/** The release options of `ssmax quarantine release` and `ssmax list release` for STARTTLS (src/mail/release.ts). */
export const RELEASE_TLS_HELP = `--smtp-ca FILE               to a gateway that is not on loopback (127.0.0.0/8, ::1; a name, even
                               localhost, is not) the release requires STARTTLS (the release token and any password never
                               cross the network in plaintext); its certificate is verified against
                               the CA certificates in FILE (PEM; default: the system's roots)
  --smtp-servername NAME       the name the gateway's certificate must carry (default: HOST)
                               No STARTTLS, or a certificate that does not verify: exit 69, nothing
                               sent, the message stays held`;

/** `--lease SECONDS` (a whole number from 1 to 86400), undefined when not given; a usage error otherwise. */
export function leaseOption(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const n = /^\d{1,5}$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(n >= 1 && n <= 86400)) throw new CliError(`--lease must be a whole number of seconds from 1 to 86400, got '${value}'`, EXIT.usage);
  return n;
}

/**
 * One page of a held-message store for a list command (`--limit N`, `--before ID`): each entry as `line` makes it
 * on stdout, newest first, read without the messages; when older entries remain, how to ask for them on stderr.
 */
export function printPage(
  store: QuarantineStore,
  values: Readonly<Record<string, unknown>>,
  io: CliIo,
  line: (e: QuarantineSummary) => string,
): void {
  const raw = values.limit;
  let limit = DEFAULT_PAGE_SIZE;
  if (raw !== undefined) {
    limit = typeof raw === 'string' && /^\d{1,4}$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!(limit >= 1 && limit <= MAX_PAGE_SIZE))
      throw new CliError(`--limit must be a whole number from 1 to ${MAX_PAGE_SIZE}, got '${String(raw)}'`, EXIT.usage);
  }
  const before = textOf(values.before);
  if (before !== undefined && !/^q-[0-9a-z]+-[0-9a-f]{12}$/.test(before))
    throw new CliError(`--before must be an id of this store (q-…), got '${before.slice(0, 80)}'`, EXIT.usage);
  const page = store.page({ limit, ...(before ? { before } : {}) });
  for (const e of page.entries) io.out(line(e));
  if (page.next) io.err(`more held: add --before ${page.next} for the next ${limit}`);
}

/** An option's value when it was given as text, else undefined. */
export function textOf(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** `--smtp HOST:PORT` (src/config/host-port.ts: an IPv6 address in brackets), undefined when missing; a usage error saying why when malformed. */
export function smtpAddress(value: unknown): { host: string; port: number } | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    return parseHostPort(value, 1);
  } catch (err) {
    if (err instanceof HostPortError) throw new CliError(`--smtp ${err.message}`, EXIT.usage);
    throw err;
  }
}

/**
 * Releases `id` of `store` with `releaseHeader: <id>` on top; prints the
 * gateway's answer, or fails: 66 for an unknown id (`unknown` names it), 1
 * when the entry is not held (a release under way or done: nothing sent),
 * 69 when the gateway is not on loopback and did not offer STARTTLS or its
 * certificate did not verify (nothing sent; the entry stays held), 1
 * when the gateway did not take the message (its answer printed; the entry
 * stays held, to be released again), or when it refused some recipients
 * (printed; held again for those).
 */
export async function reinject(
  store: QuarantineStore,
  id: string,
  releaseHeader: string,
  via: ReinjectVia,
  io: CliIo,
  unknown: string,
): Promise<number> {
  const password = via.passwordFile !== undefined ? passwordOf(readInputText(via.passwordFile, 'password file')) : undefined;
  const ca = via.caFile !== undefined ? readInputText(via.caFile, 'SMTP CA file') : undefined;
  if (ca !== undefined && !/-----BEGIN CERTIFICATE-----/.test(ca))
    throw new CliError(`Cannot use --smtp-ca "${via.caFile}": no PEM certificate in it`, EXIT.dataErr);
  let done: Awaited<ReturnType<typeof releaseHeld>>;
  try {
    done = await releaseHeld(store, id, releaseHeader, {
      host: via.host,
      port: via.port,
      user: via.user,
      password,
      ...(via.leaseSeconds !== undefined ? { leaseMs: via.leaseSeconds * 1000 } : {}),
      tls: { ca, servername: via.servername },
    });
  } catch (err) {
    // no STARTTLS (or a certificate that does not verify) from a gateway that is not on loopback: it cannot be used, 69
    if (err instanceof ReinjectError && err.tls) throw new CliError(err.message, EXIT.unavailable);
    if (err instanceof ReinjectError || err instanceof ReleaseStateError) throw new CliError(err.message, EXIT.failure);
    throw err;
  }
  if (!done) throw new CliError(unknown, EXIT.noInput);
  io.out(`released ${id}: ${describeRelease(done)}`);
  return done.refused.length > 0 || done.warning ? EXIT.failure : EXIT.ok;
}
