/**
 * `ssmax abuse …`: sender tracking across organisations (SSMAX §2.2;
 * docs/abuse.md). The receiving side reports a message (`report`, `serve`);
 * the sending side resolves a report or a bare token (`resolve`). This file
 * only parses arguments and calls src/abuse.
 */
import { writeFileSync } from 'node:fs';
import { AbuseConfigError, type AbuseConfig, keydClientFor, loadAbuseConfig } from '../abuse/config';
import { AbuseError } from '../abuse/errors';
import { buildAbuseReport, identifyReportedMessage } from '../abuse/report';
import { startReportServer } from '../abuse/report-server';
import { describeResolution, resolveReport, resolveToken, type Resolution } from '../abuse/resolve';
import { submitReport } from '../abuse/submit';
import { Directory } from '../directory/directory';
import { DirectoryConfigError, directoryOptions, loadDirectoryConfig } from '../directory/config';
import { CliError, type CliIo, EXIT, parseOptions, readInput, requiredOption, serveUntilSignal, subcommands } from './command';

const HELP = `Usage: ssmax abuse <subcommand> [options]

Subcommands:
  report --config FILE [--out FILE] [--send] [--rcpt ADDR] [--comment TEXT] MESSAGE.eml
                     verify the chain of a received message and write an ARF abuse report
                     to the sending organisation's abuse contact (--send: submit it)
  resolve --config FILE [--disclose] [--json] (REPORT.eml | --token TOKEN [--message-id ID])
                     resolve a report's tracking token to the registered sender (keyd, audited)
  serve --config FILE
                     run the HTTP endpoint that reports a posted message (web form, client button)

Run \`ssmax abuse <subcommand> --help\` for details. Configuration: config/ssmax-abuse.ini.`;

const SUB_HELP: Record<string, string> = {
  report: `Usage: ssmax abuse report --config FILE [--out FILE] [--send] [--rcpt ADDR] [--comment TEXT] MESSAGE.eml

Verifies the SSMAX seal chain of MESSAGE.eml (a message as received) with the
sealing organisations' bundles ([directory], [peers]), takes the sending
organisation (d=) and the tracking token (tt=) from seal i=1 and the abuse
contact from that organisation's bundle, and writes an ARF report (RFC 5965)
with the original headers, never the body. Only a copy this organisation
([abuse] domain) received is reported: the newest seal must be its own and
bind the recipient.

Options:
  --config FILE    ssmax-abuse.ini ([abuse] domain, from, reporting_mta; [directory]; [submit] for --send)
  --out FILE       write the report there (default: standard output, unless --send)
  --send           submit the report through the gateway ([submit]) to the abuse contact
  --rcpt ADDR      the recipient who complains (Original-Rcpt-To:); the newest seal must bind it
  --comment TEXT   a few words for the human-readable part`,
  resolve: `Usage: ssmax abuse resolve --config FILE [--disclose] [--json] [--cert FILE --key FILE] REPORT.eml
       ssmax abuse resolve --config FILE [--disclose] [--json] --token TOKEN [--message-id ID]

Resolves the tracking token of an abuse report (or a bare token) with keyd
and prints the registered user: address, pseudonymous code, certificate
serial, status, and whether the message-id matches. A report must name this
organisation ([abuse] domain) and its seal i=1 must verify with this
organisation's own bundle (when [directory] is configured); the reporting
organisation must have a seal in the original headers. keyd audits every
resolution and disclosure, refusals included. Disclosure needs [directory]
(seal i=1 and the reporter's seal verified) and the Message-ID the token was
minted for: with --token, give --message-id.

Options:
  --config FILE      ssmax-abuse.ini ([abuse] domain; [keyd] url, ca, cert/key = operator (admin role))
  --disclose         also reveal the identity reference: uses [keyd] disclosure_cert/disclosure_key
                     (disclosure role); keyd refuses, and audits, any other role
  --cert FILE, --key FILE  use this client certificate instead of the configured one
  --token TOKEN      a bare token instead of a report
  --message-id ID    with --token: say whether the token was minted for this Message-ID
  --json             print the answer as JSON`,
  serve: `Usage: ssmax abuse serve --config FILE

Runs the abuse-report endpoint on [server] listen (default 127.0.0.1:8025):
  POST /v1/abuse/report[?send=1][&rcpt=ADDR][&comment=TEXT]  body: the received message
  GET  /v1/health
Prints "abuse endpoint listening on HOST:PORT" when ready; SIGINT/SIGTERM stop it.
Set [server] bearer_token_file when the endpoint is reachable from untrusted hosts.`,
};

function need<T>(v: T | undefined, key: string, config: AbuseConfig): T {
  if (v === undefined) throw new CliError(`Config "${config.file}": ${key} is required`, EXIT.config);
  return v;
}

function openDirectory(config: AbuseConfig): Directory {
  if (!config.hasDirectory)
    throw new CliError(`Config "${config.file}": a [directory] section (roots, peers) is required to verify bundles`, EXIT.config);
  return new Directory(
    directoryOptions(loadDirectoryConfig(config.file, { otherSections: ['abuse', 'keyd', 'submit', 'server', 'registry'] })),
  );
}

async function report(args: string[], io: CliIo): Promise<number> {
  const usage = SUB_HELP.report as string;
  const { values, positionals } = parseOptions(
    args,
    {
      config: { type: 'string' },
      out: { type: 'string' },
      send: { type: 'boolean' },
      rcpt: { type: 'string' },
      comment: { type: 'string' },
    },
    usage,
  );
  if (values.help) return (io.out(usage), EXIT.ok);
  const config = loadAbuseConfig(requiredOption(values.config, 'config', usage));
  if (positionals.length !== 1) throw new CliError(`Give exactly one message file\n\n${usage}`, EXIT.usage);
  const message = readInput(positionals[0] as string, 'message');
  const from = need(config.from, '[abuse] from', config);
  const submit = values.send ? need(config.submit, '[submit] host', config) : undefined;
  const directory = openDirectory(config);
  try {
    const reported = await identifyReportedMessage(message, {
      lookup: (d) => directory.lookup(d),
      ownDomain: need(config.domain, '[abuse] domain', config),
      ...(typeof values.rcpt === 'string' ? { recipient: values.rcpt } : {}),
    });
    const built = await buildAbuseReport({
      reported,
      from,
      reportingMta: need(config.reportingMta, '[abuse] reporting_mta', config),
      now: new Date(),
      ...(typeof values.rcpt === 'string' ? { originalRcptTo: values.rcpt } : {}),
      ...(typeof values.comment === 'string' ? { comment: values.comment } : {}),
    });
    io.err(`Message sealed by ${reported.sealingDomain} (${reported.chainSummary}); abuse contact ${reported.abuseContact}`);
    if (typeof values.out === 'string') {
      writeFileSync(values.out, built);
      io.err(`Report written to ${values.out}`);
    } else if (!submit) {
      io.out(built.toString('utf8'));
    }
    if (submit) {
      const r = await submitReport(built, { from, to: reported.abuseContact }, submit);
      io.out(`Report for ${reported.sealingDomain} sent to ${reported.abuseContact}: ${r.response}`);
    } else if (typeof values.out === 'string') {
      io.out(`Report for ${reported.sealingDomain} written to ${values.out} (to ${reported.abuseContact})`);
    }
    return EXIT.ok;
  } finally {
    await directory.close();
  }
}

async function resolve(args: string[], io: CliIo): Promise<number> {
  const usage = SUB_HELP.resolve as string;
  const { values, positionals } = parseOptions(
    args,
    {
      config: { type: 'string' },
      disclose: { type: 'boolean' },
      json: { type: 'boolean' },
      token: { type: 'string' },
      'message-id': { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
    },
    usage,
  );
  if (values.help) return (io.out(usage), EXIT.ok);
  const config = loadAbuseConfig(requiredOption(values.config, 'config', usage));
  const token = typeof values.token === 'string' ? values.token : undefined;
  if ((token === undefined) === (positionals.length === 0) || positionals.length > 1)
    throw new CliError(`Give one report file or --token TOKEN\n\n${usage}`, EXIT.usage);
  if ((values.cert === undefined) !== (values.key === undefined))
    throw new CliError(`--cert and --key go together\n\n${usage}`, EXIT.usage);
  const domain = need(config.domain, '[abuse] domain', config);
  const disclose = values.disclose === true;
  const raw = token === undefined ? readInput(positionals[0] as string, 'report') : undefined;
  const keyd = keydClientFor(
    config,
    disclose ? 'disclosure' : 'operator',
    typeof values.cert === 'string' ? { cert: values.cert, key: values.key as string } : undefined,
  );
  const directory = raw && config.hasDirectory ? openDirectory(config) : undefined;
  try {
    let r: Resolution;
    if (raw) {
      r = await resolveReport(raw, {
        keyd,
        domain,
        disclose,
        ...(directory ? { ownBundle: () => directory.lookup(domain), lookup: (d: string) => directory.lookup(d) } : {}),
      });
    } else {
      r = await resolveToken(token as string, {
        keyd,
        domain,
        disclose,
        ...(typeof values['message-id'] === 'string' ? { messageId: values['message-id'] } : {}),
      });
    }
    if (values.json) {
      const { report: _report, ...rest } = r;
      io.out(JSON.stringify(rest, null, 2));
    } else {
      for (const line of describeResolution(r)) io.out(line);
    }
    return EXIT.ok;
  } finally {
    keyd.close();
    await directory?.close();
  }
}

async function serve(args: string[], io: CliIo): Promise<number> {
  const usage = SUB_HELP.serve as string;
  const { values } = parseOptions(args, { config: { type: 'string' } }, usage);
  if (values.help) return (io.out(usage), EXIT.ok);
  const config = loadAbuseConfig(requiredOption(values.config, 'config', usage));
  const directory = openDirectory(config);
  const bearerToken = config.server.bearerTokenFile
    ? readInput(config.server.bearerTokenFile, 'bearer token file').toString('utf8').trim()
    : undefined;
  const server = await startReportServer({
    directory,
    from: need(config.from, '[abuse] from', config),
    ownDomain: need(config.domain, '[abuse] domain', config),
    reportingMta: need(config.reportingMta, '[abuse] reporting_mta', config),
    host: config.server.host,
    port: config.server.port,
    maxBytes: config.server.maxBytes,
    log: (l) => io.err(l),
    ...(config.submit ? { submit: config.submit } : {}),
    ...(bearerToken ? { bearerToken } : {}),
  });
  return serveUntilSignal(io, `abuse endpoint listening on ${config.server.host}:${server.port}`, undefined, async () => {
    await server.close();
    await directory.close();
  });
}

const EXIT_OF: Record<string, number> = {
  format: EXIT.dataErr,
  chain: EXIT.dataErr,
  foreign: EXIT.dataErr,
  refused: EXIT.failure,
  directory: EXIT.unavailable,
  unavailable: EXIT.unavailable,
};

export const abuseCommand = subcommands(
  'Sender tracking: ARF abuse reports (report, serve) and token resolution (resolve)',
  HELP,
  async (sub, rest, io) => {
    switch (sub) {
      case 'report':
        return report(rest, io);
      case 'resolve':
        return resolve(rest, io);
      case 'serve':
        return serve(rest, io);
      default:
        throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
    }
  },
  (err) => {
    if (err instanceof AbuseError) return new CliError(err.message, EXIT_OF[err.code] ?? EXIT.failure);
    if (err instanceof AbuseConfigError || err instanceof DirectoryConfigError) return new CliError(err.message, EXIT.config);
    return undefined;
  },
);
