/**
 * Handing a held message back to the gateway (`ssmax quarantine release`,
 * `ssmax list release`): the message, with a release field on top naming its
 * id, submitted again through the gateway's SMTP listener (optionally with
 * SMTP AUTH, the password read from a file: its first line).
 */
import { createTransport } from 'nodemailer';
import { CliError, type CliIo, EXIT, readInputText } from './command';

export interface HeldMessage {
  readonly id: string;
  readonly from: string;
  readonly rcpts: readonly string[];
  readonly message: Uint8Array;
}

export interface ReinjectVia {
  readonly host: string;
  readonly port: number;
  readonly user?: string | undefined;
  readonly passwordFile?: string | undefined;
}

/** An option's value when it was given as text, else undefined. */
export function textOf(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** `--smtp HOST:PORT`, or undefined when missing or malformed. */
export function smtpAddress(value: unknown): { host: string; port: number } | undefined {
  const m = /^(.+):(\d{1,5})$/.exec(String(value ?? ''));
  return m ? { host: m[1]!, port: Number(m[2]) } : undefined;
}

/** Submits `held` again with `releaseHeader: <id>` on top; prints the gateway's answer, or fails (70) with it. */
export async function reinject(held: HeldMessage, releaseHeader: string, via: ReinjectVia, io: CliIo): Promise<number> {
  const pass = via.passwordFile !== undefined ? readInputText(via.passwordFile, 'password file').split('\n')[0]!.trim() : undefined;
  const t = createTransport({
    host: via.host,
    port: via.port,
    secure: false,
    ignoreTLS: true,
    ...(via.user && pass ? { auth: { user: via.user, pass } } : {}),
  });
  try {
    const raw = Buffer.concat([Buffer.from(`${releaseHeader}: ${held.id}\r\n`), Buffer.from(held.message)]);
    const r = await t.sendMail({ envelope: { from: held.from, to: [...held.rcpts] }, raw });
    io.out(`released ${held.id}: ${r.response}`);
  } catch (err) {
    throw new CliError(`cannot re-inject ${held.id}: ${(err as { response?: string }).response ?? (err as Error).message}`, EXIT.failure);
  } finally {
    t.close();
  }
  return EXIT.ok;
}
