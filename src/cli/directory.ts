/** `ssmax directory …` — placeholder until its work lands. */
import { type CommandGroup, EXIT } from './command';

export const directoryCommand: CommandGroup = {
  summary: 'Peer directory: fetch, verify and cache the bundles of peers; status',
  async run(_argv, io) {
    io.err('not built yet');
    return EXIT.software;
  },
};
