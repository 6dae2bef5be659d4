/**
 * Submits an abuse report through the organisation's own gateway (SMTP
 * submission, as any mail of the organisation leaves), to the abuse contact
 * of the sending organisation's bundle.
 */
import { createTransport } from 'nodemailer';
import { AbuseError } from './errors';
import { type SmtpSecurity, isLoopbackAddress, plaintextSmtpRefusal } from '../net/loopback';

export interface SubmitSettings {
  readonly host: string;
  readonly port: number;
  /** SMTP AUTH user and password; no AUTH when absent. */
  readonly user?: string;
  readonly password?: string;
  /** `starttls` (default for port 587 and off loopback), `tls` (default for 465), or `none` (loopback only: src/net/loopback.ts). */
  readonly security?: SmtpSecurity;
  readonly timeoutMs?: number;
}

export interface SubmitResult {
  readonly response: string;
  readonly messageId: string;
}

/** `security` as given, else by port and host: tls for 465, starttls for 587 or a host off loopback, none on loopback. */
export function submitSecurity(s: Pick<SubmitSettings, 'host' | 'port' | 'security'>): SmtpSecurity {
  return s.security ?? (s.port === 465 ? 'tls' : s.port === 587 || !isLoopbackAddress(s.host) ? 'starttls' : 'none');
}

/** Sends `report` from `from` to `to` through the gateway; AbuseError `unavailable` when it is not accepted. */
export async function submitReport(report: Buffer, envelope: { from: string; to: string }, s: SubmitSettings): Promise<SubmitResult> {
  const security = submitSecurity(s);
  const refusal = plaintextSmtpRefusal(s.host, security);
  if (refusal) throw new AbuseError('unavailable', `Cannot submit the report: ${refusal}`);
  const t = createTransport({
    host: s.host,
    port: s.port,
    secure: security === 'tls',
    ignoreTLS: security === 'none',
    requireTLS: security === 'starttls',
    ...(s.user ? { auth: { user: s.user, pass: s.password ?? '' } } : {}),
    connectionTimeout: s.timeoutMs ?? 15000,
    socketTimeout: s.timeoutMs ?? 30000,
  });
  try {
    const r = await t.sendMail({ envelope: { from: envelope.from, to: [envelope.to] }, raw: report });
    return { response: r.response, messageId: r.messageId };
  } catch (err) {
    const e = err as { response?: string; message?: string };
    throw new AbuseError('unavailable', `Cannot submit the report to ${s.host}:${s.port}: ${e.response ?? e.message ?? String(err)}`);
  } finally {
    t.close();
  }
}
