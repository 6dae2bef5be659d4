/**
 * The gateway's word about keyd at start: one request (GET /v1/health) in the
 * background when the plugin starts, never holding up or failing Haraka's
 * start. When keyd does not answer, one warning names its URL and the cause
 * in words (connection refused, a TLS failure, no answer in time…): without
 * it the first sign would be the first message's `451 4.7.5`. When it
 * answers, one line says so. Mail is answered as always either way: a
 * message that needs keyd while it is away gets 4xx and is retried.
 */
import { KeydClientError } from '../keyd/client';

/** What keyd's /v1/health says of the caller (src/keyd/server.ts). */
export interface KeydHealth {
  readonly domain?: unknown;
  readonly role?: unknown;
}

/** The reason of a socket or TLS error code, in words, with the setting to look at. */
const CAUSES: readonly [RegExp, string][] = [
  [/^ECONNREFUSED$/, 'connection refused: nothing listens there ([keyd] url)'],
  [/^(ENOTFOUND|EAI_AGAIN)$/, 'host name not found ([keyd] url)'],
  [/^(EHOSTUNREACH|ENETUNREACH)$/, 'host unreachable ([keyd] url)'],
  [/^ECONNRESET$/, 'connection reset by the other end (is it keyd, speaking TLS?)'],
  [/^EPROTO$|WRONG_VERSION_NUMBER/, "TLS: the other end does not speak TLS (is [keyd] url keyd's port?)"],
  [
    /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT)$/,
    "TLS: unknown CA: keyd's certificate does not chain to a certificate of [keyd] ca",
  ],
  [/^CERT_HAS_EXPIRED$/, "TLS: keyd's certificate has expired"],
  [/^CERT_NOT_YET_VALID$/, "TLS: keyd's certificate is not valid yet (check the clock)"],
  [/^ERR_TLS_CERT_ALTNAME_INVALID$/, "TLS: keyd's certificate does not name the host ([keyd] servername)"],
  [/^ERR_SSL_TLSV1_ALERT_UNKNOWN_CA$/, "TLS: keyd does not know the CA of this gateway's client certificate ([keyd] cert)"],
  [
    /^ERR_SSL_.*ALERT_(CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|BAD_CERTIFICATE|CERTIFICATE_REQUIRED|ACCESS_DENIED)/,
    "TLS: keyd refused this gateway's client certificate ([keyd] cert)",
  ],
];

/** Why a call to keyd failed, in words: the cause named, the system's code kept in brackets. */
export function keydFailureText(err: unknown): string {
  if (err instanceof KeydClientError) {
    if (err.code === 'timeout') return `timeout: ${err.message}`;
    if (err.status === 0) {
      const detail = err.message.replace(/^keyd (unreachable|response failed): /, '');
      const cause = CAUSES.find(([re]) => re.test(detail));
      return cause ? `${cause[1]} (${detail})` : detail;
    }
    return `keyd answered ${err.status} ${err.code}: ${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Asks keyd once, in the background; resolves when the line is logged (never rejects). `url`: [keyd] url, named in
 * the lines.
 */
export async function probeKeyd(
  health: () => Promise<KeydHealth>,
  url: string,
  log: { info(line: string): void; warn(line: string): void },
): Promise<void> {
  try {
    const h = await health();
    const about = [typeof h.domain === 'string' ? h.domain : undefined, typeof h.role === 'string' ? `role ${h.role}` : undefined]
      .filter(Boolean)
      .join(', ');
    log.info(`ssmax: keyd at ${url} answers${about ? ` (${about})` : ''}`);
  } catch (err) {
    log.warn(
      `ssmax: WARNING: keyd at ${url} does not answer: ${keydFailureText(err)}; until it does, mail that needs it is answered 451 4.7.5 and retried by its sender ([keyd] of ssmax.ini)`,
    );
  }
}
