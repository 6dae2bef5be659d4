/** `ssmax quarantine list|show|release|delete|backup`: the messages inspection held back (kept encrypted). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  RELEASE_HEADER,
  QuarantineStore,
  leaseEnd,
  releaseInterrupted,
  releaseRecordGone,
  releaseTaken,
  shownState,
} from '../inspect/quarantine';
import { CliError, type CliIo, EXIT, requireFolder, subcommands } from './command';
import { RELEASE_TLS_HELP, leaseOption, printPage, reinject, smtpAddress, textOf } from './reinject';

const HELP = `Usage: ssmax quarantine <subcommand> --state DIR [options]

DIR is the gateway's quarantine folder (<haraka>/ssmax-state/quarantine), the inspector's
(<state_dir>/quarantine), or a gateway's list moderation queue (<haraka>/ssmax-state/list-moderation).

Subcommands:
  list [--limit N] [--before ID]
                               one line per held message, newest first: id, time, direction,
                               state, rule, from, recipients; N of them (default 100, at most
                               1000); when older ones remain, stderr says so and names the
                               --before ID that lists the next N
  show ID                      the entry's details (never the message content: it stays encrypted)
  release ID --smtp HOST:PORT [--user U --password-file F] [--lease SECONDS]
             [--smtp-ca FILE] [--smtp-servername NAME]
                               re-inject the message into the gateway, which lets it pass once;
                               only a held message (exit 1, nothing sent, when a release of it
                               is under way or done); if the gateway does not take it (exit 1,
                               its answer printed), the message stays held and can be released
                               again; recipients the gateway refused (exit 1, printed) stay held.
                               The release holds the message for SECONDS (default 600, ten times
                               its longest SMTP timeout): one that died midway (killed) shows
                               as "releasing" until
                               then, and as held ("release interrupted") after, to be released
                               again; the gateway lets through only the latest release
  ${RELEASE_TLS_HELP}
  delete ID                    remove it for good (also an entry the gateway took, "released",
                               left behind by a release that died after the gateway's answer)
  backup --out OUT             a consistent copy of the store while the gateway or the inspector
                               goes on writing it (LMDB's own copy; a plain copy of the folder
                               under writers can be a store that does not open): OUT/data.mdb,
                               mode 0600, OUT absent or empty (else exit 73); the copy is opened
                               and its entries counted. Restore: stop every process that opens
                               the store, put data.mdb into an empty DIR, start them again`;

async function runQuarantine(sub: string, rest: string[], io: CliIo): Promise<number> {
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    const r = parseArgs({
      args: rest,
      options: {
        state: { type: 'string' },
        smtp: { type: 'string' },
        user: { type: 'string' },
        'password-file': { type: 'string' },
        'smtp-ca': { type: 'string' },
        'smtp-servername': { type: 'string' },
        lease: { type: 'string' },
        limit: { type: 'string' },
        before: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
    parsed = { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${HELP}`, EXIT.usage);
  }
  const { values, positionals } = parsed;
  if (values.help) return (io.out(HELP), EXIT.ok);
  if (typeof values.state !== 'string') throw new CliError(`--state is required\n\n${HELP}`, EXIT.usage);
  requireFolder(values.state, 'quarantine folder');
  // a backup of a folder without a store (its parent given by mistake) is said, never made of an empty store made here
  if (sub === 'backup' && !existsSync(join(values.state, 'data.mdb')))
    throw new CliError(`"${values.state}" holds no quarantine store (no data.mdb): give the store's own folder`, EXIT.noInput);
  const store = new QuarantineStore(values.state);
  try {
    const id = positionals[0];
    switch (sub) {
      case 'list':
        printPage(store, values, io, (e) =>
          [e.id, new Date(e.time).toISOString(), e.direction, shownState(e), e.rule, e.from, e.rcpts.join(',')].join('  '),
        );
        return EXIT.ok;
      case 'show': {
        const e = id ? store.summary(id) : undefined; // the metadata only: the message is not read
        if (!e) throw new CliError(`no quarantined message "${id ?? ''}"`, EXIT.noInput);
        io.out(
          JSON.stringify(
            {
              id: e.id,
              time: new Date(e.time).toISOString(),
              direction: e.direction,
              state: shownState(e),
              rule: e.rule,
              from: e.from,
              rcpts: e.rcpts,
              ...(e.release
                ? { releaseStarted: new Date(e.release.since).toISOString(), releaseLeaseEnds: new Date(leaseEnd(e)!).toISOString() }
                : {}),
              ...(releaseInterrupted(e)
                ? {
                    releaseInterrupted:
                      'the release did not finish (its lease ended, or an earlier version left it marked): it can be released again',
                  }
                : {}),
              ...(releaseRecordGone(e)
                ? {
                    released:
                      'the gateway took it at that release, whose releaser never finished, longer ago than the gateway keeps its record of the copies it handed over: it is not sent again (it may have gone: ask its recipients, then delete the entry)',
                  }
                : releaseTaken(e)
                  ? {
                      released:
                        'the gateway took it at that release, which is finishing: its releaser removes the entry, or holds it again for what the gateway did not take; if it does not by the end of its lease, the entry can be released again (copies the gateway already handed over are not sent again)',
                    }
                  : {}),
              ...(e.note ? { note: e.note } : {}),
              heldBytes: e.bytes,
            },
            null,
            2,
          ),
        );
        return EXIT.ok;
      }
      case 'release': {
        const smtp = smtpAddress(values.smtp);
        if (!smtp) throw new CliError(`--smtp HOST:PORT is required\n\n${HELP}`, EXIT.usage);
        const unknown = `no quarantined message "${id ?? ''}"`;
        if (!id) throw new CliError(unknown, EXIT.noInput);
        const via = {
          ...smtp,
          user: textOf(values.user),
          passwordFile: textOf(values['password-file']),
          leaseSeconds: leaseOption(values.lease),
          caFile: textOf(values['smtp-ca']),
          servername: textOf(values['smtp-servername']),
        };
        return await reinject(store, id, RELEASE_HEADER, via, io, unknown);
      }
      case 'backup': {
        if (typeof values.out !== 'string' || values.out === '') throw new CliError(`--out OUT is required\n\n${HELP}`, EXIT.usage);
        const copied = await store.backup(values.out);
        io.out(
          `backed up ${copied.entries} entr${copied.entries === 1 ? 'y' : 'ies'} (${copied.bytes} bytes held) to ${values.out}/data.mdb`,
        );
        return EXIT.ok;
      }
      case 'delete':
        if (!id || !(await store.delete(id))) throw new CliError(`no quarantined message "${id ?? ''}"`, EXIT.noInput);
        io.out(`deleted ${id}`);
        return EXIT.ok;
      default:
        throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
    }
  } finally {
    await store.close();
  }
}

export const quarantineCommand = subcommands(
  'Quarantined messages (kept encrypted): list, show, release, delete, backup',
  HELP,
  runQuarantine,
);
