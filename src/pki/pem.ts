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
  for (let at = text.indexOf(begin); at >= 0; ) {
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

/** The single block with this label. */
export function fromPem(text: string, label: string): Uint8Array {
  const all = fromPemAll(text, label);
  if (all.length !== 1) throw new Error(`Cannot read PEM: expected one "${label}" block, found ${all.length}`);
  return all[0] as Uint8Array;
}
