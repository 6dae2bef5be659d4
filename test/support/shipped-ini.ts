import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A shipped config file's text. */
export function shippedIni(name: string): string {
  return readFileSync(join(__dirname, '..', '..', 'config', name), 'utf8');
}

const SECTION = /^\[([^\]]+)\]\s*$/;
const COMMENTED_SETTING = /^;([A-Za-z0-9_.-]+)=(.*)$/;

/** Every commented-out setting `;key=value`, as "section.key" → value (the commented default or example). */
export function commentedSettings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = '';
  for (const line of text.split(/\r?\n/)) {
    const s = SECTION.exec(line);
    if (s) section = s[1]!;
    const m = COMMENTED_SETTING.exec(line);
    if (m) out.set(`${section}.${m[1]}`, m[2]!);
  }
  return out;
}

/**
 * The file with every commented-out setting `;key=value` made active, except
 * the ones named in `examples` ("section.key"): those are examples of what an
 * operator may add (a peer, a route), not defaults, and stay commented.
 * Explanatory comments ("; text") are left alone.
 */
export function uncommentDefaults(text: string, examples: readonly string[] = []): string {
  let section = '';
  return text
    .split('\n')
    .map((line) => {
      const s = SECTION.exec(line);
      if (s) section = s[1]!;
      const m = COMMENTED_SETTING.exec(line);
      return m && !examples.includes(`${section}.${m[1]}`) ? line.slice(1) : line;
    })
    .join('\n');
}
