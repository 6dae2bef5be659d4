import { accessSync, constants, mkdirSync, readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cannotRead, errnoCode, errnoText } from '../errors/errno';

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

/**
 * A command group made of subcommands: without one, or with --help / -h, it
 * prints `help` (exit 64 when no subcommand was given, 0 when help was asked
 * for); otherwise it runs `runSub`, and `errors` turns the group's own error
 * classes into CliErrors with their exit codes (anything it leaves is thrown on).
 */
export function subcommands(
  summary: string,
  help: string,
  runSub: (sub: string, rest: string[], io: CliIo) => Promise<number>,
  errors?: (err: unknown) => CliError | undefined,
): CommandGroup {
  return {
    summary,
    async run(argv, io) {
      const [sub, ...rest] = argv;
      if (sub === undefined || sub === '--help' || sub === '-h') {
        io.out(help);
        return sub === undefined ? EXIT.usage : EXIT.ok;
      }
      try {
        return await runSub(sub, rest, io);
      } catch (err) {
        throw errors?.(err) ?? err;
      }
    },
  };
}

/** Where a command writes; injectable so tests can capture output. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (text) => {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  },
  err: (text) => {
    process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
  },
};

/**
 * Exit codes of every `ssmax` command (docs/cli.md), from sysexits.h so
 * scripts can tell usage errors from failures. 1 and 2 are verdicts, not
 * errors: the command ran and the answer is "no" (a certificate or bundle
 * that does not verify, a broken audit chain, a recipient refused) or, for
 * `directory lookup`, "this domain has no SSMAX bundle".
 */
export const EXIT = {
  ok: 0,
  /** The command ran; the answer is negative (verification failed, something refused). */
  failure: 1,
  /** Wrong arguments or options (EX_USAGE). */
  usage: 64,
  /** An input file or message is malformed or does not verify as input (EX_DATAERR). */
  dataErr: 65,
  /** An input file, folder or named item does not exist or cannot be read, the --config file included (EX_NOINPUT). */
  noInput: 66,
  /** A service needed (keyd, a publisher, SMTP, the inspector) cannot be reached or refused the connection (EX_UNAVAILABLE). */
  unavailable: 69,
  /** A bug or an unexpected internal failure (EX_SOFTWARE). */
  software: 70,
  /** An output file or folder cannot be created (exists without --force, or not creatable) (EX_CANTCREAT). */
  cantCreate: 73,
  /** Reading or writing failed midway (EX_IOERR). */
  ioErr: 74,
  /** A temporary failure: try again later (EX_TEMPFAIL). */
  tempFail: 75,
  /** Permission denied on a file or folder (EX_NOPERM). */
  noPerm: 77,
  /** The configuration file is invalid: a bad or missing value, or a file it names is unusable (EX_CONFIG). */
  config: 78,
} as const;

/** An error whose message is meant for the user as is, with an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

const ERRNO_EXIT: Readonly<Record<string, number>> = {
  ENOENT: EXIT.noInput,
  ENOTDIR: EXIT.noInput,
  EACCES: EXIT.noPerm,
  EPERM: EXIT.noPerm,
  EEXIST: EXIT.cantCreate,
  EISDIR: EXIT.cantCreate,
  EROFS: EXIT.cantCreate,
  ENOSPC: EXIT.ioErr,
  EIO: EXIT.ioErr,
  EDQUOT: EXIT.ioErr,
  ECONNREFUSED: EXIT.unavailable,
  EHOSTUNREACH: EXIT.unavailable,
  ENETUNREACH: EXIT.unavailable,
  ECONNRESET: EXIT.unavailable,
  ENOTFOUND: EXIT.unavailable,
  ETIMEDOUT: EXIT.tempFail,
  EAI_AGAIN: EXIT.tempFail,
  EADDRINUSE: EXIT.unavailable,
  EADDRNOTAVAIL: EXIT.unavailable,
};

/**
 * The exit code and one-line message for any error a command lets escape:
 * CliError keeps its code; a configuration error (an error class named
 * `…ConfigError`) is 78; a system error (errno code, also as a `cause`) maps
 * by its code; anything else is 70. Never a stack trace.
 */
export function exitOf(err: unknown): { code: number; message: string } {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof CliError) return { code: err.exitCode, message };
  if (err instanceof Error && /ConfigError$/.test(err.name)) return { code: EXIT.config, message };
  // OpenSSL refusing a certificate or key file a configuration named (not a key, key and certificate not a pair).
  if (err instanceof Error && /^ERR_OSSL/.test(String(errnoCode(err))))
    return { code: EXIT.config, message: `a TLS certificate or key of the configuration cannot be used (OpenSSL: ${message})` };
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = (e as Error & { cause?: unknown }).cause, depth++) {
    const code = errnoCode(e);
    if (typeof code === 'string' && ERRNO_EXIT[code] !== undefined) return { code: ERRNO_EXIT[code], message };
  }
  return { code: EXIT.software, message };
}

/**
 * Checks that the --config file (or another named input) exists and can be
 * read, before a command loads it: every command answers a missing one the
 * same way (66, or 77 when it is not readable).
 */
export function requireReadable(path: string, what = 'config'): void {
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EACCES' || code === 'EPERM') throw new CliError(`Cannot read ${what} "${path}": permission denied`, EXIT.noPerm);
    throw new CliError(`Cannot read ${what} "${path}": no such file`, EXIT.noInput);
  }
  if (statSync(path).isDirectory()) throw new CliError(`Cannot read ${what} "${path}": it is a folder`, EXIT.noInput);
}

/** Option values as parseArgs gives them (a `multiple` option: a list). */
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/**
 * A subcommand's options, strictly (an unknown option or a missing value is
 * a usage error, 64, with the subcommand's usage); `--help`/`-h` is always
 * allowed. Lists are copied out of parseArgs' realm.
 */
export function parseOptions(
  args: readonly string[],
  options: Readonly<Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>>,
  usage: string,
  allowPositionals = true,
): { values: OptionValues; positionals: string[] } {
  try {
    const r = parseArgs({
      args: Array.from(args),
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals,
      strict: true,
    });
    const values: OptionValues = {};
    for (const [k, v] of Object.entries(r.values))
      values[k] = Array.isArray(v) ? Array.from(v, String) : (v as string | boolean | undefined);
    return { values, positionals: Array.from(r.positionals) };
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${usage}`, EXIT.usage);
  }
}

/** The value of a required string option (64 with the usage when it is missing or empty). */
export function requiredOption(value: unknown, name: string, usage: string): string {
  if (typeof value !== 'string' || value === '') throw new CliError(`--${name} is required\n\n${usage}`, EXIT.usage);
  return value;
}

/** A passphrase file's passphrase (its text less one final line break); undefined without a file; an empty one is refused (65). */
export function readPassphrase(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const p = readInputText(path, 'passphrase file').replace(/\r?\n$/, '');
  if (p.length === 0) throw new CliError(`Cannot use passphrase file "${path}": it is empty`, EXIT.dataErr);
  return p;
}

/**
 * The passphrase of a new private key (a CA's, a user profile's): written encrypted unless
 * --unencrypted-key asks otherwise; neither given is a usage error (64), said before anything
 * is made. `fileOption`: the option naming the passphrase file.
 */
export function newKeyPassphrase(values: OptionValues, fileOption: string, what: string): string | undefined {
  const file = typeof values[fileOption] === 'string' ? (values[fileOption] as string) : undefined;
  const plain = values['unencrypted-key'] === true;
  if (file !== undefined && plain) throw new CliError(`Cannot use --${fileOption} with --unencrypted-key: choose one`, EXIT.usage);
  if (file === undefined && !plain)
    throw new CliError(
      `Refusing to write the ${what} private key unencrypted: give --${fileOption} F (a file, 0600, holding its passphrase), or --unencrypted-key to write a plain PKCS#8 key on purpose`,
      EXIT.usage,
    );
  return readPassphrase(file);
}

/**
 * A service in the foreground: prints its ready line (`… listening on
 * HOST:PORT`, on stdout), waits for SIGINT or SIGTERM, says it is stopping
 * (on stderr, when it has a name for that) and stops it gracefully.
 */
export async function serveUntilSignal(
  io: CliIo,
  ready: string,
  stopping: string | undefined,
  stop: () => Promise<void> | void,
): Promise<number> {
  io.out(ready);
  await new Promise<void>((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  if (stopping) io.err(stopping);
  await stop();
  return EXIT.ok;
}

/** The bytes of an input file a command was given (66 when it cannot be read, naming `what` and the path). */
export function readInput(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CliError(cannotRead(what, path, err), EXIT.noInput);
  }
}

/** An input file as UTF-8 text (readInput). */
export function readInputText(path: string, what: string): string {
  return readInput(path, what).toString('utf8');
}

/** Checks that `path` is an existing folder (66 when it is not, 77 when it cannot be read). */
export function requireFolder(path: string, what: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
    if (isDir) accessSync(path, constants.R_OK | constants.X_OK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EACCES' || code === 'EPERM') throw new CliError(`Cannot read ${what} "${path}": permission denied`, EXIT.noPerm);
    throw new CliError(`Cannot read ${what} "${path}": no such folder`, EXIT.noInput);
  }
  if (!isDir) throw new CliError(`Cannot read ${what} "${path}": not a folder`, EXIT.noInput);
}

/** Creates an output folder (and its parents) with mode 0700 when it does not exist yet; 73 or 77 when it cannot be. */
export function createOutputDir(path: string): void {
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EACCES' || code === 'EPERM') throw new CliError(`Cannot create folder "${path}": permission denied`, EXIT.noPerm);
    throw new CliError(`Cannot create folder "${path}": ${errnoText(err)}`, EXIT.cantCreate);
  }
  if (!statSync(path).isDirectory()) throw new CliError(`Cannot create folder "${path}": a file of that name exists`, EXIT.cantCreate);
}
