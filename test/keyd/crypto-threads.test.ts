/**
 * keyd's blinded operations on worker threads (src/keyd/crypto-threads.ts,
 * the compiled worker from dist/): answers that complete exactly as inline
 * ones do, the crypto core's refusals with their codes, and a worker that
 * dies failing only its own jobs before it is replaced.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CryptoError,
  blindForDecryption,
  blindForReencryption,
  completeBlindedDecryption,
  decapsulate,
  encapsulate,
  generateEncryptionKeyPair,
  groups,
  newMessageKey,
  systemRng,
  unblindReencryption,
  verifyReencryption,
} from '../../src/crypto';
import { ThreadedCrypto, inlineCrypto } from '../../src/keyd/crypto-threads';

const g = groups.libsecp256k1;

/** A worker script that answers each job with the size of the message it came in (the build's wire format: crypto-wire.ts). */
function countingWorker(): string {
  const script = join(mkdtempSync(join(tmpdir(), 'ssmax-worker-')), 'counts.js');
  const wire = JSON.stringify(join(__dirname, '..', '..', 'dist', 'keyd', 'crypto-wire.js'));
  writeFileSync(
    script,
    "const { parentPort } = require('node:worker_threads');\n" +
      `const { packAnswers, unpackJobs } = require(${wire});\n` +
      "parentPort.on('message', (m) => { const jobs = unpackJobs(m.buffer); " +
      "const out = packAnswers(m.id, jobs.map(() => ({ ok: false, message: 'in a message of ' + jobs.length }))); " +
      'parentPort.postMessage(out, [out.buffer]); });\n',
  );
  return script;
}

describe('keyd crypto threads', () => {
  const org = generateEncryptionKeyPair(g, systemRng);
  const orgPub = g.encodeUncompressed(g.decode(org.publicKey, 'org'));
  const bob = generateEncryptionKeyPair(g, systemRng);
  const bobPub = g.encodeUncompressed(g.decode(bob.publicKey, 'bob'));
  let threads: ThreadedCrypto;
  beforeAll(() => {
    threads = new ThreadedCrypto(2);
  });
  afterAll(async () => {
    await threads.close();
  });

  test('re-encryption and blinded decryption on threads complete like inline ones, for many jobs at once', async () => {
    const inline = inlineCrypto(g, systemRng);
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const P = newMessageKey(g, systemRng);
        const capsule = encapsulate(g, P, { keyId: 'a.example:v1', publicKey: org.publicKey }, systemRng);
        const runner = i % 4 === 0 ? inline : threads;
        const re = blindForReencryption(g, capsule, systemRng);
        const answer = await runner.reencrypt(org.privateKey, orgPub, re.request, bobPub);
        expect(verifyReencryption(g, org.publicKey, re.request, bob.publicKey, answer)).toBe(true); // the proof crosses the thread boundary intact
        const moved = unblindReencryption(g, re.blinding, answer, { keyId: 'bob-1' });
        expect(Buffer.from(decapsulate(g, moved, bob.privateKey))).toEqual(Buffer.from(P));
        const de = blindForDecryption(g, capsule, systemRng);
        const opened = completeBlindedDecryption(g, de.blinding, await runner.decrypt(org.privateKey, orgPub, de.request), org.publicKey);
        expect(opened.ok && Buffer.from(opened.messageKey)).toEqual(Buffer.from(P));
      }),
    );
  });

  test("a point off the curve is refused with the crypto core's code, as inline", async () => {
    const bad = new Uint8Array(65).fill(7);
    bad[0] = 4;
    for (const runner of [threads, inlineCrypto(g, systemRng)]) {
      const err = await runner.decrypt(org.privateKey, orgPub, { e: bad }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CryptoError);
      expect((err as CryptoError).code).toBe('bad-point');
    }
  });

  test('a point longer than any valid one is refused before it reaches a thread, as the crypto core would refuse it', async () => {
    const err = await threads.decrypt(org.privateKey, orgPub, { e: new Uint8Array(300) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CryptoError);
    expect((err as CryptoError).code).toBe('bad-point');
  });

  test('a key the keyring wipes right after the job is queued (a rotation drops its cached key in that turn) does not spoil the job: each job has its own copy', async () => {
    const P = newMessageKey(g, systemRng);
    const capsule = encapsulate(g, P, { keyId: 'a.example:v1', publicKey: org.publicKey }, systemRng);
    const answers = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const cached = Uint8Array.from(org.privateKey);
        const re = blindForReencryption(g, capsule, systemRng);
        const pending = threads.reencrypt(cached, orgPub, re.request, bobPub);
        cached.fill(0); // as OrgKeyring.forget does, before the outbox is flushed at the next turn
        const answer = await pending;
        return verifyReencryption(g, org.publicKey, re.request, bob.publicKey, answer);
      }),
    );
    expect(answers).toEqual(Array<boolean>(6).fill(true));
  });

  test("the caller's private key is left as it was (the threads wipe their own copies)", async () => {
    const key = Uint8Array.from(org.privateKey);
    const de = blindForDecryption(
      g,
      encapsulate(g, newMessageKey(g, systemRng), { keyId: 'k', publicKey: org.publicKey }, systemRng),
      systemRng,
    );
    await threads.decrypt(key, orgPub, de.request);
    expect(Buffer.from(key)).toEqual(Buffer.from(org.privateKey));
  });

  test('a worker that dies fails its job with an error and is replaced', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssmax-worker-'));
    const script = join(dir, 'dies.js');
    writeFileSync(script, "require('node:worker_threads').parentPort.on('message', () => process.exit(3));\n");
    const dying = new ThreadedCrypto(1, script, false); // every job to the worker, even one alone
    try {
      for (let i = 0; i < 3; i++)
        await expect(dying.reencrypt(org.privateKey, orgPub, { e: orgPub, f: orgPub }, bobPub)).rejects.toThrow(/exited with code 3/);
    } finally {
      await dying.close();
    }
  });

  test('the jobs issued in one turn (a batch) travel to the worker in one message; the next turn is another message', async () => {
    const script = countingWorker();
    const counting = new ThreadedCrypto(1, script, false); // every job to the worker, even one alone
    try {
      const sizes = async (n: number) =>
        Promise.all(
          Array.from({ length: n }, () =>
            counting.reencrypt(org.privateKey, orgPub, { e: orgPub, f: orgPub }, bobPub).then(
              () => 'answered',
              (e: Error) => e.message,
            ),
          ),
        );
      expect(await sizes(8)).toEqual(Array(8).fill('in a message of 8'));
      expect(await sizes(1)).toEqual(['in a message of 1']);
    } finally {
      await counting.close();
    }
  });

  test('a job alone in its turn, with its thread idle, is computed on the calling thread; a batch still goes to the thread', async () => {
    const script = countingWorker();
    const counting = new ThreadedCrypto(1, script, true); // as with the native backend (the default where it loads)
    try {
      const one = await counting.decrypt(org.privateKey, orgPub, { e: bobPub });
      expect(one.z).toHaveLength(65); // a real answer, not the worker's
      const batch = await Promise.all(
        Array.from({ length: 3 }, () =>
          counting.decrypt(org.privateKey, orgPub, { e: bobPub }).then(
            () => 'answered',
            (e: Error) => e.message,
          ),
        ),
      );
      expect(batch).toEqual(Array(3).fill('in a message of 3'));
      // a crypto error of a job computed here comes back as the crypto core's error, as from the thread
      await expect(counting.decrypt(org.privateKey, orgPub, { e: new Uint8Array(65) })).rejects.toMatchObject({ code: 'bad-point' });
    } finally {
      await counting.close();
    }
  });

  test('a batch spread over two threads gives the same answers as inline, each to its own job', async () => {
    const jobs = Array.from(
      { length: 6 },
      () =>
        blindForDecryption(g, encapsulate(g, newMessageKey(g, systemRng), { keyId: 'k', publicKey: org.publicKey }, systemRng), systemRng)
          .request,
    );
    const answers = await Promise.all(jobs.map((r) => threads.decrypt(org.privateKey, orgPub, r)));
    const inline = inlineCrypto(g, systemRng);
    for (const [i, a] of answers.entries())
      expect(Buffer.from(a.z)).toEqual(Buffer.from((await inline.decrypt(org.privateKey, orgPub, jobs[i]!)).z));
  });

  test('a missing worker script is refused at start, naming it', () => {
    expect(() => new ThreadedCrypto(1, '/nonexistent/crypto-worker.js')).toThrow(
      /crypto worker "\/nonexistent\/crypto-worker.js" is missing/,
    );
  });
});
