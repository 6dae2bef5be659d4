/**
 * Inspection (issues 8 and 17): the cost per message of the inspection step,
 * for 5 KB and 5 MB messages, beside a gateway hop that really verifies a
 * sealed message, in the same run. In process, with a real clamd (temporary
 * files on a tmpfs, as the project starts it):
 *   baseline hop: the message arrives sealed by a.example (i=1, ECDSA P-256)
 *     and encrypted to b.example; b.example verifies the chain (the seal's
 *     signature and body hash: result pass, checked), moves the capsule to
 *     a recipient's key (blinded re-encryption, both halves), replaces it and
 *     seals i=2;
 *   DLP step: blinded decryption with proof (both halves) + decryption in
 *     memory + text from every part (both alternatives, HTML rendered) + the
 *     shipped rules;
 *   AV step: blinded decryption with proof + decryption + clamd INSTREAM.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIni } from '../config/ini';
import { certificateRef } from '../chain/certificate-lookup';
import { seal } from '../chain/seal';
import { verifyChain } from '../chain/verify-chain';
import {
  answerBlindedDecryption,
  blindForDecryption,
  blindForReencryption,
  completeBlindedDecryption,
  generateEncryptionKeyPair,
  generateP256KeyPair,
  defaultGroup,
  keyIdOf,
  systemRng,
  transformBlinded,
  unblindReencryption,
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
  const text = 'Quarterly figures as agreed; the attachment has the details. Reply by Friday.\r\n'.repeat(30);
  const html = `<html><body>${'<p>Quarterly figures as <b>agreed</b>; the attachment has the <i>details</i>. Reply by Friday.</p>\r\n'.repeat(30)}</body></html>`;
  const attachment = Buffer.alloc(Math.max(0, bytes - 9000), 7)
    .toString('base64')
    .replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: figures\r\nMessage-ID: <b@a.example>\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="q"\r\n\r\n' +
      `--q\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${text}\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n--alt--\r\n` +
      `--q\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="d.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n${attachment}\r\n--q--\r\n`,
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
    const sealerA = { keys: generateP256KeyPair(), certRef: certificateRef(Buffer.from('bench a.example')) };
    const sealerB = { keys: generateP256KeyPair(), certRef: certificateRef(Buffer.from('bench b.example')) };
    const lookup = (r: { certRef: string }) =>
      r.certRef === sealerA.certRef ? { publicKey: sealerA.keys.publicKey, domain: 'a.example' } : undefined;
    const now = () => Date.now();
    /** `message` sealed by `sealer` for `domain` with one passing verdict, over the chain verified so far. */
    const sealBy = (
      sealer: typeof sealerA,
      domain: string,
      message: Uint8Array,
      verdict: string,
      chain: Awaited<ReturnType<typeof verifyChain>>,
      trackingToken?: Uint8Array,
    ) =>
      seal(message, {
        domain,
        certRef: sealer.certRef,
        privateKey: sealer.keys.privateKey,
        now,
        verdicts: [{ name: verdict, result: 'pass' }],
        ...(trackingToken ? { trackingToken } : {}),
        chain,
      });
    const rules = parseDlpRules(
      parseIni(readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-dlp.ini'), 'utf8')) as Record<string, Record<string, unknown>>,
    );
    const av = {
      client: new ClamdClient({ host: '127.0.0.1', port, maxConnections: 4 }),
      onInfected: 'reject' as const,
      onUnavailable: 'tempfail' as const,
    };

    for (const [label, size] of [
      ['5 KB', 5 * 1024],
      ['5 MB', 5 * 1024 * 1024],
    ] as const) {
      const plain = message(size);
      // as it arrives: encrypted to b.example's org key and sealed by a.example (i=1, with a tracking token)
      const encrypted = await collect(encryptMessage(plain, [orgR], { group: g, rng: systemRng }));
      const enc = Buffer.from(
        (await sealBy(sealerA, 'a.example', encrypted, 'dlp', await verifyChain(encrypted, { now, lookup }), systemRng(64))).message,
      );
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
        const arrived = await verifyChain(enc, { now, lookup });
        if (arrived.result !== 'pass') throw new Error(`bench: the sealed message did not verify: ${arrived.summary}`);
        const b = blindForReencryption(g, capsule!, systemRng);
        const t = transformBlinded(g, org.privateKey, b.request, peer.publicKey, systemRng);
        const moved = await collect(replaceCapsules(enc, [unblindReencryption(g, b.blinding, t, { keyId: peerId })]));
        // a copy differs from the arrival only in its capsule, which the earlier seal does not cover (as local-copies.ts seals it)
        await sealBy(sealerB, 'b.example', moved, 'e2e', arrived);
      }, opts);
      // an inspection step: blinded decryption and decryption, then the check, which must let the bench message pass
      const step = (inspect: (plaintext: Buffer) => Promise<{ decision: { action: string } }>, refused: string) =>
        measure(async () => {
          const r = await inspect(await plaintextOf());
          if (r.decision.action !== 'pass') throw new Error(`bench message ${refused} ${JSON.stringify(r.decision)}`);
        }, opts);
      const dlp = await step((p) => inspectOutbound(p, { rules }), 'matched');
      const avRate = await step((p) => inspectInbound(p, av), 'flagged');
      const ms = (rate: number) => (1000 / rate).toFixed(size > 100000 ? 0 : 2);
      const mb = (rate: number) => ((rate * plain.length) / 1e6).toFixed(1);
      rows.push({
        suite: 'inspect',
        name: `${label}: hop without inspection (verify the sealed chain, re-encrypt, seal)`,
        rate: hop,
        unit: 'msg/s',
        note: `${ms(hop)} ms/msg; baseline`,
      });
      for (const [what, rate] of [
        ['DLP step (blinded decryption + proof, decrypt, rules)', dlp],
        ['AV step (blinded decryption + proof, decrypt, clamd)', avRate],
      ] as const) {
        rows.push({
          suite: 'inspect',
          name: `${label}: ${what}`,
          rate,
          unit: 'msg/s',
          note: `adds ${ms(rate)} ms/msg (${(hop / rate).toFixed(2)}x the hop); ${mb(rate)} MB/s`,
        });
      }
    }
  } finally {
    await clamd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
