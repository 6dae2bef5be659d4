/** `ssmax ca …` — placeholder until the PKI work lands. */
import { type CommandGroup, EXIT } from './command';

export const caCommand: CommandGroup = {
  summary: 'Certificate authority: root, organisation CAs, certificates, CRLs, bundles',
  async run(_argv, io) {
    io.err('not built yet');
    return EXIT.software;
  },
};
