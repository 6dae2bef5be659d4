import fc from 'fast-check';
import { bodyHash, readMessage, readMessageAgain } from '../../src/chain/body-hash';
import { parseSeal } from '../../src/chain/tags';
import { seal } from '../../src/chain/seal';
import { verifyChain } from '../../src/chain/verify-chain';
import { directory, makeOrg, now, sampleMessage } from './fixtures';

/**
 * seal() reuses the body hash its verification computed when only the root
 * header block changed. The invariant, whatever changed: the seal's bh= is
 * the body hash of the message it seals.
 */
const org = makeOrg('a.example');
const dir = directory(org);

async function sealedBh(original: Buffer, changed: Buffer): Promise<string> {
  const chain = await verifyChain(original, { lookup: dir.lookup, now });
  const out = await seal(changed, {
    domain: 'a.example',
    certRef: org.certRef,
    privateKey: org.keys.privateKey,
    now,
    verdicts: [],
    chain,
    trackingToken: new Uint8Array(8),
  });
  const field = out.field;
  return parseSeal(field.slice(field.indexOf(':') + 1)).bodyHash;
}

const swap = (m: Buffer, from: string, to: string): Buffer => {
  const s = m.toString('latin1');
  expect(s).toContain(from);
  return Buffer.from(s.replace(from, to), 'latin1');
};

describe('the body hash of verification is reused by seal only when it is still right', () => {
  const original = sampleMessage();

  test('a root field that does not shape the body changed: reused, equal to a fresh hash', async () => {
    const changed = swap(original, 'Subject: Quarterly figures', 'Subject: Other');
    const previous = (await readMessage(original)).reading;
    const again = await readMessageAgain(changed, previous);
    expect(again.structure).toBe(previous.structure); // taken over, not recomputed
    expect(again.bodyHash).toBe(await bodyHash(changed));
    expect(await sealedBh(original, changed)).toBe(await bodyHash(changed));
  });

  test('the root Content-Type changed (the body parses differently): recomputed', async () => {
    const changed = swap(original, 'multipart/mixed', 'multipart/alternative');
    const previous = (await readMessage(original)).reading;
    const again = await readMessageAgain(changed, previous);
    expect(again.structure).not.toBe(previous.structure);
    expect(again.bodyHash).not.toBe(previous.bodyHash);
    expect(await sealedBh(original, changed)).toBe(await bodyHash(changed));
  });

  test('one body byte changed: recomputed', async () => {
    const changed = swap(original, 'Hello Bob,', 'Hello Rob,');
    const previous = (await readMessage(original)).reading;
    expect((await readMessageAgain(changed, previous)).structure).not.toBe(previous.structure);
    expect(await sealedBh(original, changed)).toBe(await bodyHash(changed));
    expect(await bodyHash(changed)).not.toBe(previous.bodyHash);
  });

  test('bare LF line ends: bh= is still the hash of the sealed message', async () => {
    const lf = Buffer.from(original.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    const changed = swap(lf, 'Subject: Quarterly figures', 'Subject: Other');
    expect(await sealedBh(lf, changed)).toBe(await bodyHash(changed));
  });

  test('property: any edit of the header block or the body, bh= is the hash of the sealed message', async () => {
    const s = original.toString('latin1');
    const headEnd = s.indexOf('\r\n\r\n') + 4;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('subject', 'content-type-param', 'add-field', 'mime-version', 'body-byte', 'none'),
        fc.nat({ max: 1000 }),
        async (edit, n) => {
          let changed: string;
          switch (edit) {
            case 'subject':
              changed = s.replace('Subject: Quarterly figures', `Subject: v${n}`);
              break;
            case 'content-type-param':
              changed = s.replace(/^(Content-Type: multipart\/mixed;)/im, `$1 x-note="${n}";`);
              break;
            case 'add-field':
              changed = `X-Hop: ${n}\r\n${s}`;
              break;
            case 'mime-version':
              changed = s.replace(/^MIME-Version: 1\.0/im, 'MIME-Version: 1.0 (edited)');
              break;
            case 'body-byte': {
              const at = headEnd + (n % (s.length - headEnd));
              changed = s.slice(0, at) + (s[at] === 'a' ? 'b' : 'a') + s.slice(at + 1);
              break;
            }
            default:
              changed = s;
          }
          const message = Buffer.from(changed, 'latin1');
          let fresh: string;
          try {
            fresh = await bodyHash(message);
          } catch {
            return; // an edit that makes the message unreadable is not this property's concern
          }
          expect(await sealedBh(original, message)).toBe(fresh);
        },
      ),
      { numRuns: 60 },
    );
  });
});
