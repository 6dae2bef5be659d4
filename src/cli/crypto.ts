/** `ssmax crypto …`: the crypto core's round trip as a small demo (grows into `ssmax demo`). */
import { type CommandGroup, EXIT } from './command';

export const cryptoCommand: CommandGroup = {
  summary: 'Crypto core tools (demo: the encryption chain round trip)',
  async run(argv, io) {
    if (argv.length === 0 || argv.includes('--help')) {
      io.out('Usage: ssmax crypto demo');
      return argv.length === 0 ? EXIT.usage : EXIT.ok;
    }
    io.err(`unknown subcommand "${argv[0]}"`);
    return EXIT.usage;
  },
};
