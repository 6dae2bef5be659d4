/**
 * List fan-out (docs/lists.md): a post to a list of 1,000 members — half
 * local SSMAX users of a.example, half spread over 10 peer domains — expanded
 * by a.example's gateway steps in process against its real keyd (mutual TLS,
 * its own process), as `npm run bench:lists`. Reported: member copies per
 * second and keyd requests per member copy, beside the gateway's
 * single-recipient hop measured the same way in the same run (an SSMAX client
 * message to one peer recipient: keyd re-encryption, seal; and to one local
 * user). Every message is encrypted to a.example's key beforehand, outside
 * the timing, as a client sends it. The copies are made, not delivered: delivery and the
 * peers' own hops are the gateway bench's (src/bench/gateway.ts).
 *
 * The 10 peer organisations exist as PKI only: an org CA under the network's
 * SSMAX root, an encryption-key certificate and a CRL each, served to the
 * gateway steps by an in-process directory (keyd validates each certificate
 * to the root exactly as for a live peer).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIni } from '../config/ini';
import { defaultGroup } from '../crypto/backend';
import { generateEncryptionKeyPair } from '../crypto/keys';
import { systemRng } from '../crypto/random';
import { startNetwork } from '../demo/network';
import type { PeerEntry } from '../directory/peer-entry';
import type { GatewayDeps } from '../gateway/deps';
import { setupGateway } from '../gateway/setup';
import { submit } from '../gateway/submission';
import { collect, encryptMessage } from '../envelope';
import { createCrl } from '../pki/crl';
import { createOrgCa, issueEncryptionKeyCertificate } from '../pki/issue';
import { generateP256KeyPair } from '../pki/keys';
import type { BenchRow } from './harness';

const MEMBERS = Number(process.env.SSMAX_BENCH_LIST_MEMBERS ?? 1000);
const PEERS = Number(process.env.SSMAX_BENCH_LIST_PEERS ?? 10);
const POSTS = Number(process.env.SSMAX_BENCH_LIST_POSTS ?? 3);
const SINGLES = Number(process.env.SSMAX_BENCH_LIST_SINGLES ?? 200);
const DAY = 86400000;

function progress(line: string): void {
  process.stderr.write(`bench: lists: ${line}…\n`);
}

function message(i: number, to: string): Buffer {
  const body = 'The quarterly figures are attached as agreed; please review them before Friday.\r\n'.repeat(60);
  return Buffer.from(
    `From: alice@a.example\r\nTo: ${to}\r\nSubject: list bench ${i}\r\nMessage-ID: <list-bench-${i}-${Date.now()}@a.example>\r\nDate: ${new Date().toUTCString()}\r\n\r\n${body}`,
  );
}

/** Counts the keyd requests the gateway steps make (every HTTPS call of its keyd clients). */
function countKeyd(deps: GatewayDeps): { readonly count: () => number; readonly reset: () => void } {
  let n = 0;
  const ops = deps.keyd as unknown as Record<string, { call: (...a: unknown[]) => Promise<unknown> } | undefined>;
  for (const name of ['gateway', 'inspector']) {
    const client = ops[name];
    if (!client) continue;
    const call = client.call.bind(client);
    client.call = (...a: unknown[]) => {
      n++;
      return call(...a);
    };
  }
  return {
    count: () => n,
    reset: () => {
      n = 0;
    },
  };
}

/** Peer organisations as PKI only: bundle-shaped entries whose certificates validate to `root`. */
function peerEntries(root: Parameters<typeof createOrgCa>[0], rootCrl: string, domains: readonly string[]): Map<string, PeerEntry> {
  const now = Date.now();
  const out = new Map<string, PeerEntry>();
  for (const domain of domains) {
    const ca = createOrgCa(root, {
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 365 * DAY),
      domains: [domain],
      organisation: `Org ${domain}`,
      privateKey: generateP256KeyPair().privateKey,
    });
    const key = generateEncryptionKeyPair(defaultGroup, systemRng);
    const cert = issueEncryptionKeyCertificate(ca, {
      domain,
      version: 1,
      publicKey: key.publicKey,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 90 * DAY),
    });
    const crl = createCrl(ca, { entries: [], thisUpdate: new Date(now - 1000), nextUpdate: new Date(now + 7 * DAY), crlNumber: 1 });
    const currentKey = { keyId: `${domain}:v1`, version: 1, state: 'current', publicKey: key.publicKey, certificate: cert.pem };
    out.set(domain, {
      domain,
      serial: 1,
      id: domain,
      expires: new Date(now + DAY),
      currentKey,
      keys: [currentKey],
      orgCaChain: [ca.certificate.pem],
      crls: [crl.pem, rootCrl],
      sealingCertificate: () => undefined,
      abuseContact: `abuse@${domain}`,
      inboundPolicy: {} as PeerEntry['inboundPolicy'],
      issued: new Date(now),
      url: `https://ssmax.${domain}/`,
    });
  }
  return out;
}

export async function run(): Promise<BenchRow[]> {
  const base = mkdtempSync(join(tmpdir(), 'ssmax-bench-lists-'));
  const net = await startNetwork(base, [
    { domain: 'a.example', users: [{ address: 'alice@a.example', client: 'plain', password: 'pw-alice' }] },
  ]);
  const rows: BenchRow[] = [];
  try {
    const A = net.org('a.example');
    const local = Math.floor(MEMBERS / 2);
    const peerDomains = Array.from({ length: PEERS }, (_, i) => `p${i + 1}.example`);
    progress(`registering ${local} local members and the list at keyd`);
    const admin = A.admin();
    const members: string[] = [];
    try {
      for (let i = 0; i < local; i++) {
        const address = `m${i}@a.example`;
        const key = generateEncryptionKeyPair(defaultGroup, systemRng);
        await admin.call('POST', '/v1/registry/users', {
          address,
          code: `M-${i}`,
          identityRef: `EMP-M-${i}`,
          encryptionPublicKey: Buffer.from(key.publicKey).toString('hex'),
        });
        members.push(address);
      }
      for (let i = 0; i < MEMBERS - local; i++) members.push(`r${i}@${peerDomains[i % PEERS]}`);
      await admin.call('POST', '/v1/lists', { address: 'all@a.example', policy: 'open', members });
    } finally {
      admin.close();
    }
    const peers = peerEntries(net.root, readFileSync(join(A.fx.dir, 'root.crl.pem'), 'utf8'), peerDomains);
    const ini = parseIni(readFileSync(join(A.harakaDir, 'config', 'ssmax.ini'), 'utf8')) as Record<string, Record<string, unknown>>;
    const gw = setupGateway(ini, A.harakaDir, () => undefined, 'ssmax-state-bench');
    try {
      const own = gw.deps.directory;
      // no key-version probing of peers that exist only as PKI here
      const { keyWatch: _unused, ...rest } = gw.deps;
      const deps: GatewayDeps = { ...rest, directory: { lookup: (d) => (peers.has(d) ? Promise.resolve(peers.get(d)!) : own.lookup(d)) } };
      // SSMAX client mode: each message encrypted to a.example's key beforehand, as a client sends it
      const { current } = await deps.keyd.orgKeys();
      const orgKey = { keyId: current, publicKey: await deps.keyd.certifiedKey(current) };
      const encrypted = (i: number, to: string) =>
        collect(encryptMessage(message(i, to), [orgKey], { group: defaultGroup, rng: systemRng }));
      const keyd = countKeyd(deps);
      // warm-up: connections, caches, JIT
      await submit(deps, await encrypted(0, 'all@a.example'), ['all@a.example']);
      for (let i = 0; i < 20; i++) await submit(deps, await encrypted(i, `r0@${peerDomains[0]}`), [`r0@${peerDomains[0]}`]);

      progress(`${POSTS} posts to a list of ${MEMBERS} members (${local} local, ${MEMBERS - local} across ${PEERS} peer domains)`);
      keyd.reset();
      let copies = 0;
      const posts = await Promise.all(Array.from({ length: POSTS }, (_, i) => encrypted(i, 'all@a.example')));
      let t0 = performance.now();
      for (const p of posts) copies += (await submit(deps, p, ['all@a.example'])).copies.length;
      const listSeconds = (performance.now() - t0) / 1000;
      const listOps = keyd.count();
      if (copies !== POSTS * MEMBERS) throw new Error(`expected ${POSTS * MEMBERS} member copies, made ${copies}`);

      const single = async (to: string) => {
        const ready = await Promise.all(Array.from({ length: SINGLES }, (_, i) => encrypted(i, to)));
        keyd.reset();
        t0 = performance.now();
        // 16 at a time, as the list's copies are made (and as the gateway's hop runs over 16 connections)
        let next = 0;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (next < ready.length) await submit(deps, ready[next++]!, [to]);
          }),
        );
        return { rate: SINGLES / ((performance.now() - t0) / 1000), ops: keyd.count() / SINGLES };
      };
      progress(`${SINGLES} single-recipient messages to a peer recipient, then to a local user`);
      const peerHop = await single(`r0@${peerDomains[0]}`);
      const localHop = await single('m0@a.example');

      const copyRate = copies / listSeconds;
      rows.push({
        suite: 'lists',
        name: `list post, ${MEMBERS} members (${local} local SSMAX, ${MEMBERS - local} in ${PEERS} peer domains), 16 copies at a time, in process`,
        rate: copyRate,
        unit: 'copies/s',
        note: `${(listOps / copies).toFixed(2)} keyd requests per member copy (each copy one re-encryption at keyd, batched); ${(listSeconds / POSTS).toFixed(2)} s per post; a member copy costs ${(peerHop.rate / copyRate).toFixed(2)}x a single-recipient peer hop (target <= 0.5x)`,
      });
      rows.push({
        suite: 'lists',
        name: 'single-recipient hop: SSMAX client message to one peer recipient (keyd re-encrypt, seal), 16 at a time, in process',
        rate: peerHop.rate,
        unit: 'msg/s',
        note: `${peerHop.ops.toFixed(2)} keyd requests per message (token, re-encryption)`,
      });
      rows.push({
        suite: 'lists',
        name: 'single-recipient hop: SSMAX client message to one local SSMAX user (keyd re-encrypt, seal), 16 at a time, in process',
        rate: localHop.rate,
        unit: 'msg/s',
        note: `${localHop.ops.toFixed(2)} keyd requests per message`,
      });
    } finally {
      await gw.close();
    }
  } finally {
    await net.stop();
    rmSync(base, { recursive: true, force: true });
  }
  return rows;
}
