/**
 * Benchmark of the authentication chain (`npm run bench:chain`): seals per
 * second and chain verifications per second for a 5 KB and a 5 MB message,
 * beside raw ECDSA P-256 sign/verify and the structural body hash alone, all
 * in the same run. Figures are measured, never asserted.
 */
import { generateP256KeyPair, signP256, verifyP256 } from '../crypto/ecdsa';
import { bodyHash } from '../chain/body-hash';
import { certificateRef } from '../chain/certificate-lookup';
import { seal } from '../chain/seal';
import { verifyChain } from '../chain/verify-chain';
import { type BenchRow, measure } from './harness';

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const now = (): number => NOW;

/** A multipart/mixed message of about `size` bytes: a text part and a base64 attachment. */
function message(size: number): Buffer {
  const text = 'The figures for the quarter are attached; please check them before Friday.\r\n'.repeat(20);
  const binaryLength = Math.max(0, Math.floor(((size - text.length - 600) * 3) / 4));
  const binary = Buffer.alloc(binaryLength);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 131 + 7) & 0xff;
  const base64 = (binary.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
  return Buffer.from(
    [
      'From: Alice <alice@a.example>',
      'To: Bob <bob@b.example>',
      'Subject: Quarterly figures',
      'Date: Wed, 25 Nov 2026 12:00:00 +0000',
      'Message-ID: <bench@a.example>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="bench"',
      '',
      '--bench',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 7bit',
      '',
      text,
      '--bench',
      'Content-Type: application/octet-stream',
      'Content-Disposition: attachment; filename="figures.bin"',
      'Content-Transfer-Encoding: base64',
      '',
      base64,
      '--bench--',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

export async function run(): Promise<BenchRow[]> {
  const orgA = { keys: generateP256KeyPair(), certRef: certificateRef(Buffer.from('bench a.example')), domain: 'a.example' };
  const orgB = { keys: generateP256KeyPair(), certRef: certificateRef(Buffer.from('bench b.example')), domain: 'b.example' };
  const lookup = (r: { certRef: string }) => {
    const org = r.certRef === orgA.certRef ? orgA : r.certRef === orgB.certRef ? orgB : undefined;
    return org ? { publicKey: org.keys.publicKey, domain: org.domain } : undefined;
  };
  const token = new Uint8Array(48).fill(7);
  const rows: BenchRow[] = [];

  // Raw ECDSA over a seal-sized signing input (~800 bytes), the floor for every chain operation.
  const input = new Uint8Array(800).fill(1);
  const signature = signP256(orgA.keys.privateKey, input);
  const signRate = await measure(() => signP256(orgA.keys.privateKey, input));
  const verifyRate = await measure(() => verifyP256(orgA.keys.publicKey, input, signature));
  rows.push({ suite: 'chain', name: 'raw ECDSA P-256 sign (800 B)', rate: signRate, unit: 'ops/s', note: 'node:crypto' });
  rows.push({ suite: 'chain', name: 'raw ECDSA P-256 verify (800 B)', rate: verifyRate, unit: 'ops/s', note: 'node:crypto' });

  for (const [label, size, options] of [
    ['5 KB', 5 * 1024, {}],
    ['5 MB', 5 * 1024 * 1024, { roundMs: 1500, rounds: 3 }],
  ] as const) {
    const raw = message(size);
    const none = await verifyChain(raw, { lookup, now });
    const sealOptions = {
      domain: orgA.domain,
      certRef: orgA.certRef,
      privateKey: orgA.keys.privateKey,
      now,
      verdicts: [{ name: 'dlp', result: 'pass' as const }],
      trackingToken: token,
      chain: none,
    };
    const first = await seal(raw, sealOptions);
    const second = await seal(first.message, {
      domain: orgB.domain,
      certRef: orgB.certRef,
      privateKey: orgB.keys.privateKey,
      now,
      verdicts: [{ name: 'av', result: 'pass' }],
      chain: await verifyChain(first.message, { lookup, now }),
    });
    const check = await verifyChain(second.message, { lookup, now });
    if (check.result !== 'pass') throw new Error(`Bench setup: chain does not verify: ${check.summary}`);

    const hashRate = await measure(() => bodyHash(raw), options);
    const sealRate = await measure(() => seal(raw, sealOptions), options);
    const verifyChainRate = await measure(() => verifyChain(second.message, { lookup, now }), options);
    const mb = raw.length / 1e6;
    rows.push({
      suite: 'chain',
      name: `body hash, ${label} message`,
      rate: hashRate,
      unit: 'ops/s',
      note: `${(hashRate * mb).toFixed(1)} MB/s`,
    });
    rows.push({
      suite: 'chain',
      name: `seal i=1, ${label} message`,
      rate: sealRate,
      unit: 'ops/s',
      note: `${(sealRate / signRate).toFixed(3)}× raw sign; body hash + headers + sign`,
    });
    rows.push({
      suite: 'chain',
      name: `verifyChain (2 seals), ${label} message`,
      rate: verifyChainRate,
      unit: 'ops/s',
      note: `${(verifyChainRate / verifyRate).toFixed(3)}× raw verify; 2 ECDSA verifies + body hash`,
    });
  }
  return rows;
}
