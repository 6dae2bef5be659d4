/**
 * The [keyd] section of a keyd client's config file (gateway, inspector,
 * publisher, console): where keyd is and how the client proves itself to it.
 * Declared once here; each file names its own default and range for the
 * timeout, and adds its own keys beside these.
 */
import { HostPortError, parseHostPort } from '../config/host-port';
import { IniReader, defineSettings, type Setting } from '../config/ini';
import { KeydClient } from './client';

/** keyd's address and the client's TLS material, as a config file gives them. */
export interface KeydConnection {
  /** https://host:port of keyd's API. */
  readonly url: string;
  /** Host name in keyd's certificate, when `url` uses an IP address. */
  readonly servername?: string;
  /** CA certificates keyd's certificate chains to. */
  readonly ca: readonly string[];
  /** The client certificate (issued by the org CA with the caller's role) and its key. */
  readonly cert: string;
  readonly key: string;
  readonly timeoutMs: number;
}

/** The declared settings of the [keyd] section; `timeout` is keyd.timeout_ms (the file's own range and default). */
export function keydConnectionSettings<const T extends Setting & { readonly type: 'num' }>(timeout: T) {
  return defineSettings({
    'keyd.url': { type: 'str' },
    'keyd.servername': { type: 'str' },
    'keyd.ca': { type: 'list' },
    'keyd.cert': { type: 'str' },
    'keyd.key': { type: 'str' },
    'keyd.timeout_ms': timeout,
  });
}

type KeydConnectionSchema = ReturnType<typeof keydConnectionSettings<Setting & { readonly type: 'num' }>>;

/**
 * True iff `url` is keyd's API as a config file must name it: `https://host:port`, an optional trailing slash, and
 * nothing more (the host and port as every address of the project: src/config/host-port.ts). A path, a query, a
 * login, a missing port or plain http is a mistake in the file.
 */
export function isKeydUrl(url: string): boolean {
  if (!url.startsWith('https://')) return false;
  const rest = url.slice('https://'.length);
  try {
    parseHostPort(rest.endsWith('/') ? rest.slice(0, -1) : rest, 1);
    return rest.trim() === rest;
  } catch (err) {
    if (err instanceof HostPortError) return false;
    throw err;
  }
}

/** The [keyd] section, read: the url (https://host:port), ca, cert and key required; paths resolved against the file's folder. */
export function readKeydConnection(r: IniReader<KeydConnectionSchema>): KeydConnection {
  const servername = r.opt('keyd.servername');
  const url = r.get('keyd.url');
  if (!isKeydUrl(url)) throw r.fail('keyd', 'url', `must be https://host:port, got '${url}'`);
  return {
    url,
    ...(servername ? { servername } : {}),
    ca: r.paths('keyd.ca'),
    cert: r.path('keyd.cert'),
    key: r.path('keyd.key'),
    timeoutMs: r.get('keyd.timeout_ms'),
  };
}

/**
 * A client for keyd as a [keyd] section names it: the CA, certificate and key files read through `read` (each
 * caller's own reader, given the setting that names the file — "keyd.cert" — so that an unreadable file is named
 * with its setting: src/config/ini.ts readSettingFile), `cert` and `key` replacing the section's own (the gateway's
 * inspector role, the abuse tool's disclosure role; `settings` then names theirs).
 */
export function keydClientOf(
  conn: Pick<KeydConnection, 'url' | 'servername' | 'ca' | 'timeoutMs'> & { readonly cert: string; readonly key: string },
  read: (file: string, setting: string) => string,
  opts: {
    readonly maxSockets?: number;
    readonly maxAnswerBytes?: number;
    readonly settings?: { readonly cert: string; readonly key: string };
  } = {},
): KeydClient {
  const settings = opts.settings ?? { cert: 'keyd.cert', key: 'keyd.key' };
  return new KeydClient({
    url: conn.url,
    cert: read(conn.cert, settings.cert),
    key: read(conn.key, settings.key),
    ca: conn.ca.map((f) => read(f, 'keyd.ca')),
    timeoutMs: conn.timeoutMs,
    ...(conn.servername ? { servername: conn.servername } : {}),
    ...(opts.maxSockets !== undefined ? { maxSockets: opts.maxSockets } : {}),
    ...(opts.maxAnswerBytes !== undefined ? { maxAnswerBytes: opts.maxAnswerBytes } : {}),
  });
}
