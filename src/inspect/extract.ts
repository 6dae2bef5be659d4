/**
 * What inspection looks at, from a decrypted message in memory: the text of
 * every text part (transfer encodings and charsets decoded — ISO-2022-JP,
 * Shift_JIS and EUC-JP included — through mailparser/libmime), HTML reduced to
 * text, and every attachment's name, type, size and bytes; attached messages
 * (message/rfc822) are opened in turn, to a bounded depth.
 */
import { simpleParser } from 'mailparser';

export interface ExtractedAttachment {
  readonly filename: string;
  readonly contentType: string;
  readonly size: number;
  readonly content: Buffer;
}

export interface Extracted {
  readonly texts: string[];
  readonly attachments: ExtractedAttachment[];
}

export const MAX_NESTED_MESSAGES = 3;

/**
 * HTML with each tag replaced by a space: what `/<[^>]*>/g` does, in linear
 * time (the pattern retried from every `<` of a run without `>`: 100 KB of
 * `<` took 23 s).
 */
export function withoutTags(html: string): string {
  const out: string[] = [];
  let at = 0;
  for (;;) {
    const lt = html.indexOf('<', at);
    const gt = lt < 0 ? -1 : html.indexOf('>', lt + 1);
    if (gt < 0) break;
    out.push(html.slice(at, lt), ' ');
    at = gt + 1;
  }
  out.push(html.slice(at));
  return out.join('');
}

export async function extractContent(message: Buffer, depth = 0): Promise<Extracted> {
  const parsed = await simpleParser(message, { skipImageLinks: true, skipTextLinks: true });
  const texts: string[] = [];
  if (parsed.subject) texts.push(parsed.subject);
  if (parsed.text) texts.push(parsed.text);
  else if (typeof parsed.html === 'string') texts.push(withoutTags(parsed.html));
  const attachments: ExtractedAttachment[] = [];
  for (const a of parsed.attachments) {
    const contentType = (a.contentType || 'application/octet-stream').toLowerCase();
    attachments.push({ filename: a.filename ?? '', contentType, size: a.size ?? a.content.length, content: a.content });
    if (contentType === 'message/rfc822' && depth < MAX_NESTED_MESSAGES) {
      const inner = await extractContent(a.content, depth + 1);
      texts.push(...inner.texts);
      attachments.push(...inner.attachments);
    } else if (contentType.startsWith('text/')) {
      texts.push(a.content.toString('utf8'));
    }
  }
  return { texts, attachments };
}
