/**
 * Round-trip properties of the chain (fast-check): a sealed message written
 * again in other transfer encodings, line widths, charsets, filename encodings
 * and boundaries still verifies; any change a reader would see — to a
 * protected header, to the MIME tree, or to decoded content — fails.
 */
import fc from 'fast-check';
import { prependField } from '../../src/chain/message-fields';
import { seal } from '../../src/chain/seal';
import { signUser, verifyUser } from '../../src/chain/user-signature';
import { verifyChain } from '../../src/chain/verify-chain';
import { ALICE, TRACKING_TOKEN, directory, makeOrg, makeUser, now } from './fixtures';
import { type Message, type Part, render, seededChoices } from './mime-model';
import { relay } from './relay';

// SSMAX_FC_SCALE=20 npx jest test/chain/roundtrip runs twenty times as many cases (a deeper search).
const SCALE = Math.max(1, Number(process.env.SSMAX_FC_SCALE ?? 1));
const runs = (n: number): number => n * SCALE;

const alice = makeUser(ALICE);
const orgA = makeOrg('a.example');
const orgB = makeOrg('b.example');
const opts = { lookup: directory(alice, orgA, orgB).lookup, now };

// No "-" (boundaries start with it), no lone CR/LF: line breaks are CRLF.
const CHARS = [
  ...'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789.,:;!?()',
  'é',
  'ü',
  'ß',
  '日',
  '本',
  '語',
  'の',
  'テ',
  'キ',
  'ス',
  'ト',
  'あ',
  'い',
  '漢',
  '字',
  '\r\n',
];
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

const textArb = fc.array(fc.constantFrom(...CHARS), { maxLength: 120 }).map((chars) => chars.join(''));
const filenameArb = fc.option(fc.constantFrom('report.pdf', '報告書.pdf', 'données.txt', 'a b.bin'), { nil: undefined });
const dispositionArb = fc.option(fc.constantFrom('inline' as const, 'attachment' as const), { nil: undefined });

const partArb: fc.Arbitrary<Part> = fc.letrec<{ part: Part }>((tie) => ({
  part: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc
      .record({
        kind: fc.constant('text' as const),
        subtype: fc.constantFrom('plain' as const, 'html' as const),
        text: textArb,
        filename: filenameArb,
        disposition: dispositionArb,
      })
      .map((p) => (p.disposition ? p : { kind: p.kind, subtype: p.subtype, text: p.text })),
    fc
      .record({
        kind: fc.constant('binary' as const),
        contentType: fc.constantFrom('application/octet-stream', 'image/png', 'application/pdf', 'application/ssmax-encrypted; v=1'),
        bytes: fc.uint8Array({ maxLength: 200 }),
        filename: filenameArb,
        disposition: dispositionArb,
      })
      .map((p) => (p.disposition ? p : { kind: p.kind, contentType: p.contentType, bytes: p.bytes })),
    fc.record({
      kind: fc.constant('multipart' as const),
      subtype: fc.constantFrom('mixed' as const, 'alternative' as const, 'related' as const),
      children: fc.array(tie('part'), { minLength: 1, maxLength: 3 }),
    }),
    fc.record({
      kind: fc.constant('message' as const),
      headers: fc.constant([
        ['From', 'c@c.example'],
        ['Subject', 'Forwarded'],
      ] as const),
      body: tie('part'),
    }),
  ),
})).part;

const messageArb: fc.Arbitrary<Message> = fc
  .record({
    subject: fc.stringMatching(/^[A-Za-z0-9 ]{1,30}$/),
    cc: fc.boolean(),
    capsules: fc.array(fc.stringMatching(/^[A-Za-z0-9]{4,12}$/), { maxLength: 2 }),
    body: partArb,
  })
  .map(({ subject, cc, capsules, body }) => ({
    headers: [
      ['From', `Alice <${ALICE}>`],
      ['To', 'bob@b.example'],
      ...(cc ? [['Cc', 'carol@b.example'] as const] : []),
      ['Subject', subject],
      ['Date', 'Wed, 25 Nov 2026 12:00:00 +0000'],
      ['Message-ID', '<p1@a.example>'],
      ...capsules.map((c, i) => ['SSMAX-Capsule', `k=org-v${i}; e=${c}; f=${c}`] as const),
    ],
    body,
  }));

async function sealFirst(raw: Buffer) {
  const chain = await verifyChain(raw, opts);
  return seal(raw, {
    domain: 'a.example',
    certRef: orgA.certRef,
    privateKey: orgA.keys.privateKey,
    now,
    verdicts: [{ name: 'dlp', result: 'pass' }],
    trackingToken: TRACKING_TOKEN,
    chain,
  });
}

// ---- mutations a reader would see -------------------------------------------------------

type Mutation = (message: Message, pick: (n: number) => number) => Message | undefined;

function leaves(part: Part, path: number[] = []): number[][] {
  if (part.kind === 'multipart') return part.children.flatMap((c, i) => leaves(c, [...path, i]));
  if (part.kind === 'message') return leaves(part.body, [...path, 0]);
  return [path];
}

function multiparts(part: Part, path: number[] = []): number[][] {
  if (part.kind === 'multipart') return [path, ...part.children.flatMap((c, i) => multiparts(c, [...path, i]))];
  if (part.kind === 'message') return multiparts(part.body, [...path, 0]);
  return [];
}

function update(part: Part, path: readonly number[], fn: (p: Part) => Part): Part {
  if (path.length === 0) return fn(part);
  const [head, ...rest] = path;
  if (part.kind === 'multipart') return { ...part, children: part.children.map((c, i) => (i === head ? update(c, rest, fn) : c)) };
  if (part.kind === 'message') return { ...part, body: update(part.body, rest, fn) };
  return part;
}

function choose<T>(items: readonly T[], pick: (n: number) => number): T | undefined {
  return items.length === 0 ? undefined : items[pick(items.length)];
}

const mutations: Record<string, Mutation> = {
  'flip a protected header': (m, pick) => {
    const index = pick(m.headers.length);
    return { ...m, headers: m.headers.map(([n, v], i) => [n, i === index ? `${v}x` : v] as const) };
  },
  'add a protected header': (m, pick) => {
    const extra = choose(
      [
        ['Cc', 'mallory@evil.example'],
        ['To', 'mallory@evil.example'],
        ['SSMAX-Capsule', 'k=evil; e=AA; f=BB'],
        ['Reply-To', 'mallory@evil.example'],
      ] as const,
      pick,
    );
    return extra ? { ...m, headers: [...m.headers, extra] } : undefined;
  },
  'remove a protected header': (m, pick) => {
    const index = pick(m.headers.length);
    return { ...m, headers: m.headers.filter((_, i) => i !== index) };
  },
  'reorder capsules': (m) => {
    const capsules = m.headers.filter(([n]) => n === 'SSMAX-Capsule');
    if (capsules.length < 2 || capsules[0]?.[1] === capsules[1]?.[1]) return undefined;
    const others = m.headers.filter(([n]) => n !== 'SSMAX-Capsule');
    return { ...m, headers: [...others, ...capsules.reverse()] };
  },
  'remove a MIME part': (m, pick) => {
    const path = choose(
      multiparts(m.body).filter((p) => {
        let node: Part | undefined = m.body;
        for (const i of p) node = node?.kind === 'multipart' ? node.children[i] : node?.kind === 'message' ? node.body : undefined;
        return node?.kind === 'multipart' && node.children.length >= 2;
      }),
      pick,
    );
    if (!path) return undefined;
    return { ...m, body: update(m.body, path, (p) => (p.kind === 'multipart' ? { ...p, children: p.children.slice(1) } : p)) };
  },
  'add a MIME part': (m, pick) => {
    const path = choose(multiparts(m.body), pick);
    if (!path) return undefined;
    return {
      ...m,
      body: update(m.body, path, (p) =>
        p.kind === 'multipart' ? { ...p, children: [...p.children, { kind: 'text', subtype: 'plain', text: 'added' }] } : p,
      ),
    };
  },
  'reorder MIME parts': (m, pick) => {
    const path = choose(multiparts(m.body), pick);
    if (!path) return undefined;
    let changed = false;
    const body = update(m.body, path, (p) => {
      if (p.kind !== 'multipart' || p.children.length < 2) return p;
      const [first, second, ...rest] = p.children;
      if (!first || !second || JSON.stringify(first) === JSON.stringify(second)) return p;
      changed = true;
      return { ...p, children: [second, first, ...rest] };
    });
    return changed ? { ...m, body } : undefined;
  },
  'change a part type, disposition or filename': (m, pick) => {
    const path = choose(leaves(m.body), pick);
    if (!path) return undefined;
    const which = pick(3);
    return {
      ...m,
      body: update(m.body, path, (p) => {
        if (p.kind === 'text')
          return which === 0
            ? { ...p, subtype: p.subtype === 'plain' ? 'html' : 'plain' }
            : { ...p, disposition: p.disposition === 'attachment' ? 'inline' : 'attachment', filename: `${p.filename ?? 'x'}.exe` };
        if (p.kind === 'binary')
          return which === 0
            ? { ...p, contentType: 'application/x-msdownload' }
            : { ...p, disposition: p.disposition === 'attachment' ? 'inline' : 'attachment', filename: `${p.filename ?? 'x'}.exe` };
        return p;
      }),
    };
  },
  'change decoded content': (m, pick) => {
    const path = choose(leaves(m.body), pick);
    if (!path) return undefined;
    return {
      ...m,
      body: update(m.body, path, (p) => {
        if (p.kind === 'text') {
          const chars = [...p.text];
          const positions = chars.map((c, i) => (c === '\r\n' || c === '\r' || c === '\n' ? -1 : i)).filter((i) => i >= 0);
          const at = choose(positions, pick);
          if (at === undefined) return { ...p, text: `${p.text}x` };
          const old = chars[at] ?? '';
          const replacement = [...LETTERS].filter((c) => c !== old.toLowerCase() && c !== old)[pick(LETTERS.length - 1)] ?? 'q';
          chars[at] = replacement;
          return { ...p, text: chars.join('') };
        }
        if (p.kind === 'binary') {
          if (p.bytes.length === 0) return { ...p, bytes: new Uint8Array([1]) };
          const bytes = Uint8Array.from(p.bytes);
          const at = pick(bytes.length);
          bytes[at] = (bytes[at] ?? 0) ^ (1 + pick(255));
          return { ...p, bytes };
        }
        return p;
      }),
    };
  },
};

describe('round trip through re-encoding (property)', () => {
  it('a sealed message re-encoded (transfer encoding, line width, charset, filename encoding, boundaries) still verifies', async () => {
    let differentBytes = 0;
    await fc.assert(
      fc.asyncProperty(messageArb, fc.integer({ min: 1 }), fc.integer({ min: 1 }), async (model, seedA, seedB) => {
        const original = render(model, seededChoices(seedA));
        const reencoded = render(model, seededChoices(seedB));
        if (!original.equals(reencoded)) differentBytes++;
        const sealed = await sealFirst(original);
        const result = await verifyChain(prependField(reencoded, sealed.field), opts);
        expect(result.summary).toBe('ssmax-chain=pass header.d=a.example header.i=1');
      }),
      { numRuns: runs(100) },
    );
    // The property is not vacuous: most runs verified other bytes than were sealed.
    expect(differentBytes).toBeGreaterThan(runs(60));
  });

  it('a sealed message passed through a re-encoding relay (the sealed bytes themselves, split and rebuilt) still verifies', async () => {
    let differentBytes = 0;
    await fc.assert(
      fc.asyncProperty(messageArb, fc.integer({ min: 1 }), fc.integer({ min: 1 }), async (model, seedA, seedB) => {
        const sealed = await sealFirst(render(model, seededChoices(seedA)));
        const relayed = await relay(sealed.message, seededChoices(seedB));
        if (!relayed.equals(sealed.message)) differentBytes++;
        expect((await verifyChain(relayed, opts)).summary).toBe('ssmax-chain=pass header.d=a.example header.i=1');
      }),
      { numRuns: runs(60) },
    );
    expect(differentBytes).toBeGreaterThan(runs(25));
  });

  it('the relay is not a no-op on content: tampering after it still fails', async () => {
    const model: Message = {
      headers: [
        ['From', ALICE],
        ['To', 'bob@b.example'],
      ],
      body: { kind: 'text', subtype: 'plain', text: '日本語のテキスト' },
    };
    const sealed = await sealFirst(render(model, seededChoices(3)));
    const relayed = await relay(sealed.message, seededChoices(5));
    expect((await verifyChain(relayed, opts)).result).toBe('pass');
    const tampered = await relay(
      Buffer.from(sealed.message.toString('latin1').replace('To: bob@b.example', 'To: eve@b.example'), 'latin1'),
      seededChoices(5),
    );
    expect(await verifyChain(tampered, opts)).toMatchObject({ result: 'fail', reason: 'header-hash-mismatch' });
  });

  it('a user-signed message re-encoded still verifies', async () => {
    await fc.assert(
      fc.asyncProperty(messageArb, fc.integer({ min: 1 }), fc.integer({ min: 1 }), async (model, seedA, seedB) => {
        const signed = await signUser(render(model, seededChoices(seedA)), {
          signer: ALICE,
          certRef: alice.certRef,
          privateKey: alice.keys.privateKey,
          now,
        });
        const relayed = prependField(render(model, seededChoices(seedB)), signed.field);
        const result = await verifyUser(relayed, opts);
        expect(result.result).toBe('pass');
        expect(result.signerMatchesFrom).toBe(true);
      }),
      { numRuns: runs(30) },
    );
  });

  it('a chain of two seals, re-encoded between and after the hops, still verifies', async () => {
    await fc.assert(
      fc.asyncProperty(messageArb, fc.integer({ min: 1 }), fc.integer({ min: 1 }), fc.integer({ min: 1 }), async (model, s1, s2, s3) => {
        const first = await sealFirst(render(model, seededChoices(s1)));
        const atB = prependField(render(model, seededChoices(s2)), first.field);
        const chain = await verifyChain(atB, opts);
        const second = await seal(atB, {
          domain: 'b.example',
          certRef: orgB.certRef,
          privateKey: orgB.keys.privateKey,
          now,
          verdicts: [{ name: 'av', result: 'pass' }],
          chain,
        });
        const delivered = prependField(prependField(render(model, seededChoices(s3)), first.field), second.field);
        expect((await verifyChain(delivered, opts)).summary).toBe('ssmax-chain=pass header.d=b.example header.i=2');
      }),
      { numRuns: runs(20) },
    );
  });

  it.each(Object.keys(mutations))('%s after sealing fails verification', async (name) => {
    const mutate = mutations[name] as Mutation;
    await fc.assert(
      fc.asyncProperty(
        messageArb,
        fc.integer({ min: 1 }),
        fc.integer({ min: 1 }),
        fc.integer({ min: 1 }),
        async (model, seedA, seedB, seedM) => {
          const mutated = mutate(model, seededChoices(seedM).pick);
          fc.pre(mutated !== undefined);
          const sealed = await sealFirst(render(model, seededChoices(seedA)));
          const tampered = prependField(render(mutated as Message, seededChoices(seedB)), sealed.field);
          const result = await verifyChain(tampered, opts);
          expect(result.result).toBe('fail');
        },
      ),
      { numRuns: runs(25) },
    );
  });
});
