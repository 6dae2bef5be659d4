/**
 * `ssmax list …`: mailing lists served by this organisation (docs/lists.md):
 * create, add, remove, show, policy at keyd (admin role, audited), and the
 * moderation queue of the gateway (held, release: posts kept encrypted).
 */
import { AbuseConfigError, keydClientFor, loadAbuseConfig } from '../abuse/config';
import { KeydClientError } from '../keyd/client';
import type { ListEntry } from '../keyd/lists';
import { QuarantineStore, shownState } from '../inspect/quarantine';
import { LIST_RELEASE_HEADER } from '../lists/expand';
import {
  CliError,
  type CliIo,
  EXIT,
  type OptionValues,
  parseOptions,
  requireFolder,
  requireReadable,
  requiredOption,
  subcommands,
} from './command';
import { RELEASE_TLS_HELP, leaseOption, printPage, reinject, smtpAddress, textOf } from './reinject';

const HELP = `Usage: ssmax list <subcommand> [options]

Subcommands (keyd, admin role, every change audited; --config FILE is ssmax-abuse.ini,
whose [keyd] section names keyd and the admin client certificate):
  create LIST [--policy members|moderated|open] [--moderator ADDR]...
                                 a new list address of this organisation (default policy: members)
  add LIST MEMBER...             add members (local users, local lists, or addresses elsewhere)
  remove LIST MEMBER...          remove members: no copy of any post accepted afterwards
  show LIST [--json]             policy, moderators, members
  policy LIST --policy P [--moderator ADDR]...
                                 posting policy: members (only members and moderators may post),
                                 moderated (held, encrypted, until a moderator releases), open
Moderation queue (the gateway's <haraka>/ssmax-state/list-moderation folder):
  held --state DIR [--limit N] [--before ID]
                                 one line per held post, newest first: id, time, state, list, sender
                                 (N of them, default 100; stderr names the --before ID of the next page)
  release ID --state DIR --smtp HOST:PORT [--user U --password-file F] [--lease SECONDS]
             [--smtp-ca FILE] [--smtp-servername NAME]
                                 re-inject the held post into the gateway, which expands it once

Run \`ssmax list <subcommand> --help\` for one subcommand.`;

const SUB_HELP: Record<string, string> = {
  create:
    'Usage: ssmax list create --config FILE LIST [--policy members|moderated|open] [--moderator ADDR]...\n\nCreates the list LIST (an address of this organisation) at keyd. A moderated list needs a moderator.',
  add: 'Usage: ssmax list add --config FILE LIST MEMBER...\n\nAdds members. A member added later cannot open posts accepted before (each copy is made per member when a post is accepted).',
  remove:
    'Usage: ssmax list remove --config FILE LIST MEMBER...\n\nRemoves members. Posts accepted from now on make no copy for them; copies already made (accepted before) may still be delivered.',
  show: 'Usage: ssmax list show --config FILE LIST [--json]\n\nPrints the list: policy, moderators, members.',
  policy:
    'Usage: ssmax list policy --config FILE LIST --policy members|moderated|open [--moderator ADDR]...\n\nSets the posting policy (and, when given, the moderators).',
  held: 'Usage: ssmax list held --state DIR [--limit N] [--before ID]\n\nLists the posts held for moderation, newest first (never their content: they stay encrypted): N of them (default 100, at most 1000). When older ones remain, stderr says so and names the --before ID that lists the next N.',
  release:
    'Usage: ssmax list release --state DIR --smtp HOST:PORT [--user U --password-file F] [--lease SECONDS]\n                           [--smtp-ca FILE] [--smtp-servername NAME] ID\n\nRe-injects the held post ID into the gateway at HOST:PORT, which expands it once to the members of that moment. Only a held post: a release under way or done is refused (exit 1, nothing sent). If the gateway does not take it (exit 1, its answer printed), the post stays held and can be released again. The release holds the post for SECONDS (default 600): one that died midway can be released again after that, and the gateway lets through only the latest release.\n\nOptions:\n  ' +
    RELEASE_TLS_HELP,
};

function describe(l: ListEntry): string[] {
  return [
    `list ${l.address}`,
    `policy ${l.policy}`,
    `moderators ${l.moderators.join(', ') || '-'}`,
    `members (${l.members.length})`,
    ...l.members.map((m) => `  ${m}`),
  ];
}

async function keydCommand(sub: string, values: OptionValues, positionals: string[], io: CliIo): Promise<number> {
  const usage = SUB_HELP[sub]!;
  const config = requiredOption(values.config, 'config FILE', usage);
  const [address, ...members] = positionals;
  if (!address) throw new CliError(`LIST is required\n\n${usage}`, EXIT.usage);
  if ((sub === 'add' || sub === 'remove') && members.length === 0)
    throw new CliError(`at least one MEMBER is required\n\n${usage}`, EXIT.usage);
  if (sub === 'policy' && typeof values.policy !== 'string') throw new CliError(`--policy is required\n\n${usage}`, EXIT.usage);
  requireReadable(config);
  const keyd = keydClientFor(loadAbuseConfig(config), 'operator');
  const moderators = Array.isArray(values.moderator) ? values.moderator : undefined;
  try {
    let l: ListEntry;
    switch (sub) {
      case 'create':
        l = await keyd.call<ListEntry>('POST', '/v1/lists', {
          address,
          ...(values.policy ? { policy: values.policy } : {}),
          ...(moderators ? { moderators } : {}),
        });
        io.out(`Created list ${l.address} (policy ${l.policy})`);
        return EXIT.ok;
      case 'add':
      case 'remove':
        l = await keyd.call<ListEntry>('POST', '/v1/lists/members', { address, [sub]: members });
        io.out(`${l.address}: ${sub === 'add' ? 'added' : 'removed'} ${members.join(', ')}; ${l.members.length} members`);
        return EXIT.ok;
      case 'policy':
        l = await keyd.call<ListEntry>('POST', '/v1/lists/policy', {
          address,
          policy: values.policy,
          ...(moderators ? { moderators } : {}),
        });
        io.out(`${l.address}: policy ${l.policy}; moderators ${l.moderators.join(', ') || '-'}`);
        return EXIT.ok;
      default:
        l = await keyd.call<ListEntry>('GET', `/v1/lists/${encodeURIComponent(address)}`);
        if (values.json) io.out(JSON.stringify(l, null, 2));
        else for (const line of describe(l)) io.out(line);
        return EXIT.ok;
    }
  } catch (err) {
    if (err instanceof KeydClientError)
      throw new CliError(
        `keyd refused: ${err.message}`,
        err.transient ? EXIT.unavailable : err.status === 404 ? EXIT.noInput : EXIT.failure,
      );
    throw err;
  } finally {
    keyd.close();
  }
}

async function moderationCommand(sub: string, values: OptionValues, positionals: string[], io: CliIo): Promise<number> {
  const usage = SUB_HELP[sub]!;
  const state = requiredOption(values.state, 'state DIR', usage);
  requireFolder(state, 'moderation folder');
  const store = new QuarantineStore(state);
  try {
    if (sub === 'held') {
      printPage(store, values, io, (e) => [e.id, new Date(e.time).toISOString(), shownState(e), e.rcpts.join(','), e.from].join('  '));
      return EXIT.ok;
    }
    const id = positionals[0];
    const smtp = smtpAddress(values.smtp);
    if (!id || !smtp) throw new CliError(`ID and --smtp HOST:PORT are required\n\n${usage}`, EXIT.usage);
    const via = {
      ...smtp,
      user: textOf(values.user),
      passwordFile: textOf(values['password-file']),
      leaseSeconds: leaseOption(values.lease),
      caFile: textOf(values['smtp-ca']),
      servername: textOf(values['smtp-servername']),
    };
    return await reinject(store, id, LIST_RELEASE_HEADER, via, io, `no held post "${id}"`);
  } finally {
    await store.close();
  }
}

async function runList(sub: string, rest: string[], io: CliIo): Promise<number> {
  if (!SUB_HELP[sub]) throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
  const parsed = parseOptions(
    rest,
    {
      config: { type: 'string' },
      policy: { type: 'string' },
      moderator: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      state: { type: 'string' },
      smtp: { type: 'string' },
      user: { type: 'string' },
      'password-file': { type: 'string' },
      'smtp-ca': { type: 'string' },
      'smtp-servername': { type: 'string' },
      lease: { type: 'string' },
      limit: { type: 'string' },
      before: { type: 'string' },
    },
    SUB_HELP[sub],
  );
  if (parsed.values.help) return (io.out(SUB_HELP[sub]), EXIT.ok);
  try {
    if (sub === 'held' || sub === 'release') return await moderationCommand(sub, parsed.values, parsed.positionals, io);
    return await keydCommand(sub, parsed.values, parsed.positionals, io);
  } catch (err) {
    if (err instanceof AbuseConfigError) throw new CliError(err.message, EXIT.config);
    throw err;
  }
}

export const listCommand = subcommands(
  'Mailing lists (encrypted, expanded per member): create, add, remove, show, policy, held, release',
  HELP,
  runList,
);
