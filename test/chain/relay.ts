/**
 * Test helper: a relay that re-encodes a message in transit, as MTAs and
 * gateways do — every leaf (but embedded messages) gets a new transfer encoding
 * and line width, and text leaves may be converted to another charset. The
 * message is split and rebuilt with mailsplit; headers other than the leaves'
 * Content-Type and Content-Transfer-Encoding are passed through.
 */
import { Splitter, type MimeNode, type SplitterChunk } from '@zone-eu/mailsplit';
import * as base64 from 'nodemailer/lib/base64';
import * as qp from 'nodemailer/lib/qp';
import libmime from 'libmime';
import type { Transform } from 'node:stream';
import { type EncodingChoices, charsetsFor, encodeCharset } from './mime-model';

function collect(transform: Transform, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    transform.on('data', (c: Buffer) => out.push(c));
    transform.on('end', () => resolve(Buffer.concat(out)));
    transform.on('error', reject);
    transform.end(input);
  });
}

async function reencodeLeaf(node: MimeNode, body: Buffer, choices: EncodingChoices): Promise<Buffer> {
  let bytes = await collect(node.getDecoder() as Transform, body);
  const isText = (node.contentType || 'text/plain').startsWith('text/');
  if (isText) {
    const decoder = libmime.createDecodeStream(node.charset || 'utf-8');
    if (decoder.supported) {
      const text = (await collect(decoder, bytes)).toString('utf-8');
      const targets = charsetsFor(text);
      const target = targets[choices.pick(targets.length)] ?? 'utf-8';
      bytes = encodeCharset(text, target);
      node.setCharset(target);
    }
  }
  const lines = bytes.toString('latin1').split('\r\n');
  const lineSafe = isText && lines.every((l) => l.length < 900 && !/[\r\n]/.test(l));
  const options = ['base64', 'quoted-printable', ...(lineSafe ? [bytes.every((b) => b < 0x80) ? '7bit' : '8bit'] : [])];
  const cte = options[choices.pick(options.length)] ?? 'base64';
  if (node.headers) node.headers.update('Content-Transfer-Encoding', cte);
  if (cte === 'base64') {
    const width = [76, 60, 8, 900][choices.pick(4)] ?? 76;
    return Buffer.from(base64.wrap(base64.encode(bytes), width), 'latin1');
  }
  if (cte === 'quoted-printable') {
    const encoded = isText ? qp.encode(bytes) : qp.encode(bytes).replace(/\r/g, '=0D').replace(/\n/g, '=0A');
    return Buffer.from(qp.wrap(encoded, [76, 30][choices.pick(2)] ?? 76), 'latin1');
  }
  return bytes;
}

/** Re-encodes every leaf of `message`; returns the relayed bytes. */
export function relay(message: Buffer, choices: EncodingChoices): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const splitter = new Splitter({ ignoreEmbedded: true });
    const stream = splitter as unknown as Transform;
    const out: (Buffer | Promise<Buffer>)[] = [];
    let pending: { node: MimeNode; body: Buffer[] } | undefined;
    const flush = () => {
      if (!pending) return;
      const { node, body } = pending;
      pending = undefined;
      if (node.multipart || node.contentType === 'message/rfc822') {
        out.push(node.getHeaders(), Buffer.concat(body));
        return;
      }
      // mailsplit gives an empty part before a sibling delimiter the delimiter's line end as body.
      const raw = Buffer.concat(body);
      const delimiterLineEnd = node.parentNode && (raw.toString('latin1') === '\r\n' || raw.toString('latin1') === '\n');
      const content = delimiterLineEnd ? Buffer.alloc(0) : raw;
      const trailer = node.root || delimiterLineEnd ? Buffer.from('\r\n') : Buffer.alloc(0);
      // Headers are taken after re-encoding: it updates Content-Type and Content-Transfer-Encoding.
      const encoded = reencodeLeaf(node, content, choices);
      out.push(encoded.then((b) => Buffer.concat([node.getHeaders(), b, trailer])));
    };
    splitter.on('data', (chunk: SplitterChunk) => {
      if (chunk.type === 'node') {
        flush();
        pending = { node: chunk as MimeNode, body: [] };
      } else if (chunk.type === 'body' && pending) {
        pending.body.push(chunk.value);
      } else {
        flush();
        out.push(chunk.value);
      }
    });
    stream.on('end', () => {
      flush();
      Promise.all(out).then((parts) => resolve(Buffer.concat(parts)), reject);
    });
    stream.on('error', reject);
    splitter.end(message);
  });
}
