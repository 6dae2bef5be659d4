/**
 * The bundle of a list member's organisation (src/lists/expand.ts,
 * docs/lists.md step 6): a list's copy is never sent in clear, so the
 * encryption policy of submissions (`[policy]`) is not asked for it. A member
 * whose domain publishes no SSMAX bundle gets no copy (a log line) whatever
 * `[policy]` says for that domain, and the other members get theirs; any
 * other failure to get the bundle answers the post 451 (the sender retries),
 * again whatever `[policy]` says. No answer to the poster names a member's
 * domain. keyd and the directory are stand-ins (a unit test of the module).
 */
import { randomBytes } from 'node:crypto';
import { defaultGroup as g } from '../../src/crypto/backend';
import type { Capsule } from '../../src/crypto';
import { generateEncryptionKeyPair } from '../../src/crypto/keys';
import { systemRng } from '../../src/crypto/random';
import { generateP256KeyPair } from '../../src/crypto/ecdsa';
import { DirectoryError } from '../../src/directory/directory';
import type { PeerEntry } from '../../src/directory/peer-entry';
import { collect, encryptMessage } from '../../src/envelope';
import type { GatewayDeps } from '../../src/gateway/deps';
import type { ReencryptTarget } from '../../src/keyd/client-ops';
import type { QuarantineStore } from '../../src/inspect/quarantine';
import { Lists } from '../../src/lists/expand';
import { capsulesOf, checkMessage } from '../../src/mail/message-checks';
import { GatewayError } from '../../src/mail/replies';

const DOMAIN = 'a.example';
const org = generateEncryptionKeyPair(g, systemRng);
const LIST = 'staff@a.example';
/** alice: a local SSMAX client; dave: in d.example, which publishes a bundle; carol: in c.example, the domain under test. */
const MEMBERS = ['alice@a.example', 'carol@c.example', 'dave@d.example'];

async function encrypted(): Promise<{ message: Buffer; capsules: Capsule[] }> {
  const plain = Buffer.from(
    `From: alice@a.example\r\nTo: ${LIST}\r\nSubject: p\r\nMessage-ID: <p@a.example>\r\nDate: Sun, 6 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n`,
  );
  const message = await collect(encryptMessage(plain, [{ keyId: `${DOMAIN}:v1`, publicKey: org.publicKey }], { group: g, rng: systemRng }));
  return { message, capsules: capsulesOf(checkMessage(message).headers) };
}

/** A bundle of `domain` as far as list expansion reads it (its current key; the rest is keyd's to check). */
const bundle = (domain: string): PeerEntry =>
  ({
    domain,
    currentKey: { keyId: `${domain}:v1`, version: 1, certificate: `cert of ${domain}` },
    orgCaChain: [],
    crls: [],
  }) as unknown as PeerEntry;

/** Deps whose directory answers c.example with `carol` and d.example with its bundle; `policy` is [policy] for c.example. */
function depsWith(policy: 'require' | 'opportunistic' | 'none', carol: () => Promise<PeerEntry>, targets: ReencryptTarget[]): GatewayDeps {
  return {
    config: { domain: DOMAIN, localDomains: [DOMAIN], policy: { default: 'opportunistic', domains: { 'c.example': policy } } },
    directory: {
      lookup: (domain: string) => (domain === 'c.example' ? carol() : Promise.resolve(bundle(domain))),
    },
    keyd: {
      user: (address: string) => Promise.resolve({ address, status: 'active', encryptionKeyId: `u-${address.split('@')[0]!}` }),
      list: () => Promise.resolve(undefined),
      primeUsers: () => Promise.resolve(),
      reencryptMany: (capsule: Capsule, ts: readonly ReencryptTarget[], keyIds: readonly string[]) => {
        targets.push(...ts);
        return Promise.resolve(keyIds.map((keyId) => ({ capsule: { ...capsule, keyId } })));
      },
    },
    group: g,
    seal: { privateKey: generateP256KeyPair().privateKey, certRef: randomBytes(32).toString('base64url') },
    clock: () => new Date(),
  } as unknown as GatewayDeps;
}

const origin = {
  from: 'own' as const,
  chain: { result: 'none' as const, summary: 'ssmax-chain=none', instances: [] },
  trackingToken: randomBytes(32),
};

async function postWith(deps: GatewayDeps, logs: string[]) {
  const { message, capsules } = await encrypted();
  return new Lists({} as QuarantineStore, (l) => logs.push(l)).post(deps, {
    arrival: { message, rcpts: [LIST], origin, verdicts: [], sender: 'alice@a.example' },
    capsules,
    list: { address: LIST, members: MEMBERS, policy: 'open', moderators: [] },
  });
}

const noBundle = () => Promise.reject(new DirectoryError('none', 'c.example', 'no _ssmax record'));
const unreachable = () => Promise.reject(new DirectoryError('unavailable', 'c.example', 'connect ECONNREFUSED'));

const refusedBundle = () => Promise.reject(new DirectoryError('invalid', 'c.example', 'signer-not-certified'));
/** Its organisation's CA revoked by the root: refused for good (DirectoryError `final`; a direct recipient there is 550 5.7.5). */
const revokedBundle = () =>
  Promise.reject(
    new DirectoryError(
      'invalid',
      'c.example',
      'untrusted: revoked',
      "its organisation's CA is revoked (cACompromise, at 2026-12-06T00:00:00.000Z)",
    ),
  );

describe('a member whose domain publishes no SSMAX bundle, or a bundle that is refused, gets no copy, whatever [policy] says for that domain', () => {
  const finals: [string, () => Promise<PeerEntry>, RegExp][] = [
    ['no bundle', noBundle, /member carol@c\.example is in c\.example, which publishes no SSMAX bundle; no copy/],
    // its organisation revoked by the root, say: a final word on that member (as keyd's refusal of its certificate is), not a 451 for every post
    [
      'a bundle that does not verify',
      refusedBundle,
      /the SSMAX bundle of c\.example, a member's domain, is refused \(.*signer-not-certified.*\); no copy/,
    ],
    [
      "a bundle whose organisation's CA is revoked",
      revokedBundle,
      /the SSMAX bundle of c\.example, a member's domain, is refused for good: its organisation's CA is revoked \(cACompromise.*\); no copy/,
    ],
  ];
  for (const policy of ['require', 'opportunistic', 'none'] as const)
    for (const [what, carol, logged] of finals)
      test(`[policy] c.example=${policy}, ${what}: the post is expanded for the others (250), carol gets nothing, a log line says why`, async () => {
        const logs: string[] = [];
        const targets: ReencryptTarget[] = [];
        const { copies } = await postWith(depsWith(policy, carol, targets), logs);
        expect(copies.map((c) => c.rcpts[0]).sort()).toEqual(['alice@a.example', 'dave@d.example']);
        expect(copies.find((c) => c.rcpts[0] === 'dave@d.example')).toMatchObject({ local: false, list: LIST });
        expect(targets.map((t) => (t.kind === 'list' ? t.member : '')).sort()).toEqual(['alice@a.example', 'dave@d.example']);
        expect(logs.join('\n')).toMatch(logged);
      });
});

describe("any other failure to get a member's bundle answers the post 451 (retried), whatever [policy] says, naming no member's domain", () => {
  const failures: [string, () => Promise<PeerEntry>][] = [
    ['the bundle cannot be fetched now', unreachable],
    ['the directory itself fails', () => Promise.reject(new Error('directory fault'))],
  ];
  for (const policy of ['require', 'opportunistic', 'none'] as const)
    for (const [what, carol] of failures)
      test(`[policy] c.example=${policy}, ${what}: 451 4.7.5, nothing made, the log names the domain`, async () => {
        const logs: string[] = [];
        const targets: ReencryptTarget[] = [];
        const err = await postWith(depsWith(policy, carol, targets), logs).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(GatewayError);
        const reply = (err as GatewayError).reply;
        expect([reply.code, reply.status]).toEqual([451, '4.7.5']);
        expect(reply.text).toContain(LIST);
        expect(reply.text).not.toMatch(/c\.example|carol/);
        expect(targets).toEqual([]); // deferred before any re-encryption: the retry makes every copy
        expect(logs.join('\n')).toMatch(/c\.example/);
      });
});
