/**
 * SMTP submission (RFC 6409) of a signed and encrypted message to the own
 * organisation's gateway, with AUTH PLAIN or LOGIN (RFC 4954), through
 * nodemailer's SMTP transport (docs/user.md "send").
 *
 * Guarantees: the envelope is explicit (MAIL FROM = the profile's address,
 * RCPT TO = the given recipients), the message bytes are sent as they are
 * (no header rewriting, no Message-ID added: the user signature covers them);
 * with `security: 'starttls'` the transport refuses to authenticate without
 * TLS. Errors name the server's reply code and never contain the password or
 * message content.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { createTransport } from 'nodemailer';
import { UserError } from './errors';
import { type SmtpSettings, type UserProfileSettings, domainOf } from './profile';
import { cannotRead } from '../errors/errno';
import { plaintextSmtpRefusal } from '../net/loopback';

export interface SubmitOptions {
  /** RCPT TO addresses, at least one. */
  readonly to: readonly string[];
  /** The AUTH password; when absent, read from the profile's passwordFile or passwordEnv. */
  readonly password?: string;
  /** Overrides the profile's SMTP settings (e.g. the CLI's --host, --port). */
  readonly smtp?: Partial<SmtpSettings>;
  /** Socket timeouts in ms (default 30 s). */
  readonly timeoutMs?: number;
  /** Force one SASL mechanism (`PLAIN` or `LOGIN`); by default the first the server offers. */
  readonly authMethod?: 'PLAIN' | 'LOGIN';
  /** Extra TLS options, e.g. `{ ca }` for a private CA, in tests. */
  readonly tls?: { readonly ca?: string | Buffer; readonly servername?: string };
  /** Environment for passwordEnv (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface SubmitResult {
  readonly accepted: readonly string[];
  readonly rejected: readonly string[];
  /** The server's final reply, e.g. `250 OK: queued as …`. */
  readonly response: string;
}

/** The password from the settings: the file (first line) first, then the environment variable. */
export function smtpPassword(settings: SmtpSettings, profileDir: string, env: NodeJS.ProcessEnv = process.env): string {
  if (settings.passwordFile) {
    const path = isAbsolute(settings.passwordFile) ? settings.passwordFile : join(profileDir, settings.passwordFile);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new UserError('smtp', cannotRead('the SMTP password file', path, err));
    }
    const password = text.split(/\r?\n/)[0] ?? '';
    if (password === '') throw new UserError('smtp', `Cannot use the SMTP password file "${path}": its first line is empty`);
    return password;
  }
  if (settings.passwordEnv) {
    const password = env[settings.passwordEnv];
    if (!password) throw new UserError('smtp', `Cannot read the SMTP password: environment variable "${settings.passwordEnv}" is not set`);
    return password;
  }
  throw new UserError('smtp', 'Cannot submit: no SMTP password (set passwordFile or passwordEnv in the profile, or give one)');
}

interface SmtpFailure {
  readonly code?: string;
  readonly responseCode?: number;
  readonly response?: string;
  readonly command?: string;
  readonly message?: string;
}

// The server's reply, on one line, shortened: it may quote what we sent, never the password (AUTH data is base64 and not echoed).
function replyText(text: string | undefined): string {
  return (text ?? '')
    .replace(/[\r\n]+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 200);
}

/** Submits `message` as is, with an explicit envelope. Throws UserError('smtp') naming the reply code. */
export async function submitMessage(profile: UserProfileSettings, message: Uint8Array, options: SubmitOptions): Promise<SubmitResult> {
  if (!(message instanceof Uint8Array)) throw new TypeError('Cannot submit: the message must be a Uint8Array');
  const to = Array.from(options.to ?? []);
  if (to.length === 0) throw new UserError('smtp', 'Cannot submit: at least one recipient (--to) is needed');
  for (const address of to) {
    try {
      domainOf(address);
    } catch {
      throw new UserError('smtp', `Cannot submit to "${String(address).slice(0, 80)}": not a mail address`);
    }
  }
  const base = profile.smtp;
  const merged = { ...(base ?? {}), ...(options.smtp ?? {}) } as Partial<SmtpSettings>;
  const missing = (['host', 'port', 'user'] as const).filter((k) => !merged[k]);
  if (missing.length > 0)
    // a profile made by `ssmax registry add` has none: the user gives them with the options of `ssmax user send`
    throw new UserError(
      'smtp',
      `Cannot submit: no SMTP ${missing.join(', ')}: give ${missing.map((k) => (k === 'user' ? '--smtp-user' : `--${k}`)).join(', ')} (or set "smtp" in ${join(profile.dir, 'profile.json')})`,
    );
  const settings: SmtpSettings = { security: 'starttls', ...merged } as SmtpSettings;
  const refusal = plaintextSmtpRefusal(settings.host, settings.security);
  if (refusal) throw new UserError('smtp', `Cannot submit: ${refusal}`);
  const password = options.password ?? smtpPassword(settings, profile.dir, options.env);
  const timeout = options.timeoutMs ?? 30_000;
  const transport = createTransport({
    host: settings.host,
    port: settings.port,
    secure: settings.security === 'tls',
    requireTLS: settings.security === 'starttls',
    ignoreTLS: settings.security === 'none',
    auth: { user: settings.user, pass: password },
    ...(options.authMethod ? { authMethod: options.authMethod } : {}),
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    disableFileAccess: true,
    disableUrlAccess: true,
    ...(options.tls ? { tls: { ...options.tls } } : {}),
  });
  try {
    const info = await transport.sendMail({
      envelope: { from: profile.address, to },
      raw: Buffer.from(message),
    });
    return {
      accepted: info.accepted.map(String),
      rejected: info.rejected.map(String),
      response: replyText(info.response),
    };
  } catch (err) {
    const e = err as SmtpFailure;
    const where = `${settings.host}:${settings.port}`;
    if (e.responseCode) {
      const command = e.command ? (replyText(e.command).split(' ')[0] ?? '') : '';
      const step =
        e.code === 'EAUTH'
          ? 'authentication was refused'
          : command.toUpperCase() === 'STARTTLS'
            ? 'STARTTLS (required by the profile) was refused'
            : `the server refused ${command ? `"${command}"` : 'the message'}`;
      const reply = replyText(e.response);
      throw new UserError(
        'smtp',
        `Cannot submit to ${where}: ${step}: ${reply.startsWith(String(e.responseCode)) ? reply : `${e.responseCode} ${reply}`}`.trim(),
      );
    }
    throw new UserError('smtp', `Cannot submit to ${where}: ${replyText(e.message ?? String(err))}${e.code ? ` (${e.code})` : ''}`);
  } finally {
    transport.close();
  }
}
