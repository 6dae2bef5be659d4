/**
 * How a failed file or socket operation is named in an error message: the
 * system error code when there is one ("ENOENT", "EACCES", …: short, stable,
 * greppable, and free of whatever the path or peer sent), else the error's
 * own message. One wording for every "Cannot read …" of the project.
 */

/** The error code of a Node system error (ENOENT, ECONNREFUSED…), else the message of the error (or the thrown value as text). */
export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && code !== '') return code;
  return err instanceof Error ? err.message : String(err);
}

/** The system error code of `err` (ENOENT…), or undefined when it has none. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** `Cannot read <what> "<file>": <code or message>`: the one wording of a file that could not be read. */
export function cannotRead(what: string, file: string, err: unknown): string {
  return `Cannot read ${what} "${file}": ${errnoText(err)}`;
}
