/**
 * The console's templating (docs/console.md): a tagged template, `html`,
 * that escapes every interpolated value for HTML text and attribute values
 * unless it is already `Html` (built by `html` itself). Arrays are joined,
 * `undefined`, `null` and `false` print nothing. No other way to produce
 * markup exists in the console, so a value from keyd, a quarantined
 * message's envelope or a form can never become markup. Linear in the size
 * of what it prints.
 */

/** Markup made by `html` (safe to print as is). */
export class Html {
  constructor(readonly text: string) {}

  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Text for HTML content or a quoted attribute value: & < > " ' ` escaped. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

function print(value: Value): string {
  if (value === undefined || value === null || value === false) return '';
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return (value as readonly Value[]).map(print).join('');
  return escapeHtml(String(value));
}

/** Markup with every interpolation escaped (unless it is `Html`). */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += print(values[i]) + strings[i + 1]!;
  return new Html(out);
}
