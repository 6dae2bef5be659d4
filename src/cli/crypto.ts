/**
 * `ssmax crypto demo`: the encryption chain of docs/protocol.md in one process, as
 * a small demo of the crypto core and the message format (it grows into the
 * two-organisation `ssmax demo` once the gateway exists). Prints each hop.
 */
import { parseArgs } from 'node:util';
import {
  answerBlindedDecryption,
  blindForDecryption,
  blindForReencryption,
  completeBlindedDecryption,
  generateEncryptionKeyPair,
  groupByName,
  keyIdOf,
  systemRng,
  transformBlinded,
  unblindReencryption,
} from '../crypto';
import { collect, decryptMessage, encryptMessage, listCapsules, replaceCapsules } from '../envelope';
import { CliError, type CliIo, EXIT, subcommands } from './command';

const BACKENDS = ['auto', 'native', 'libsecp256k1', 'noble'];

const HELP = `Usage: ssmax crypto demo [--backend auto|native|libsecp256k1|noble]

Runs the SSMAX encryption chain in one process and prints each hop:
alice encrypts to her organisation (a.example); a.example's inspector opens the
message key by blinded decryption with a verified proof; a.example's gateway
re-encrypts to b.example through the key-service half; b.example's gateway
re-encrypts to bob; bob decrypts. The content ciphertext never changes.

Options:
  --backend NAME   group backend (default auto: native libsecp256k1 where its
                   addon loads, else libsecp256k1 in WebAssembly)
  -h, --help       show this help`;

export async function runDemo(io: CliIo, backend = 'auto'): Promise<number> {
  const group = groupByName(backend);
  const rng = systemRng;
  const who = (name: string) => {
    const kp = generateEncryptionKeyPair(group, rng);
    return { name, ...kp, keyId: keyIdOf(group, kp.publicKey) };
  };
  const orgA = who('a.example org key');
  const orgB = who('b.example org key');
  const bob = who('bob@b.example');
  const message = Buffer.from(
    'From: alice@a.example\r\nTo: bob@b.example\r\nSubject: Demo\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <demo@a.example>\r\n' +
      'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello Bob, this is encrypted from end to end.\r\n',
  );
  const bodyOf = (m: Buffer) => m.subarray(m.indexOf('\r\n\r\n') + 4);
  const step = (n: number, text: string) => io.out(`${n}. ${text}`);

  let m = await collect(encryptMessage(message, [{ keyId: orgA.keyId, publicKey: orgA.publicKey }], { group, rng }));
  const body = bodyOf(m);
  step(1, `alice encrypts to ${orgA.name} (kid=${orgA.keyId}); ${body.length} bytes of base64 content`);

  const [capA] = await listCapsules(m);
  if (!capA) throw new CliError('demo: no capsule', EXIT.software);
  const dec = blindForDecryption(group, capA, rng);
  const answer = answerBlindedDecryption(group, orgA.privateKey, orgA.publicKey, dec.request, rng);
  const opened = completeBlindedDecryption(group, dec.blinding, answer, orgA.publicKey);
  if (!opened.ok) throw new CliError(`demo: ${opened.reason}`, EXIT.software);
  const inspected = await collect(decryptMessage(m, { messageKey: opened.messageKey }, { group }));
  step(2, `a.example inspector: blinded decryption, DLEQ proof verified, ${inspected.length} bytes inspected in memory`);

  const hop = async (from: typeof orgA, to: typeof orgB) => {
    const [cap] = await listCapsules(m);
    const { request, blinding } = blindForReencryption(group, cap!, rng);
    const t = transformBlinded(group, from.privateKey, request, to.publicKey, rng);
    m = await collect(replaceCapsules(m, [unblindReencryption(group, blinding, t, { keyId: to.keyId })]));
  };
  await hop(orgA, orgB);
  step(3, `a.example gateway re-encrypts to ${orgB.name} through its key service (blinded; content unchanged: ${bodyOf(m).equals(body)})`);
  await hop(orgB, bob);
  step(4, `b.example gateway re-encrypts to ${bob.name} (content unchanged: ${bodyOf(m).equals(body)})`);

  const result = await collect(decryptMessage(m, { keyId: bob.keyId, privateKey: bob.privateKey }, { group }));
  step(5, `bob decrypts: ${result.equals(message) ? 'identical to what alice wrote' : 'MISMATCH'}`);
  io.out('');
  io.out(bodyOf(result).toString('utf8').trimEnd());
  return result.equals(message) ? EXIT.ok : EXIT.software;
}

async function runCrypto(sub: string, rest: string[], io: CliIo): Promise<number> {
  if (sub !== 'demo') throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
  let values: { backend?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: rest, options: { backend: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${HELP}`, EXIT.usage);
  }
  if (values.help) {
    io.out(HELP);
    return EXIT.ok;
  }
  const backend = values.backend ?? 'auto';
  if (!BACKENDS.includes(backend))
    throw new CliError(`Cannot use --backend "${backend}": one of ${BACKENDS.join(', ')}\n\n${HELP}`, EXIT.usage);
  try {
    return await runDemo(io, backend);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError((err as Error).message, EXIT.software);
  }
}

export const cryptoCommand = subcommands('Crypto core tools (demo: the encryption chain round trip)', HELP, runCrypto);
