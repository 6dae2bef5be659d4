/**
 * `ssmax`: one entry point for every tool of the product. This file only
 * dispatches to the command groups; each group parses its own arguments.
 */
import { type CliIo, type CommandGroup, EXIT, exitOf, processIo, requireReadable } from './command';
import { abuseCommand } from './abuse';
import { caCommand } from './ca';
import { consoleCommand } from './console';
import { cryptoCommand } from './crypto';
import { demoCommand } from './demo';
import { directoryCommand } from './directory';
import { inspectorCommand } from './inspector';
import { keydCommand } from './keyd';
import { listCommand } from './list';
import { publishCommand } from './publish';
import { quarantineCommand } from './quarantine';
import { registryCommand } from './registry';
import { setupCommand } from './setup';
import { userCommand } from './user';

/** The command groups, by name. Add a group here and in its own file. */
export const groups: Record<string, CommandGroup> = {
  abuse: abuseCommand,
  ca: caCommand,
  console: consoleCommand,
  crypto: cryptoCommand,
  demo: demoCommand,
  directory: directoryCommand,
  inspector: inspectorCommand,
  keyd: keydCommand,
  list: listCommand,
  publish: publishCommand,
  quarantine: quarantineCommand,
  registry: registryCommand,
  setup: setupCommand,
  user: userCommand,
};

export function usage(): string {
  const width = Math.max(...Object.keys(groups).map((n) => n.length));
  const lines = Object.entries(groups).map(([name, g]) => `  ${name.padEnd(width)}  ${g.summary}`);
  return [
    'Usage: ssmax <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `ssmax <command> --help` for the options of a command.',
  ].join('\n');
}

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const group = groups[name];
  if (!group) {
    io.err(`ssmax: unknown command "${name}"\n\n${usage()}`);
    return EXIT.usage;
  }
  try {
    // One answer for a missing --config from every command (docs/cli.md): 66, before any command reads it.
    const config = configArgument(rest);
    if (config !== undefined && !rest.includes('--help') && !rest.includes('-h')) requireReadable(config);
    return await group.run(rest, io);
  } catch (err) {
    // Every error ends here as one line and a code from the table (src/cli/command.ts); never a stack trace.
    const { code, message } = exitOf(err);
    io.err(`ssmax ${name}: ${message}`);
    return code;
  }
}

/** The value of `--config FILE` or `--config=FILE`, if given. */
function configArgument(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') return undefined;
    if (a === '--config') return argv[i + 1] === undefined || argv[i + 1] === '' ? undefined : argv[i + 1];
    if (a.startsWith('--config=')) return a.slice('--config='.length) || undefined;
  }
  return undefined;
}
