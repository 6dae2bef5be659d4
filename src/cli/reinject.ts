/**
 * Handing a held message back to the gateway from the command line (`ssmax
 * quarantine release`, `ssmax list release`) through the one release of
 * src/mail/release.ts (as the web console): the entry is in a release only
 * while the gateway takes it, and stays held when it does not.
 */
import { HostPortError, parseHostPort } from '../config/host-port';
import type { QuarantineStore } from '../inspect/quarantine';
import { ReinjectError, ReleaseStateError, describeRelease, passwordOf, releaseHeld } from '../mail/release';
import { CliError, type CliIo, EXIT, readInputText } from './command';

export interface ReinjectVia {
  readonly host: string;
  readonly port: number;
  readonly user?: string | undefined;
  readonly passwordFile?: string | undefined;
  /** --lease SECONDS: how long the release holds the entry (default: src/mail/release.ts). */
  readonly leaseSeconds?: number | undefined;
}

/** `--lease SECONDS` (a whole number from 1 to 86400), undefined when not given; a usage error otherwise. */
export function leaseOption(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const n = /^\d{1,5}$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(n >= 1 && n <= 86400)) throw new CliError(`--lease must be a whole number of seconds from 1 to 86400, got '${value}'`, EXIT.usage);
  return n;
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
  let done: Awaited<ReturnType<typeof releaseHeld>>;
  try {
    done = await releaseHeld(store, id, releaseHeader, {
      host: via.host,
      port: via.port,
      user: via.user,
      password,
      ...(via.leaseSeconds !== undefined ? { leaseMs: via.leaseSeconds * 1000 } : {}),
    });
  } catch (err) {
    if (err instanceof ReinjectError || err instanceof ReleaseStateError) throw new CliError(err.message, EXIT.failure);
    throw err;
  }
  if (!done) throw new CliError(unknown, EXIT.noInput);
  io.out(`released ${id}: ${describeRelease(done)}`);
  return done.refused.length > 0 || done.warning ? EXIT.failure : EXIT.ok;
}
