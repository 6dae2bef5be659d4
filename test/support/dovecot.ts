/**
 * A real Dovecot LMTP server (Debian's dovecot-core + dovecot-lmtpd, put in
 * place by scripts/ensure-dovecot.sh) as an organisation's mailbox store, for
 * the tests: its own dovecot.conf in a temporary folder (no system config),
 * its own base_dir and state_dir, LMTP only, on a free loopback port, users
 * from a passwd-file, one Maildir per user under the folder. Dovecot never
 * delivers mail as root: when the tests run as root (CI), mail is written as
 * `nobody`; otherwise everything runs as the current user.
 *
 * Like the configuration docs/delivery.md recommends, LMTP runs Pigeonhole
 * Sieve (Debian's dovecot-sieve) with a global script before the users' own:
 * a copy whose SSMAX-Delivery-Id the user's mailbox already received is
 * discarded (Sieve "duplicate", RFC 7352), so the gateway's retry of a copy
 * it handed over just before it was killed is idempotent here.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { basename, join } from 'node:path';
import { connect } from 'node:net';
import { freePort } from '../../src/demo/haraka';

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

/** The path of a system binary, or a clear failure naming the install script (tests never skip). */
export function systemBinary(name: string, script: string): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...SBIN]) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} is not installed: run "bash ${script}" (npm test runs it first)`);
}

export interface DovecotLmtp {
  readonly port: number;
  /** Dovecot's authentication service for Postfix (inet:127.0.0.1:<authPort>), with `authService`; 0 otherwise. */
  readonly authPort: number;
  readonly dir: string;
  /** Adds a user to the passwd-file userdb; resolves once Dovecot will see it (it checks the file at most once a second). */
  addUser(address: string): Promise<void>;
  /** The messages in the user's Maildir (new/ and cur/), oldest first. */
  mails(address: string): Buffer[];
  /** The user's mail folder (created by Dovecot at first delivery). */
  mailDir(address: string): string;
  log(): string;
  stop(): Promise<void>;
}

function waitForPort(port: number, ms: number, proc: ChildProcess, out: () => string): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (proc.exitCode !== null) return reject(new Error(`dovecot exited ${proc.exitCode}:\n${out()}`));
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > end) reject(new Error(`dovecot did not listen on 127.0.0.1:${port}:\n${out()}`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

export interface DovecotOptions {
  /** Passwords of users (for Dovecot's authentication service); a user without one cannot log in. */
  readonly passwords?: Readonly<Record<string, string>>;
  /** Also offer Dovecot's authentication service to Postfix (smtpd_sasl_type = dovecot) on a loopback port. */
  readonly authService?: boolean;
  /** Run the duplicate-delivery Sieve script (default true); false: a store without it, every copy stored. */
  readonly dedupe?: boolean;
}

/** The global Sieve script of docs/delivery.md: one copy per delivery id and user. */
export const DEDUPE_SIEVE = [
  'require ["duplicate"];',
  '# a copy of a delivery this mailbox already received (the gateway handed it over again after a crash)',
  'if duplicate :header "SSMAX-Delivery-Id" :seconds 172800 {',
  '  discard;',
  '  stop;',
  '}',
  '',
].join('\n');

export async function startDovecotLmtp(users: readonly string[], options: DovecotOptions = {}): Promise<DovecotLmtp> {
  const bin = systemBinary('dovecot', 'scripts/ensure-dovecot.sh');
  const lmtpBin = execFileSync(bin, ['-c', '/dev/null', 'config', '-h', 'libexec_dir'], { encoding: 'utf8' }).trim() || '/usr/lib/dovecot';
  if (!existsSync(join(lmtpBin, 'lmtp')))
    throw new Error(
      `Dovecot's LMTP server (${join(lmtpBin, 'lmtp')}) is not installed: run "bash scripts/ensure-dovecot.sh" (Debian package dovecot-lmtpd)`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-dovecot-'));
  const root = process.getuid?.() === 0;
  const me = userInfo();
  const mailUid = root ? 65534 : me.uid;
  const mailGid = root ? 65534 : me.gid;
  const mail = join(dir, 'mail');
  mkdirSync(mail);
  if (root) {
    chmodSync(dir, 0o711); // nobody must reach mail/ to write the Maildirs
    chownSync(mail, mailUid, mailGid);
  }
  const port = await freePort();
  const authPort = options.authService ? await freePort() : 0;
  const usersFile = join(dir, 'users');
  const known = new Set<string>();
  let changes = 0;
  // a user without a password gets a random one nobody knows (LMTP delivery needs only the userdb)
  const password = (u: string) => options.passwords?.[u] ?? randomBytes(12).toString('hex');
  const writeUsers = () => writeFileSync(usersFile, [...known].map((u) => `${u}:{PLAIN}${password(u)}::::::\n`).join(''), { mode: 0o644 });
  // each user's home (mail_home) exists before the first delivery, as on a real server: it holds Sieve's duplicate record
  const makeHome = (u: string) => {
    const home = join(mail, u.toLowerCase());
    mkdirSync(home, { recursive: true, mode: 0o700 });
    if (root) chownSync(home, mailUid, mailGid);
  };
  for (const u of users) known.add(u.toLowerCase());
  for (const u of known) makeHome(u);
  writeUsers();
  const dedupe = options.dedupe ?? true;
  const sieveFile = join(dir, 'ssmax-dedupe.sieve');
  if (dedupe) {
    writeFileSync(sieveFile, DEDUPE_SIEVE, { mode: 0o644 });
    // compiled now, as the operator would (sievec): the mail user need not write next to it
    const compiled = spawnSync(systemBinary('sievec', 'scripts/ensure-dovecot.sh'), [sieveFile], { encoding: 'utf8' });
    // a warning too: the script of docs/delivery.md must compile as written (e.g. :seconds within Pigeonhole's cap)
    if (compiled.status !== 0 || /warning|error/i.test(compiled.stderr + compiled.stdout))
      throw new Error(`sievec ${sieveFile}: ${compiled.stderr || compiled.stdout || `exit ${compiled.status}`}`);
  }
  writeFileSync(
    join(dir, 'dovecot.conf'),
    [
      `base_dir = ${join(dir, 'run')}`,
      `state_dir = ${join(dir, 'state')}`,
      'log_path = /dev/stderr',
      'protocols = lmtp',
      'listen = 127.0.0.1',
      'ssl = no',
      `default_internal_user = ${root ? 'dovecot' : me.username}`,
      `default_login_user = ${root ? 'dovenull' : me.username}`,
      ...(root ? [] : [`default_internal_group = ${execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim()}`]),
      `mail_location = maildir:${mail}/%Lu/Maildir`,
      // the home holds Sieve's duplicate record (.dovecot.lda-dupes)
      `mail_home = ${mail}/%Lu`,
      `mail_uid = ${mailUid}`,
      `mail_gid = ${mailGid}`,
      'first_valid_uid = 1',
      'userdb {',
      '  driver = passwd-file',
      `  args = username_format=%Lu ${usersFile}`,
      '}',
      'passdb {',
      '  driver = passwd-file',
      `  args = username_format=%Lu ${usersFile}`,
      '}',
      ...(dedupe
        ? [
            'protocol lmtp {',
            '  mail_plugins = $mail_plugins sieve',
            '}',
            'plugin {',
            `  sieve_before = ${sieveFile}`,
            '  sieve_extensions = +duplicate',
            '}',
          ]
        : []),
      'service lmtp {',
      '  inet_listener lmtp {',
      '    address = 127.0.0.1',
      `    port = ${port}`,
      '  }',
      '  unix_listener lmtp {',
      '    mode = 0600',
      '  }',
      '}',
      ...(options.authService
        ? [
            // tests only: plaintext passwords over loopback (docs/postfix.md: TLS between hosts)
            'disable_plaintext_auth = no',
            'auth_mechanisms = plain login',
            'service auth {',
            '  inet_listener auth-postfix {',
            '    address = 127.0.0.1',
            `    port = ${authPort}`,
            '  }',
            '}',
          ]
        : []),
      '',
    ].join('\n'),
  );
  const proc = spawn(bin, ['-F', '-c', join(dir, 'dovecot.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  proc.stderr!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const atExit = () => proc.kill('SIGKILL'); // the test process ends without afterAll: no Dovecot left behind
  process.once('exit', atExit);
  void exited.then(() => process.removeListener('exit', atExit));
  try {
    await waitForPort(port, 15000, proc, () => out);
    if (authPort) await waitForPort(authPort, 5000, proc, () => out);
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  const mailDir = (address: string) => join(mail, address.toLowerCase());
  return {
    port,
    authPort,
    dir,
    mailDir,
    async addUser(address: string) {
      known.add(address.toLowerCase());
      makeHome(address);
      writeUsers();
      // Dovecot re-reads the passwd-file when its modification time (in seconds) changes
      const later = new Date(Date.now() + 2000 * ++changes);
      utimesSync(usersFile, later, later);
      await new Promise((r) => setTimeout(r, 1100));
    },
    mails(address: string) {
      const files: string[] = [];
      for (const sub of ['new', 'cur']) {
        const d = join(mailDir(address), 'Maildir', sub);
        if (existsSync(d)) files.push(...readdirSync(d).map((f) => join(d, f)));
      }
      // Maildir names begin with the delivery time in seconds, then a unique part: sort by time, then name
      return files.sort((a, b) => basename(a).localeCompare(basename(b))).map((f) => readFileSync(f));
    },
    log: () => out,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}
