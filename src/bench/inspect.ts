/**
 * Inspection (issue 8): the time the inspection step adds to a gateway hop,
 * and its throughput, for 5 KB and 5 MB messages — beside the hop's own work
 * without inspection, in the same run. In process, with a real clamd:
 *   hop without inspection: blinded re-encryption (both halves) + capsule
 *     replacement + chain verification + seal;
 *   DLP step: blinded decryption with proof (both halves) + decryption in
 *     memory + DLP (the shipped rules);
 *   AV step: blinded decryption with proof + decryption + clamd INSTREAM.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { seal } from '../chain/seal';
import { verifyChain } from '../chain/verify-chain';
import {
  answerBlindedDecryption, blindForDecryption, blindForReencryption, completeBlindedDecryption, generateEncryptionKeyPair, generateP256KeyPair, defaultGroup,
  keyIdOf, systemRng, transformBlinded, unblindReencryption,
} from '../crypto';
import { freePort } from '../demo/haraka';
import { collect, decryptMessage, encryptMessage, listCapsules, replaceCapsules } from '../envelope';
import { ClamdClient } from '../inspect/clamd';
import { startClamd } from '../inspect/clamd-process';
import { parseDlpRules } from '../inspect/dlp';
import { inspectInbound, inspectOutbound } from '../inspect/inspect';
import { type BenchRow, measure } from './harness';

const g = defaultGroup;

function message(bytes: number): Buffer {
  const text = 'Quarterly figures as agreed; the attachment has the details. Reply by Friday.\r\n'.repeat(40);
  const attachment = Buffer.alloc(Math.max(0, bytes - 4000), 7).toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: figures\r\nMessage-ID: <b@a.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="q"\r\n\r\n' +
      `--q\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${text}\r\n--q\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="d.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n${attachment}\r\n--q--\r\n`,
  );
}

export async function run(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-bench-inspect-'));
  const port = await freePort();
  const clamd = await startClamd(dir, port);
  const rows: BenchRow[] = [];
  try {
    const org = generateEncryptionKeyPair(g, systemRng);
    const peer = generateEncryptionKeyPair(g, systemRng);
    const orgR = { keyId: keyIdOf(g, org.publicKey), publicKey: org.publicKey };
    const peerId = keyIdOf(g, peer.publicKey);
    const sealKey = generateP256KeyPair().privateKey;
    const rules = parseDlpRules(parse(readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8')) as Record<string, Record<string, unknown>>);
    const av = { client: new ClamdClient({ host: '127.0.0.1', port, maxConnections: 4 }), onInfected: 'reject' as const, onUnavailable: 'tempfail' as const };

    for (const [label, size] of [['5 KB', 5 * 1024], ['5 MB', 5 * 1024 * 1024]] as const) {
      const plain = message(size);
      const enc = await collect(encryptMessage(plain, [orgR], { group: g, rng: systemRng }));
      const [capsule] = await listCapsules(enc);
      const opts = size > 100000 ? { roundMs: 1500, rounds: 3 } : {};
      const plaintextOf = async () => {
        const b = blindForDecryption(g, capsule!, systemRng);
        const a = answerBlindedDecryption(g, org.privateKey, org.publicKey, b.request, systemRng);
        const r = completeBlindedDecryption(g, b.blinding, a, org.publicKey);
        if (!r.ok) throw new Error(r.reason);
        return collect(decryptMessage(enc, { messageKey: r.messageKey }, { group: g }));
      };
      const hop = await measure(async () => {
        const b = blindForReencryption(g, capsule!, systemRng);
        const t = transformBlinded(g, org.privateKey, b.request, peer.publicKey, systemRng);
        const moved = await collect(replaceCapsules(enc, [unblindReencryption(g, b.blinding, t, { keyId: peerId })]));
        const chain = await verifyChain(moved, { now: () => Date.now(), lookup: () => undefined });
        await seal(moved, { domain: 'a.example', certRef: Buffer.alloc(32, 1).toString('base64url'), privateKey: sealKey, now: () => Date.now(), verdicts: [], trackingToken: systemRng(64), chain });
      }, opts);
      const dlp = await measure(async () => {
        const r = await inspectOutbound(await plaintextOf(), { rules });
        if (r.decision.action !== 'pass') throw new Error(`bench message matched ${JSON.stringify(r.decision)}`);
      }, opts);
      const avRate = await measure(async () => {
        const r = await inspectInbound(await plaintextOf(), av);
        if (r.decision.action !== 'pass') throw new Error(`bench message flagged ${JSON.stringify(r.decision)}`);
      }, opts);
      const ms = (rate: number) => (1000 / rate).toFixed(size > 100000 ? 0 : 2);
      const mb = (rate: number) => ((rate * plain.length) / 1e6).toFixed(1);
      rows.push({ suite: 'inspect', name: `${label}: hop without inspection (re-encrypt, verify chain, seal)`, rate: hop, unit: 'msg/s', note: `${ms(hop)} ms/msg; baseline` });
      rows.push({ suite: 'inspect', name: `${label}: DLP step (blinded decryption + proof, decrypt, rules)`, rate: dlp, unit: 'msg/s', note: `adds ${ms(dlp)} ms/msg (${(hop / dlp).toFixed(2)}x the hop); ${mb(dlp)} MB/s` });
      rows.push({ suite: 'inspect', name: `${label}: AV step (blinded decryption + proof, decrypt, clamd)`, rate: avRate, unit: 'msg/s', note: `adds ${ms(avRate)} ms/msg (${(hop / avRate).toFixed(2)}x the hop); ${mb(avRate)} MB/s` });
    }
  } finally {
    await clamd.stop();
  }
  return rows;
}
