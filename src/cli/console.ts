/**
 * `ssmax console run --config FILE`: the organisation's web console for
 * administrators (docs/console.md), a process of its own beside keyd.
 */
import { ConsoleConfigError, loadConsoleConfig } from '../console/config';
import { ConsoleServer } from '../console/server';
import { CliError, type CliIo, EXIT, parseOptions, requiredOption, serveUntilSignal, subcommands } from './command';

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
  const { values } = parseOptions(args, { config: { type: 'string' } }, RUN_HELP, false);
  if (values.help) return (io.out(RUN_HELP), EXIT.ok);
  const config = loadConsoleConfig(requiredOption(values.config, 'config', RUN_HELP));
  const server = new ConsoleServer({ config, log: (l) => io.err(l) });
  const port = await server.listen();
  return serveUntilSignal(io, `console listening on ${config.host}:${port} for ${config.domain}`, 'console: stopping', async () => {
    await server.close();
  });
}

export const consoleCommand = subcommands(
  'The web console for administrators (overview, peers, quarantine, users, abuse, audit)',
  HELP,
  (sub, rest, io) => {
    if (sub !== 'run') throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
    return run(rest, io);
  },
  (err) => (err instanceof ConsoleConfigError ? new CliError(err.message, EXIT.config) : undefined),
);
