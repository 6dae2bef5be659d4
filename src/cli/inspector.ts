/**
 * `ssmax inspector run --config FILE`: the inspection step as a separate
 * process with its own inspector certificate (docs/inspection.md), for
 * gateways with [inspection] mode=remote.
 */
import { InspectorConfigError, loadInspectorConfig } from '../inspector/config';
import { startInspector } from '../inspector/daemon';
import { InspectConfigError } from '../inspect/config';
import { CliError, type CliIo, EXIT, parseOptions, requiredOption, serveUntilSignal, subcommands } from './command';

const HELP = `Usage: ssmax inspector <subcommand> [options]

Subcommands:
  run --config FILE     run the inspector (HTTPS, mutual TLS) until SIGINT/SIGTERM

Gateways with [inspection] mode=remote send it each message to inspect, encrypted;
it decrypts in memory through keyd (blinded, proof verified) with its own
inspector certificate, runs DLP or ClamAV, and keeps the quarantine.
Run \`ssmax inspector run --help\` for details. Configuration: config/ssmax-inspector.ini.`;

const RUN_HELP = `Usage: ssmax inspector run --config FILE

Runs the inspector in the foreground; SIGINT or SIGTERM stop it gracefully
(requests in flight finish, 5 s at most). Prints "inspector listening on HOST:PORT"
when ready. The rules are ssmax-inspect.ini and ssmax-dlp.ini ([inspection] in FILE).`;

async function run(args: string[], io: CliIo): Promise<number> {
  const { values } = parseOptions(args, { config: { type: 'string' } }, RUN_HELP, false);
  if (values.help) return (io.out(RUN_HELP), EXIT.ok);
  const config = loadInspectorConfig(requiredOption(values.config, 'config', RUN_HELP));
  const inspector = await startInspector(config, { log: (l) => io.err(l) });
  return serveUntilSignal(
    io,
    `inspector listening on ${config.host}:${inspector.port} for ${config.domain}`,
    'inspector: stopping',
    async () => {
      await inspector.stop();
    },
  );
}

export const inspectorCommand = subcommands(
  'Inspection as a separate process (DLP, ClamAV, quarantine) for gateways in remote mode',
  HELP,
  (sub, rest, io) => {
    if (sub !== 'run') throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
    return run(rest, io);
  },
  (err) => (err instanceof InspectorConfigError || err instanceof InspectConfigError ? new CliError(err.message, EXIT.config) : undefined),
);
