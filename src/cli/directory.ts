/**
 * `ssmax directory …`: the gateway's peer directory (docs/directory.md) —
 * `status` lists what the cache holds for each peer; `lookup` fetches and
 * verifies one peer's bundle now (and caches it) and prints the outcome.
 */
import { parseArgs } from 'node:util';
import { DirectoryConfigError, directoryOptions, loadDirectoryConfig } from '../directory/config';
import { Directory, DirectoryError, type PeerStatus } from '../directory/directory';
import { CliError, type CliIo, EXIT, subcommands } from './command';

const HELP = `Usage: ssmax directory <subcommand> [options]

Subcommands:
  status --config FILE [--json]        each peer's bundle serial, current key, expiry, last fetch and last error
  lookup DOMAIN --config FILE [--json] fetch and verify DOMAIN's bundle now (cached like the gateway's)

Run \`ssmax directory <subcommand> --help\` for details. Configuration: config/ssmax-directory.ini.`;

const SUB_HELP: Record<string, string> = {
  status: `Usage: ssmax directory status --config FILE [--json]

Prints one line per peer the directory cache knows (the cache folder is shared
with the gateway): domain, state (valid, refresh-due, expired, none), bundle
serial, current key id, expiry, last successful fetch and the last error.
Reads the cache only; fetches nothing. With --json, a JSON array.`,
  lookup: `Usage: ssmax directory lookup DOMAIN --config FILE [--json]

Looks DOMAIN up as the gateway does (static map, else DNS TXT _ssmax.DOMAIN),
fetches and verifies its bundle if none is cached, and prints the result.
Exit codes: 0 found, 1 refused or unavailable, 2 no SSMAX bundle ("none").`,
};

function parse(args: string[], usage: string): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({
      args,
      options: { config: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return { values: r.values, positionals: r.positionals };
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${usage}`, EXIT.usage);
  }
}

function open(configFile: unknown, usage: string): Directory {
  if (typeof configFile !== 'string' || configFile === '') throw new CliError(`--config is required\n\n${usage}`, EXIT.usage);
  try {
    return new Directory(directoryOptions(loadDirectoryConfig(configFile)));
  } catch (err) {
    throw new CliError((err as Error).message, err instanceof DirectoryConfigError ? EXIT.config : EXIT.failure);
  }
}

const iso = (d: Date | undefined) => (d ? `${d.toISOString().slice(0, 19)}Z` : '-');

/** Aligned columns; the last (error) column is not padded. */
export function statusTable(rows: readonly PeerStatus[]): string {
  const head = ['DOMAIN', 'STATE', 'SERIAL', 'CURRENT KEY', 'EXPIRES', 'LAST FETCH', 'LAST ERROR'];
  const body = rows.map((r) => [
    r.domain,
    r.state,
    r.serial === undefined ? '-' : String(r.serial),
    r.currentKeyId ?? '-',
    iso(r.expires),
    iso(r.lastFetch),
    r.lastError ? `${iso(r.lastErrorAt)} ${r.lastError}` : '-',
  ]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  return all.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

async function runSub(sub: string, args: string[], io: CliIo): Promise<number> {
  const usage = SUB_HELP[sub] ?? HELP;
  switch (sub) {
    case 'status': {
      const { values } = parse(args, usage);
      if (values.help) return (io.out(usage), EXIT.ok);
      const dir = open(values.config, usage);
      try {
        const rows = dir.status();
        if (values.json) io.out(JSON.stringify(rows, null, 2));
        else io.out(rows.length === 0 ? 'no peers in the directory cache' : statusTable(rows));
        return EXIT.ok;
      } finally {
        await dir.close();
      }
    }
    case 'lookup': {
      const { values, positionals } = parse(args, usage);
      if (values.help) return (io.out(usage), EXIT.ok);
      const [domain, ...more] = positionals;
      if (domain === undefined || more.length > 0) throw new CliError(`exactly one DOMAIN is required\n\n${usage}`, EXIT.usage);
      const dir = open(values.config, usage);
      try {
        const peer = await dir.lookup(domain);
        if (values.json) {
          io.out(
            JSON.stringify(
              {
                domain: peer.domain,
                serial: peer.serial,
                id: peer.id,
                issued: peer.issued,
                expires: peer.expires,
                url: peer.url,
                currentKey: peer.currentKey.keyId,
                keys: peer.keys.map((k) => ({ keyId: k.keyId, state: k.state })),
                abuseContact: peer.abuseContact,
                inboundPolicy: peer.inboundPolicy,
              },
              null,
              2,
            ),
          );
        } else {
          io.out(
            `${peer.domain}: bundle ${peer.id} serial ${peer.serial}, current key ${peer.currentKey.keyId}, expires ${iso(peer.expires)} (from ${peer.url})`,
          );
        }
        return EXIT.ok;
      } catch (err) {
        if (!(err instanceof DirectoryError)) throw err;
        io.err(`${err.code}: ${err.detail}`);
        return err.code === 'none' ? 2 : EXIT.failure;
      } finally {
        await dir.close();
      }
    }
    default:
      throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
  }
}

export const directoryCommand = subcommands('Peer directory: fetch, verify and cache the bundles of peers; status', HELP, runSub);
