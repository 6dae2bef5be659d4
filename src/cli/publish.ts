/**
 * `ssmax publish …`: run the bundle publisher (docs/directory.md): builds the
 * signed organisation bundle from keyd and the certificate files and serves it
 * at https://HOST/.well-known/ssmax/bundle, publishing again on every change.
 */
import { parseArgs } from 'node:util';
import { PublisherConfigError, loadPublisherConfig, openPublisher } from '../publisher/config';
import { startPublisherOps } from '../ops/service-ops';
import { StateInUseError, lockPublisherState } from '../publisher/serial-state';
import { CliError, type CliIo, type CommandGroup, EXIT, exitOf, serveUntilSignal } from './command';

const HELP = `Usage: ssmax publish [run] --config FILE

Subcommands:
  run --config FILE     serve the signed organisation bundle over HTTPS until SIGINT/SIGTERM
                        (\`ssmax publish --config FILE\` does the same)

Run \`ssmax publish run --help\` for details. Configuration: config/ssmax-publisher.ini.`;

const RUN_HELP = `Usage: ssmax publish [run] --config FILE

Builds the organisation bundle (org CA chain, keyd's key versions, sealing
certificates, CRLs, abuse contact, inbound policy), signs it with the
bundle-signer key, verifies it as a peer would, and serves it at
https://HOST:PORT/.well-known/ssmax/bundle (health: /.well-known/ssmax/health).
Publishes again when keyd's keys, a certificate or a CRL file changes, and
before the bundle expires. Prints "publisher listening on HOST:PORT" when
ready; SIGINT or SIGTERM stop it gracefully.`;

function parse(args: string[], usage: string): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({
      args,
      options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
      strict: true,
    }).values;
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${usage}`, EXIT.usage);
  }
}

async function run(args: string[], io: CliIo): Promise<number> {
  const values = parse(args, RUN_HELP);
  if (values.help) return (io.out(RUN_HELP), EXIT.ok);
  if (typeof values.config !== 'string' || values.config === '') throw new CliError(`--config is required\n\n${RUN_HELP}`, EXIT.usage);
  let config: ReturnType<typeof loadPublisherConfig>;
  try {
    config = loadPublisherConfig(values.config);
  } catch (err) {
    throw new CliError((err as Error).message, err instanceof PublisherConfigError ? EXIT.config : exitOf(err).code);
  }
  // one publisher per state file, taken before the serial is read: the serial it grows in memory must be the only
  // one (src/publisher/serial-state.ts)
  let lock: Awaited<ReturnType<typeof lockPublisherState>>;
  try {
    lock = await lockPublisherState(config.stateFile);
  } catch (err) {
    throw new CliError((err as Error).message, err instanceof StateInUseError ? EXIT.unavailable : exitOf(err).code);
  }
  let opened: ReturnType<typeof openPublisher>;
  try {
    opened = openPublisher(config, { log: (l) => io.err(l) });
  } catch (err) {
    await lock.release();
    throw new CliError((err as Error).message, err instanceof PublisherConfigError ? EXIT.config : exitOf(err).code);
  }
  const { publisher } = opened;
  const close = () => {
    opened.close();
    void lock.release();
  };

  try {
    await publisher.start();
  } catch (err) {
    close();
    throw new CliError(`Cannot start publisher: ${(err as Error).message}`, exitOf(err).code);
  }
  let ops: Awaited<ReturnType<typeof startPublisherOps>>;
  try {
    ops = await startPublisherOps(config.file, publisher, config.pki.crls, (l) => io.err(l)); // [ops]: health and metrics (docs/operations.md)
  } catch (err) {
    await publisher.stop();
    close();
    throw new CliError(`Cannot start the publisher's ops listener: ${(err as Error).message}`, EXIT.failure);
  }
  return serveUntilSignal(
    io,
    `publisher listening on ${config.host}:${publisher.port} for ${config.domain}`,
    'publisher: stopping',
    async () => {
      await ops?.close();
      await publisher.stop();
      close();
    },
  );
}

export const publishCommand: CommandGroup = {
  summary: 'Publish the signed organisation bundle over HTTPS',
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === undefined) return (io.out(HELP), EXIT.usage);
    if (sub === '--help' || sub === '-h') return (io.out(HELP), EXIT.ok);
    if (sub === 'run') return run(rest, io);
    if (sub.startsWith('-')) return run(argv, io);
    throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
  },
};
