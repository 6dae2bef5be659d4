/**
 * The shape of one `ssmax` command group (`ssmax ca …`, `ssmax keyd …`, …).
 * The CLI only parses arguments and calls exported library functions
 * (STYLE.md); each group lives in its own file under src/cli/ and is listed
 * once in src/cli/main.ts.
 */
export interface CommandGroup {
  /** One line for `ssmax --help`. */
  readonly summary: string;
  /** Runs the group with the arguments after its name; resolves to the exit code. */
  run(argv: string[], io: CliIo): Promise<number>;
}

/** Where a command writes; injectable so tests can capture output. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (text) => { process.stdout.write(text.endsWith('\n') ? text : `${text}\n`); },
  err: (text) => { process.stderr.write(text.endsWith('\n') ? text : `${text}\n`); },
};

/** Exit codes (sysexits.h), so scripts can tell usage errors from failures. */
export const EXIT = { ok: 0, failure: 1, usage: 64, dataErr: 65, noInput: 66, software: 70, ioErr: 74 } as const;

/** An error whose message is meant for the user as is, with an exit code. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.failure) {
    super(message);
    this.name = 'CliError';
  }
}
