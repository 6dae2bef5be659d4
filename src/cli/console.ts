/**
 * `ssmax console run --config FILE`: the organisation's web console for
 * administrators (docs/console.md), a process of its own beside keyd.
 */
import { parseArgs } from 'node:util';
import { ConsoleConfigError, loadConsoleConfig } from '../console/config';
import { ConsoleServer } from '../console/server';
import { type CliIo, type CommandGroup, CliError, EXIT } from './command';

const HELP = `Usage: ssmax console <subcommand> [options]

Subcommands:
  run --config FILE     run the web console (HTTPS, administrators log in with their certificate) until SIGINT/SIGTERM

Administrators (role admin; role disclosure for the abuse page only) open
https://HOST:PORT/ in a browser holding their certificate from the
organisation's CA. The console calls keyd on their behalf with its own
console certificate; keyd audits every action as the administrator.
Run \`ssmax console run --help\` for details. Configuration: config/ssmax-console.ini.`;

const RUN_HELP = `Usage: ssmax console run --config FILE

Runs the console in the foreground; SIGINT or SIGTERM stop it gracefully
(requests in flight finish, 3 s at most). Prints "console listening on HOST:PORT"
when ready, and one line per request (method, path, status, time; never a form's content).`;

async function run(args: string[], io: CliIo): Promise<number> {
  let values: { config?: string | undefined; help?: boolean | undefined };
  try {
    values = parseArgs({ args, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${RUN_HELP}`, EXIT.usage);
  }
  if (values.help) return (io.out(RUN_HELP), EXIT.ok);
  if (!values.config) throw new CliError(`--config is required\n\n${RUN_HELP}`, EXIT.usage);
  const config = loadConsoleConfig(values.config);
  const server = new ConsoleServer({ config, log: (l) => io.err(l) });
  const port = await server.listen();
  io.out(`console listening on ${config.host}:${port} for ${config.domain}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  io.err('console: stopping');
  await server.close();
  return EXIT.ok;
}

export const consoleCommand: CommandGroup = {
  summary: 'The web console for administrators (overview, peers, quarantine, users, abuse, audit)',
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      io.out(HELP);
      return sub === undefined ? EXIT.usage : EXIT.ok;
    }
    if (sub !== 'run') throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
    try {
      return await run(rest, io);
    } catch (err) {
      if (err instanceof ConsoleConfigError) throw new CliError(err.message, EXIT.config);
      throw err;
    }
  },
};
