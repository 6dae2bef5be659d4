/**
 * A real Postfix (Debian's postfix package, put in place by
 * scripts/ensure-postfix.sh) as an organisation's own MTA in front of the
 * gateway, for the tests: a non-system instance (`postfix -c DIR start`)
 * with its own config_directory, queue_directory and data_directory in a
 * temporary folder, listening on free loopback ports only, logging to a file
 * in that folder; the system's Postfix (/etc/postfix) is neither used nor
 * started. Postfix's master must start as root (it runs its daemons as the
 * `postfix` user), as the tests do in CI.
 *
 * Two listeners, as docs/postfix.md describes:
 *  - `submission`: where the organisation's users (by IP: mynetworks) hand
 *    mail in; everything is relayed to the gateway (relayhost), local mail
 *    included, so the gateway sees every message;
 *  - `inbound`: where the gateway hands mail for local users back (its
 *    [delivery] host); everything received there goes to `deliverTo`
 *    (content_filter, e.g. Dovecot's LMTP service), never back out.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePort } from '../../src/demo/haraka';
import { systemBinary } from './dovecot';

export interface PostfixOptions {
  readonly myhostname: string;
  /** The gateway: host:port. */
  readonly relayhost: string;
  /** Postfix's source address towards the gateway (the gateway's [main] trusted_relays lists it). */
  readonly bindAddress: string;
  /** Where mail handed back by the gateway goes: a Postfix next hop, e.g. "lmtp:inet:127.0.0.1:24". */
  readonly deliverTo: string;
  /** Further main.cf lines. */
  readonly mainCf?: readonly string[];
  /** Authenticate to the gateway with this SMTP AUTH login (the gateway lists it in [main] trusted_relay_logins). */
  readonly sasl?: { readonly user: string; readonly pass: string };
  /**
   * A third listener (`authSubmissionPort`) where users log in (SASL through Dovecot's authentication
   * service at this Postfix address, e.g. "inet:127.0.0.1:12345") and may only use the envelope senders
   * `senderLogins` gives them (address → login): the binding docs/postfix.md asks for.
   */
  readonly userAuth?: { readonly dovecot: string; readonly senderLogins: Readonly<Record<string, string>> };
  /** Ports chosen beforehand (the gateway's config names the inbound one); free ones otherwise. */
  readonly ports?: { readonly submission: number; readonly inbound: number };
}

export interface PostfixInstance {
  readonly dir: string;
  readonly submissionPort: number;
  readonly inboundPort: number;
  /** With `userAuth`: the listener where users log in; 0 otherwise. */
  readonly authSubmissionPort: number;
  /** Postfix's log (maillog_file). */
  log(): string;
  stop(): Promise<void>;
}

function run(bin: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: 60000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

function listening(port: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  return new Promise((resolve) => {
    const attempt = () => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > end) resolve(false);
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

export async function startPostfix(o: PostfixOptions): Promise<PostfixInstance> {
  const postfix = systemBinary('postfix', 'scripts/ensure-postfix.sh');
  if (process.getuid?.() !== 0)
    throw new Error(
      "Postfix's master must be started as root (it runs its daemons as the postfix user): run these tests as root, as CI does",
    );
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-postfix-'));
  chmodSync(dir, 0o711); // Postfix's daemons (user postfix) reach their queue and data folders inside
  const conf = join(dir, 'conf');
  const queue = join(dir, 'queue');
  const data = join(dir, 'data');
  for (const d of [conf, queue, data]) mkdirSync(d);
  chownSync(data, Number(await run('/usr/bin/id', ['-u', 'postfix']).then((r) => r.out.trim())), 0);
  const submissionPort = o.ports?.submission ?? (await freePort());
  const inboundPort = o.ports?.inbound ?? (await freePort());
  const authSubmissionPort = o.userAuth ? await freePort() : 0;
  const maillog = join(dir, 'maillog');
  writeFileSync(
    join(conf, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      `maillog_file = ${maillog}`,
      `maillog_file_prefixes = ${dir}`,
      'inet_interfaces = loopback-only',
      'inet_protocols = ipv4',
      `myhostname = ${o.myhostname}`,
      // nothing is delivered by this Postfix itself: every message goes to the gateway (relayhost)
      'mydestination =',
      'local_recipient_maps =',
      'relay_domains =',
      'alias_maps =',
      'alias_database =',
      'mynetworks = 127.0.0.0/8',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      `relayhost = [${o.relayhost.replace(/:(\d+)$/, ']:$1')}`,
      `smtp_bind_address = ${o.bindAddress}`,
      'smtp_dns_support_level = disabled',
      'smtp_tls_security_level = none',
      // the message as the user wrote it: no header rewriting (it would break a user signature)
      'local_header_rewrite_clients =',
      // tests: retry a deferred message within seconds, not minutes
      'queue_run_delay = 1s',
      'minimal_backoff_time = 1s',
      'maximal_backoff_time = 2s',
      ...(o.sasl
        ? [
            'smtp_sasl_auth_enable = yes',
            `smtp_sasl_password_maps = texthash:${join(conf, 'sasl_passwd')}`,
            // tests only: plaintext AUTH over loopback without TLS (docs/postfix.md: use TLS between hosts)
            'smtp_sasl_security_options = noanonymous',
            'smtp_sasl_mechanism_filter = plain',
          ]
        : []),
      ...(o.userAuth
        ? [
            'smtpd_sasl_type = dovecot',
            `smtpd_sasl_path = ${o.userAuth.dovecot}`,
            `smtpd_sender_login_maps = inline:{ ${Object.entries(o.userAuth.senderLogins)
              .map(([a, l]) => `${a}=${l}`)
              .join(', ')} }`,
          ]
        : []),
      ...(o.mainCf ?? []),
      '',
    ].join('\n'),
  );
  if (o.sasl)
    writeFileSync(join(conf, 'sasl_passwd'), `[${o.relayhost.replace(/:(\d+)$/, ']:$1')} ${o.sasl.user}:${o.sasl.pass}\n`, { mode: 0o600 });
  writeFileSync(
    join(conf, 'master.cf'),
    [
      `127.0.0.1:${submissionPort} inet n - n - - smtpd`,
      `127.0.0.1:${inboundPort} inet n - n - - smtpd -o content_filter=${o.deliverTo} -o smtpd_relay_restrictions=permit_mynetworks,reject`,
      ...(o.userAuth
        ? [
            `127.0.0.1:${authSubmissionPort} inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes -o smtpd_relay_restrictions=permit_sasl_authenticated,reject` +
              ' -o smtpd_sender_restrictions=reject_sender_login_mismatch',
          ]
        : []),
      'postlog unix-dgram n - n - 1 postlogd',
      'pickup unix n - n 60 1 pickup',
      'cleanup unix n - n - 0 cleanup',
      'qmgr unix n - n 300 1 qmgr',
      'rewrite unix - - n - - trivial-rewrite',
      'bounce unix - - n - 0 bounce',
      'defer unix - - n - 0 bounce',
      'trace unix - - n - 0 bounce',
      'verify unix - - n - 1 verify',
      'flush unix n - n 1000? 0 flush',
      'proxymap unix - - n - - proxymap',
      'smtp unix - - n - - smtp',
      'relay unix - - n - - smtp',
      'showq unix n - n - - showq',
      'error unix - - n - - error',
      'retry unix - - n - - error',
      'discard unix - - n - - discard',
      'lmtp unix - - n - - lmtp',
      'anvil unix - - n - 1 anvil',
      'scache unix - - n - 1 scache',
      '',
    ].join('\n'),
  );
  const log = () => (existsSync(maillog) ? readFileSync(maillog, 'utf8') : '');
  const check = await run(postfix, ['-c', conf, 'check']);
  if (check.code !== 0)
    throw new Error(
      `postfix -c ${conf} check failed (${check.code}): ${check.out}${log()}\n(Postfix prints its reasons only to a terminal or syslog: run the command by hand)`,
    );
  const start = await run(postfix, ['-c', conf, 'start']);
  // Postfix's master runs detached: stop it even when the test process ends without afterAll
  const atExit = () => {
    try {
      execFileSync(postfix, ['-c', conf, 'stop'], { stdio: 'ignore', timeout: 10000 });
    } catch {
      // already stopped
    }
  };
  process.once('exit', atExit);
  const stop = async () => {
    process.removeListener('exit', atExit);
    await run(postfix, ['-c', conf, 'stop']);
  };
  if (start.code !== 0 || !(await listening(submissionPort, 15000)) || !(await listening(inboundPort, 5000))) {
    await stop();
    throw new Error(`Postfix did not start on 127.0.0.1:${submissionPort}/${inboundPort}: ${start.out}\n${log()}`);
  }
  if (authSubmissionPort && !(await listening(authSubmissionPort, 5000))) {
    await stop();
    throw new Error(`Postfix did not listen on 127.0.0.1:${authSubmissionPort}:\n${log()}`);
  }
  return { dir, submissionPort, inboundPort, authSubmissionPort, log, stop };
}
