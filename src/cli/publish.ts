/** `ssmax publish …` — placeholder until its work lands. */
import { type CommandGroup, EXIT } from './command';

export const publishCommand: CommandGroup = {
  summary: 'Publish the signed organisation bundle over HTTPS',
  async run(_argv, io) {
    io.err('not built yet');
    return EXIT.software;
  },
};
