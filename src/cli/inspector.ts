/**
 * `ssmax inspector run --config FILE`: the inspection step as a separate
 * process with its own inspector certificate (docs/inspection.md), for
 * gateways with [inspection] mode=remote.
 */
import { parseArgs } from 'node:util';
import { InspectorConfigError, loadInspectorConfig } from '../inspector/config';
import { startInspector } from '../inspector/daemon';
import { InspectConfigError } from '../inspect/config';
import { CliError, type CliIo, EXIT, subcommands } from './command';

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
  let values: { config?: string | undefined; help?: boolean | undefined };
  try {
    values = parseArgs({ args, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${RUN_HELP}`, EXIT.usage);
  }
  if (values.help) return (io.out(RUN_HELP), EXIT.ok);
  if (!values.config) throw new CliError(`--config is required\n\n${RUN_HELP}`, EXIT.usage);
  const config = loadInspectorConfig(values.config);
  const inspector = await startInspector(config, { log: (l) => io.err(l) });
  io.out(`inspector listening on ${config.host}:${inspector.port} for ${config.domain}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  io.err('inspector: stopping');
  await inspector.stop();
  return EXIT.ok;
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
