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
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(re)) {
    const body = (m[1] ?? '').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0 || body.length === 0) {
      throw new Error(`Cannot read PEM "${label}": the base64 body is damaged`);
    }
    out.push(new Uint8Array(Buffer.from(body, 'base64')));
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
