/**
 * The root header block of a raw message, split into its fields: the one
 * hand-written splitter of the project, for the places that read or rewrite
 * a few top-level fields without a MIME parse (mailsplit's Splitter does the
 * full parse where a message is walked part by part).
 *
 * A field is its first line and every folded continuation line (a line
 * starting with a space or tab), without its final line break. The block ends
 * at the first empty line; a message without one is all header. Time is
 * linear in the size of the message, whatever it holds (one indexOf, one
 * split on a fixed pattern with a one-character look-ahead, no backtracking).
 */

export interface HeaderBlock {
  /** The fields in order, folded lines kept as they are (latin1: one character per byte). */
  readonly fields: string[];
  /** Where the header block ends: just after the last field's line break (where the empty line starts), or the message's length. */
  readonly headEnd: number;
  /** Where the body starts (after the empty line), or the message's length when there is none. */
  readonly bodyStart: number;
  /** Whether an empty line separates header and body. */
  readonly separated: boolean;
}

/**
 * Splits the root header block of `message`. Lines end in CRLF; with
 * `bareLf`, a bare LF ends a line too (a spool file or a client's file), and
 * the block ends at whichever empty line comes first.
 */
export function splitHeaderBlock(message: Uint8Array, opts: { bareLf?: boolean } = {}): HeaderBlock {
  const raw = asBuffer(message);
  const end = findHeaderEnd(raw, opts);
  const head = raw.subarray(0, end.headEnd).toString('latin1');
  const fields = head.split(opts.bareLf ? /\r?\n(?![ \t])/ : /\r\n(?![ \t])/).filter((f) => f !== '');
  return { fields, ...end };
}

/** Where the root header block ends and the body starts (splitHeaderBlock without splitting the fields). */
export function findHeaderEnd(message: Uint8Array, opts: { bareLf?: boolean } = {}): Omit<HeaderBlock, 'fields'> {
  const raw = asBuffer(message);
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = opts.bareLf ? raw.subarray(0, crlf < 0 ? raw.length : crlf + 2).indexOf('\n\n') : -1;
  if (lf >= 0 && (crlf < 0 || lf < crlf)) return { headEnd: lf + 1, bodyStart: lf + 2, separated: true };
  if (crlf >= 0) return { headEnd: crlf + 2, bodyStart: crlf + 4, separated: true };
  return { headEnd: raw.length, bodyStart: raw.length, separated: false };
}

/**
 * The message without any field named `name` in its root header block
 * (CRLF or bare LF lines); every other byte is kept, and the message itself
 * is returned when it has no such field.
 */
export function withoutField(message: Uint8Array, name: string): Buffer {
  const raw = asBuffer(message);
  const { headEnd } = findHeaderEnd(raw, { bareLf: true });
  // each field with its folds and its own line break, so that joining them gives the bytes back
  const fields = raw
    .subarray(0, headEnd)
    .toString('latin1')
    .split(/(?<=\n)(?![ \t])/);
  if (!fields.some((f) => isField(f, name))) return raw;
  return Buffer.concat([Buffer.from(fields.filter((f) => !isField(f, name)).join(''), 'latin1'), raw.subarray(headEnd)]);
}

function asBuffer(message: Uint8Array): Buffer {
  return Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
}

/** Whether `field` is named `name` (case-insensitive; spaces or tabs allowed before the colon). */
export function isField(field: string, name: string): boolean {
  if (field.length <= name.length || field.slice(0, name.length).toLowerCase() !== name.toLowerCase()) return false;
  let at = name.length;
  while (field[at] === ' ' || field[at] === '\t') at++;
  return field[at] === ':';
}

/** The value of a field (after its colon), each fold (a line break and the space or tab after it) turned into one space. */
export function unfoldedValue(field: string): string {
  return field.slice(field.indexOf(':') + 1).replace(/\r\n[ \t]/g, ' ');
}

/** The unfolded, trimmed value of the first field named `name`, or undefined. */
export function firstValue(fields: readonly string[], name: string): string | undefined {
  const f = fields.find((x) => isField(x, name));
  return f === undefined ? undefined : unfoldedValue(f).trim();
}

/** RFC 5322 §2.1.1: a line of a message is at most 998 characters, and should be at most 78. */
export const MAX_LINE = 998;

/**
 * The lines of a field `Name:` followed by `pieces`, each after one space: a line is ended before a
 * piece that would take it past 78 characters (never on the first piece, never before an empty one,
 * so no line is whitespace alone). Joined with CRLF, unfolding gives `Name: ` and the pieces joined
 * with spaces back. One pass.
 */
export function foldLines(name: string, pieces: readonly string[]): string[] {
  const lines: string[] = [];
  let line = `${name}:`;
  for (const p of pieces) {
    if (p !== '' && line.length + 1 + p.length > 78 && line.length > name.length + 1) {
      lines.push(line);
      line = ` ${p}`;
    } else line += ` ${p}`;
  }
  lines.push(line);
  return lines;
}

/**
 * `Name: value` as a field of lines near 78 characters, folded before spaces of the value. A run
 * without spaces too long for one line (998 characters) cannot be folded: undefined.
 */
export function foldedField(name: string, value: string): string | undefined {
  const lines = foldLines(name, value.split(' '));
  return lines.some((l) => l.length > MAX_LINE) ? undefined : lines.join('\r\n');
}
