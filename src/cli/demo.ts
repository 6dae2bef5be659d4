/**
 * `ssmax demo`: the README's main command. Two organisations from nothing but
 * a fresh SSMAX root — a.example and b.example, each with keyd, the bundle
 * publisher, a Haraka gateway with the ssmax plugin and a mailbox store on
 * loopback — then alice@a.example signs, encrypts and submits a message to
 * bob@b.example; bob opens it; the hop-by-hop trace is printed; everything is
 * shut down. One command, no manual step.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startNetwork } from '../demo/network';
import { openMessage } from '../user/open';
import { loadUserProfile } from '../user/profile';
import { signAndEncrypt } from '../user/sign-encrypt';
import { submitMessage } from '../user/submit';
import { type CliIo, type CommandGroup, CliError, EXIT } from './command';
import { errnoText } from '../errors/errno';

const HELP = `Usage: ssmax demo [--dir DIR] [--keep]

Builds two SSMAX organisations on loopback (a.example and b.example: org CA,
keyd, bundle publisher, Haraka gateway with the ssmax plugin, mailbox store),
sends a signed and encrypted message from alice@a.example to bob@b.example,
opens it as Bob, prints the hop-by-hop trace, and shuts everything down.

Options:
  --dir DIR   where to put the organisations' files (default: a new temporary folder)
  --keep      keep the files afterwards (default: removed, unless --dir is given)

Run again with the same --dir, the demo replaces what its earlier run left
there (a new root, new organisations); it refuses a folder holding anything
else.
  -h, --help  show this help`;

/** What one demo run leaves in its folder: the organisations' folders and the marker. */
const DEMO_MARKER = '.ssmax-demo';
const DEMO_ENTRIES = new Set([DEMO_MARKER, 'a.example', 'b.example']);

/**
 * Makes `dir` ready for a run: created when missing; the files of an earlier
 * demo run (marked) removed; anything else there is refused, never deleted.
 */
export function prepareDemoDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CliError(`Cannot create folder "${dir}": ${errnoText(err)}`, EXIT.cantCreate);
  }
  const entries = readdirSync(dir);
  if (entries.length > 0) {
    const foreign = entries.filter((e) => !DEMO_ENTRIES.has(e));
    if (!existsSync(join(dir, DEMO_MARKER)) || foreign.length > 0) {
      throw new CliError(
        `Cannot use --dir "${dir}": it holds files that are not from an earlier \`ssmax demo\` run (${(foreign.length > 0 ? foreign : entries).slice(0, 3).join(', ')}); give an empty or new folder`,
        EXIT.cantCreate,
      );
    }
    for (const e of entries) rmSync(join(dir, e), { recursive: true, force: true });
  }
  writeFileSync(join(dir, DEMO_MARKER), 'Files of `ssmax demo`; the next run with this --dir replaces them.\n', { mode: 0o600 });
}

async function runDemo(io: CliIo, dir: string): Promise<number> {
  const started = Date.now();
  io.out(`SSMAX demo in ${dir}`);
  const net = await startNetwork(
    dir,
    [
      { domain: 'a.example', users: [{ address: 'alice@a.example', client: 'ssmax', password: 'alice-demo-password' }] },
      { domain: 'b.example', users: [{ address: 'bob@b.example', client: 'ssmax', password: 'bob-demo-password' }] },
    ],
    (line) => io.out(`  ${line}`),
  );
  try {
    const A = net.org('a.example');
    const B = net.org('b.example');
    const alice = loadUserProfile(A.profiles['alice@a.example']!);
    const bob = loadUserProfile(B.profiles['bob@b.example']!);
    const original = Buffer.from(
      'From: Alice <alice@a.example>\r\nTo: Bob <bob@b.example>\r\nSubject: Hello from a.example\r\n' +
        `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\nMessage-ID: <demo-${Date.now()}@a.example>\r\nMIME-Version: 1.0\r\n` +
        'Content-Type: text/plain; charset=utf-8\r\n\r\nHello Bob,\r\n\r\nthis message was signed and encrypted to a.example, re-encrypted\r\n' +
        'to b.example and then to you, and sealed at every hop; neither gateway ever\r\nheld a key that could read it.\r\n\r\nAlice\r\n',
    );
    io.out('');
    io.out('alice@a.example signs, encrypts to a.example and submits (SMTP AUTH) to the a.example gateway');
    const outgoing = await signAndEncrypt(alice, original, { now: new Date() });
    const submitted = await submitMessage(alice, outgoing, { to: ['bob@b.example'], timeoutMs: 30000 });
    io.out(`  gateway: ${submitted.response}`);
    const deadline = Date.now() + 30000;
    while (B.mailbox.for('bob@b.example').length === 0) {
      if (Date.now() > deadline)
        throw new CliError(`no delivery to bob@b.example within 30 s\n${B.haraka.logs().slice(-2000)}`, EXIT.software);
      await new Promise((r) => setTimeout(r, 100));
    }
    const delivered = B.mailbox.for('bob@b.example')[0]!.raw;
    io.out(`b.example's mailbox store received ${delivered.length} bytes for bob@b.example (encrypted to Bob's key only)`);
    io.out('');
    io.out('bob@b.example opens it (ssmax user open):');
    io.out('  one line per seal, oldest first: instance, the organisation that sealed, the result, the verdicts of that hop');
    io.out('  (dlp, av: inspection; e2e: encrypted end to end), cv= what that hop found of the seals before it (none: there');
    io.out('  were none), and how this seal was checked (docs/user.md, "open"); the last line sums the chain up');
    const opened = await openMessage(bob, delivered, { now: new Date() });
    for (const line of opened.trace) io.out(`  ${line}`);
    io.out(`  ${opened.summary}`);
    io.out('');
    io.out(opened.plaintext.toString('utf8').trimEnd());
    io.out('');
    const same = opened.plaintext.equals(original);
    io.out(same ? 'Bob read exactly what Alice wrote.' : 'MISMATCH: Bob did not read what Alice wrote.');
    io.out(`(${((Date.now() - started) / 1000).toFixed(1)} s; shutting down)`);
    return same ? EXIT.ok : EXIT.software;
  } finally {
    await net.stop();
  }
}

export const demoCommand: CommandGroup = {
  summary: 'Two organisations on loopback: alice@a.example -> bob@b.example, hop by hop',
  async run(argv, io) {
    let values: { dir?: string; keep?: boolean; help?: boolean };
    try {
      ({ values } = parseArgs({
        args: argv,
        options: { dir: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
        strict: true,
      }));
    } catch (err) {
      throw new CliError(`${(err as Error).message}\n\n${HELP}`, EXIT.usage);
    }
    if (values.help) {
      io.out(HELP);
      return EXIT.ok;
    }
    const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'ssmax-demo-'));
    prepareDemoDir(dir);
    try {
      return await runDemo(io, dir);
    } finally {
      if (!values.dir && !values.keep) rmSync(dir, { recursive: true, force: true });
    }
  },
};
