/**
 * PEM armour (RFC 7468): strict enough to reject garbage, lenient about
 * surrounding text and line endings.
 */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Every block with this label, in order; throws if there is none or one is damaged. */
export function fromPemAll(text: string, label: string): Uint8Array[] {
  // indexOf, not a lazy `BEGIN([\s\S]*?)END` pattern with /g: that rescans to the end of the
  // text from every BEGIN without an END (quadratic).
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const out: Uint8Array[] = [];
  for (let at = text.indexOf(begin); at >= 0;) {
    const stop = text.indexOf(end, at + begin.length);
    if (stop < 0) break;
    const body = text.slice(at + begin.length, stop).replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0 || body.length === 0) {
      throw new Error(`Cannot read PEM "${label}": the base64 body is damaged`);
    }
    out.push(new Uint8Array(Buffer.from(body, 'base64')));
    at = text.indexOf(begin, stop + end.length);
  }
  if (out.length === 0) throw new Error(`Cannot read PEM: no "${label}" block found`);
  return out;
}

/** Scans a PEM label (`[A-Z0-9 ]+`) followed by "-----" from `at`; its end, or -1. */
function labelEnd(text: string, at: number): number {
  let i = at;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 32)) break;
  }
  return i > at && text.startsWith('-----', i) ? i : -1;
}

/**
 * Every armoured block of the text as text (BEGIN line to END line, ending in
 * a newline), in order; only blocks labelled `label` if it is given. What
 * `/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----\n?/g` matched, in
 * linear time: that pattern rescans to the end of the text from every BEGIN
 * without a matching END. Here the END lines are indexed once, by label, and
 * each BEGIN takes the first END of its label after it.
 */
export function pemTexts(text: string, label?: string): string[] {
  const ends = new Map<string, { at: number[]; next: number }>();
  for (let at = text.indexOf('-----END '); at >= 0; at = text.indexOf('-----END ', at + 1)) {
    const stop = labelEnd(text, at + 9);
    if (stop < 0) continue;
    const name = text.slice(at + 9, stop);
    const list = ends.get(name) ?? { at: [], next: 0 };
    list.at.push(at);
    ends.set(name, list);
  }
  const out: string[] = [];
  for (let at = text.indexOf('-----BEGIN '); at >= 0;) {
    const stop = labelEnd(text, at + 11);
    const name = stop < 0 ? '' : text.slice(at + 11, stop);
    const list = ends.get(name);
    if (stop >= 0 && (label === undefined || name === label) && list) {
      const bodyStart = stop + 5;
      while (list.next < list.at.length && list.at[list.next]! < bodyStart + 1) list.next++; // the body is at least one character
      if (list.next < list.at.length) {
        let after = list.at[list.next]! + 9 + name.length + 5;
        if (text.charCodeAt(after) === 10) after++;
        const block = text.slice(at, after);
        out.push(block.endsWith('\n') ? block : `${block}\n`);
        at = text.indexOf('-----BEGIN ', after);
        continue;
      }
    }
    at = text.indexOf('-----BEGIN ', at + 1);
  }
  return out;
}

/** The single block with this label. */
export function fromPem(text: string, label: string): Uint8Array {
  const all = fromPemAll(text, label);
  if (all.length !== 1) throw new Error(`Cannot read PEM: expected one "${label}" block, found ${all.length}`);
  return all[0] as Uint8Array;
}
