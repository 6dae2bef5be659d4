/**
 * `ssmax keyd …`: run the key service, and its offline tools (master key
 * creation, k-of-n backup and restore, audit verification, rotation).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadKeydConfig } from '../keyd/config';
import { KEYD_ACTOR, openKeyd, startKeyd } from '../keyd/daemon';
import { KeydError } from '../keyd/errors';
import { StoreInUseError } from '../keyd/store-lock';
import { backupKeyd, restoreKeyd } from '../keyd/backup';
import { restoreMasterKey, splitMasterKey } from '../keyd/master-backup';
import { createMasterKeyFile, loadMasterKey } from '../keyd/master-key';
import { readOrgCaKey, wrapOrgCaKey } from '../keyd/org-ca-key';
import { writeFileAtomic } from '../fs/atomic';
import {
  CliError,
  type CliIo,
  createOutputDir,
  EXIT,
  parseOptions,
  requiredOption,
  requireReadable,
  serveUntilSignal,
  subcommands,
} from './command';

const HELP = `Usage: ssmax keyd <subcommand> [options]

Subcommands:
  run --config FILE                     run the key service (HTTPS, mutual TLS) until SIGINT/SIGTERM
  init-master --out FILE                create a new master key file (mode 0600)
  backup-master --config FILE --shares N --threshold K [--out-dir DIR]
                                        split the master key into N shares, any K of which restore it
  restore-master --out FILE SHARE...    restore the master key from K share files
  audit verify --config FILE            check the audit log's hash chain
  rotate --config FILE                  create and activate a new org key version now (old one retired)
  backup --config FILE --out DIR        copy the data directory while keyd runs (LMDB copy, checked)
  restore --config FILE --from DIR [--next-version N]
                                        restore a backup into an empty data_dir (keyd stopped)
  wrap-org-ca-key --config FILE         encrypt an unencrypted [pki] org_ca_key under the master key

Run \`ssmax keyd <subcommand> --help\` for details. Configuration: config/ssmax-keyd.ini.`;

const SUB_HELP: Record<string, string> = {
  run: 'Usage: ssmax keyd run --config FILE\n\nRuns keyd in the foreground; SIGINT or SIGTERM stop it gracefully.\nPrints "keyd listening on HOST:PORT" when ready. Holds its data_dir while it runs: a second keyd on the\nsame store exits 69. A file it needs that cannot be used (CRL, TLS certificate or key, org CA) exits 78.',
  'init-master': 'Usage: ssmax keyd init-master --out FILE\n\nWrites 32 random bytes (hex) to FILE with mode 0600. Refuses to overwrite.',
  'backup-master':
    'Usage: ssmax keyd backup-master --config FILE --shares N --threshold K [--out-dir DIR]\n\nSplits the master key by Shamir secret sharing. With --out-dir, writes share-1.txt … share-N.txt\n(mode 0600), one per administrator; otherwise prints one share per line. Fewer than K shares reveal nothing.',
  'restore-master':
    'Usage: ssmax keyd restore-master --out FILE SHARE-FILE...\n\nCombines at least K shares back into the master key and writes it to FILE (mode 0600).',
  audit:
    'Usage: ssmax keyd audit verify --config FILE\n\nWalks the whole audit log and checks every link and the sealed head (newest records deleted); exits 0 if intact,\n1 naming the first bad record, 66 when data_dir holds no store (nothing is created).',
  backup:
    "Usage: ssmax keyd backup --config FILE --out DIR\n\nCopies keyd's LMDB store (data_dir) into DIR (absent or empty; else exit 73), every file mode 0600, while keyd runs, writes a manifest\n(ssmax-keyd-backup.json, format 2: domain, time, audit length and sealed head, SHA-256, under a MAC of the\naudit key) and checks the copy against the master key\nand its audit chain. Keys in the copy are wrapped under the master key: back that up apart (backup-master).",
  restore:
    "Usage: ssmax keyd restore --config FILE --from DIR [--next-version N]\n\nRestores a backup made by `ssmax keyd backup` into the data_dir of FILE, which must be empty or absent\n(stop keyd first). Refuses a copy that does not match its manifest, another domain, another master key,\na manifest or an audit chain that does not verify (records deleted too). What the backup cannot know:\nkey versions made after it are never made again (the next one is N with --next-version: the newest\nversion in the published bundle + 1; else 100 past the backup's newest), and users the org CA's CRL\nlists are marked revoked again (certificates on hold excepted). It prints both; exit 1 when the CRLs could not\nall be read (the store is restored; keyd applies them again at start).",
  'wrap-org-ca-key':
    'Usage: ssmax keyd wrap-org-ca-key --config FILE\n\nReplaces an unencrypted org CA key ([pki] org_ca_key, as earlier versions of `ssmax setup` wrote it) with\nthe same key encrypted (PKCS#8) under a passphrase derived from the master key ([keyd] master_key), mode\n0600. A key already encrypted is left as it is; with [pki] org_ca_passphrase_file set, nothing is done.',
  rotate:
    'Usage: ssmax keyd rotate --config FILE\n\nCreates a new org key version, active at once; the previous one is retired (still usable for the grace period).\nA running keyd picks it up without a restart. data_dir must hold a store (else exit 66, nothing created).',
};

/** A master key file is never overwritten: 73, as every output that exists. */
function refuseExisting(path: string): void {
  if (existsSync(path)) throw new CliError(`Cannot write "${path}": the file exists (a master key is never overwritten)`, EXIT.cantCreate);
}

async function runSub(sub: string, args: string[], io: CliIo): Promise<number> {
  const usage = SUB_HELP[sub] ?? HELP;
  switch (sub) {
    case 'run': {
      const { values } = parseOptions(args, { config: { type: 'string' } }, usage);
      if (values.help) return (io.out(usage), EXIT.ok);
      const config = loadKeydConfig(requiredOption(values.config, 'config', usage));
      const keyd = await startKeyd(config, { log: (l) => io.err(l) });
      return serveUntilSignal(io, `keyd listening on ${config.host}:${keyd.port} for ${config.domain}`, 'keyd: stopping', () =>
        keyd.stop(),
      );
    }
    case 'init-master': {
      const { values } = parseOptions(args, { out: { type: 'string' } }, usage);
      if (values.help) return (io.out(usage), EXIT.ok);
      const out = requiredOption(values.out, 'out', usage);
      refuseExisting(out);
      createOutputDir(dirname(resolve(out)));
      createMasterKeyFile(out);
      io.out(`master key written to ${values.out} (mode 0600)`);
      return EXIT.ok;
    }
    case 'backup-master': {
      const { values } = parseOptions(
        args,
        { config: { type: 'string' }, shares: { type: 'string' }, threshold: { type: 'string' }, 'out-dir': { type: 'string' } },
        usage,
      );
      if (values.help) return (io.out(usage), EXIT.ok);
      const config = loadKeydConfig(requiredOption(values.config, 'config', usage));
      const shares = await splitMasterKey(
        loadMasterKey(config.masterKeyFile),
        Number(requiredOption(values.shares, 'shares', usage)),
        Number(requiredOption(values.threshold, 'threshold', usage)),
      );
      if (values['out-dir']) {
        const outDir = values['out-dir'] as string;
        createOutputDir(outDir);
        shares.forEach((s, i) => writeFileSync(join(outDir, `share-${i + 1}.txt`), `${s}\n`, { mode: 0o600, flag: 'wx' }));
        io.out(`${shares.length} shares written to ${values['out-dir']} (any ${values.threshold} restore the key)`);
      } else {
        for (const s of shares) io.out(s);
      }
      return EXIT.ok;
    }
    case 'restore-master': {
      const { values, positionals } = parseOptions(args, { out: { type: 'string' } }, usage);
      if (values.help) return (io.out(usage), EXIT.ok);
      const out = requiredOption(values.out, 'out', usage);
      if (positionals.length === 0) throw new CliError(`no share files given\n\n${usage}`, EXIT.usage);
      for (const f of positionals) requireReadable(f, 'share file');
      const lines = positionals.map((f) => readFileSync(f, 'utf8').trim());
      refuseExisting(out);
      createOutputDir(dirname(resolve(out)));
      createMasterKeyFile(out, await restoreMasterKey(lines));
      io.out(`master key restored from ${lines.length} shares to ${out} (mode 0600)`);
      return EXIT.ok;
    }
    case 'audit': {
      const [verb, ...rest] = args;
      if (verb === '--help' || verb === '-h') return (io.out(usage), EXIT.ok);
      if (verb !== 'verify') throw new CliError(`unknown audit subcommand "${verb ?? ''}"\n\n${usage}`, EXIT.usage);
      const { values } = parseOptions(rest, { config: { type: 'string' } }, usage);
      if (values.help) return (io.out(usage), EXIT.ok);
      const parts = openKeyd(loadKeydConfig(requiredOption(values.config, 'config', usage)), undefined, undefined, undefined, false); // an existing store only (66)
      try {
        const r = parts.audit.verify();
        if (r.ok) {
          io.out(
            `audit log intact: ${r.count} records${r.unsealed ? ' (head not sealed yet: no record written since the upgrade; the next one seals it)' : ''}`,
          );
          return EXIT.ok;
        }
        io.err(`audit log BROKEN at record ${r.seq}: ${r.reason}`);
        return EXIT.failure;
      } finally {
        await parts.store.close();
      }
    }
    case 'backup': {
      const { values } = parseOptions(args, { config: { type: 'string' }, out: { type: 'string' } }, usage);
      if (values.help) return (io.out(usage), EXIT.ok);
      const m = await backupKeyd(loadKeydConfig(requiredOption(values.config, 'config', usage)), requiredOption(values.out, 'out', usage));
      io.out(`keyd backup of ${m.domain} written to ${String(values.out)}: ${m.auditRecords} audit records, verified; sha256 ${m.sha256}`);
      return EXIT.ok;
    }
    case 'restore': {
      const { values } = parseOptions(
        args,
        { config: { type: 'string' }, from: { type: 'string' }, 'next-version': { type: 'string' } },
        usage,
      );
      if (values.help) return (io.out(usage), EXIT.ok);
      const config = loadKeydConfig(requiredOption(values.config, 'config', usage));
      const given = values['next-version'] as string | undefined;
      if (given !== undefined && !/^[1-9][0-9]{0,8}$/.test(given))
        throw new CliError(`--next-version must be a version number (the newest published + 1), not "${given}"\n\n${usage}`, EXIT.usage);
      const r = await restoreKeyd(
        config,
        requiredOption(values.from, 'from', usage),
        given === undefined ? {} : { nextVersion: Number(given) },
      );
      const m = r.manifest;
      io.out(
        `keyd backup of ${m.domain} made ${m.created} restored into ${config.dataDir}: audit chain verified (${m.auditRecords} records at backup time)`,
      );
      // what the backup cannot know (docs/operations.md, "Backups and restore")
      io.out(
        `org keys: the newest in the backup is ${r.newestKeyId ?? 'none'}; key versions made after ${m.created} are lost: mail to them is refused as an unknown key`,
      );
      io.out(
        `the next org key version keyd makes is ${config.domain}:v${r.nextOrgVersion}, the next tracking key version ${r.nextTrackingVersion}${given === undefined ? ` (if the published bundle names ${config.domain}:v${r.nextOrgVersion} or later, restore again with --next-version above it)` : ''}`,
      );
      if (r.unchecked) io.err(`WARNING ${r.unchecked}`);
      if (r.revoked.length > 0) io.out(`marked revoked, as the org CA's CRL lists their certificates: ${r.revoked.join(', ')}`);
      for (const p of r.problems) io.err(`WARNING revocations: ${p}`);
      io.out(
        `not in the backup: users, lists and settings changed after ${m.created} (revocations are taken from the CRL); check them before starting keyd`,
      );
      if (r.problems.length > 0) {
        // users revoked after the backup may be active again: not an all-clear (keyd applies the CRL again at each start)
        io.err(
          `ERROR the store is restored, but the org CA's revocations could not all be applied (above): make [pki] crls readable; keyd applies them again when it starts`,
        );
        return EXIT.failure;
      }
      return EXIT.ok;
    }
    case 'rotate': {
      const { values } = parseOptions(args, { config: { type: 'string' } }, usage);
      if (values.help) return (io.out(usage), EXIT.ok);
      const parts = openKeyd(loadKeydConfig(requiredOption(values.config, 'config', usage)), undefined, undefined, undefined, false); // an existing store only (66)
      try {
        let changes;
        try {
          changes = await parts.service.maintain({ ...KEYD_ACTOR, name: 'ssmax keyd rotate' }, true);
        } catch (err) {
          if (!(err instanceof KeydError && err.code === 'superseded')) throw err;
          io.err(`superseded: ${err.message}`); // a concurrent rotation won; this one wrote nothing
          return EXIT.failure;
        }
        for (const c of changes) io.out(`${c.keyId} ${c.change}`);
        return EXIT.ok;
      } finally {
        await parts.store.close();
      }
    }
    case 'wrap-org-ca-key': {
      const { values } = parseOptions(args, { config: { type: 'string' } }, usage);
      if (values.help) return (io.out(usage), EXIT.ok);
      const config = loadKeydConfig(requiredOption(values.config, 'config', usage));
      const file = config.pki.orgCaKey;
      if (!file) throw new CliError(`${config.file}: [pki] org_ca_key is not set: keyd holds no org CA key`, EXIT.config);
      if (config.pki.orgCaPassphraseFile) {
        io.out(`${file}: encrypted under [pki] org_ca_passphrase_file; left as it is`);
        return EXIT.ok;
      }
      let unencrypted = false;
      const key = readOrgCaKey(config, () => (unencrypted = true)); // checks it reads, with the master key when encrypted
      if (!unencrypted) {
        io.out(`${file}: already encrypted under the master key; left as it is`);
        return EXIT.ok;
      }
      writeFileAtomic(file, wrapOrgCaKey(key, loadMasterKey(config.masterKeyFile)), 0o600);
      io.out(`${file}: encrypted under the master key "${config.masterKeyFile}"`);
      return EXIT.ok;
    }
    default:
      throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`, EXIT.usage);
  }
}

export const keydCommand = subcommands(
  'Key service: run it; data and master key backup/restore; audit verification; rotation; org CA key wrapping',
  HELP,
  // `ssmax keyd --config FILE` runs the service, as the issue names it.
  (sub, rest, io) => (sub === '--config' || sub.startsWith('--config=') ? runSub('run', [sub, ...rest], io) : runSub(sub, rest, io)),
  (err) => {
    if (err instanceof StoreInUseError) return new CliError(err.message, EXIT.unavailable); // one keyd per store
    return err instanceof KeydError ? new CliError(err.message, err.code === 'config' ? EXIT.config : EXIT.failure) : undefined;
  },
);
