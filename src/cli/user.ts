/** `ssmax user …` — placeholder until its work lands. */
import { type CommandGroup, EXIT } from './command';

export const userCommand: CommandGroup = {
  summary: 'User side: sign and encrypt, send, open (verify and decrypt)',
  async run(_argv, io) {
    io.err('not built yet');
    return EXIT.software;
  },
};
