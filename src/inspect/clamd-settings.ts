/**
 * What the gateway can tell about the clamd it uses, at start: clamd writes
 * each scanned stream (INSTREAM) to a temporary file, and unpacks archives
 * there too; for decrypted mail never to touch a disk, its
 * `TemporaryDirectory` must be on a memory file system (tmpfs or ramfs).
 * Given the path of clamd's configuration file (`[av] clamd_config`), the
 * gateway reads it and says what does not hold; without it, the settings are
 * unknown and the gateway says so (docs/inspection.md).
 */
import { readFileSync, statfsSync } from 'node:fs';
import { errnoText } from '../errors/errno';

/** statfs f_type of the memory file systems (linux/magic.h). */
const MEMORY_FS: Record<number, string> = { 0x01021994: 'tmpfs', 0x858458f6: 'ramfs' };

export function parseClamdConf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z][A-Za-z0-9]*)(?:\s+(.*?))?\s*$/.exec(line);
    if (m && !line.trimStart().startsWith('#')) out.set(m[1]!.toLowerCase(), (m[2] ?? '').replace(/^"(.*)"$/, '$1'));
  }
  return out;
}

/** The file system type of `dir` when it is held in memory, else undefined. */
export function memoryFileSystem(dir: string): string | undefined {
  try {
    return MEMORY_FS[Number(statfsSync(dir).type)];
  } catch {
    return undefined;
  }
}

const yes = (v: string | undefined) => v !== undefined && /^(yes|true|1)$/i.test(v);

/** Warnings for the gateway's start log; empty when clamd keeps its temporary files in memory. */
export function clamdSettingsWarnings(confPath: string | undefined): string[] {
  if (!confPath)
    return [
      'clamd settings unknown: [av] clamd_config is not set in ssmax-inspect.ini, so the gateway cannot tell whether clamd keeps the decrypted mail it scans in memory; set TemporaryDirectory on a tmpfs in clamd.conf and point clamd_config at it (docs/inspection.md)',
    ];
  let conf: Map<string, string>;
  try {
    conf = parseClamdConf(readFileSync(confPath, 'utf8'));
  } catch (err) {
    return [`clamd settings unknown: cannot read [av] clamd_config ${confPath}: ${errnoText(err)}`];
  }
  const warnings: string[] = [];
  const tmp = conf.get('temporarydirectory');
  if (!tmp)
    warnings.push(
      `clamd (${confPath}) has no TemporaryDirectory: it writes scanned mail to its default temporary directory on disk; set TemporaryDirectory on a tmpfs (docs/inspection.md)`,
    );
  else if (!memoryFileSystem(tmp))
    warnings.push(
      `clamd (${confPath}) TemporaryDirectory ${tmp} is not on a tmpfs (or does not exist here): scanned mail would touch a disk (docs/inspection.md)`,
    );
  if (yes(conf.get('leavetemporaryfiles')))
    warnings.push(`clamd (${confPath}) has LeaveTemporaryFiles yes: scanned mail stays in its temporary directory`);
  if (!yes(conf.get('alertexceedsmax')))
    warnings.push(
      `clamd (${confPath}) has no AlertExceedsMax yes: a message or archive over clamd's scan limits is answered as clean without being scanned in full`,
    );
  return warnings;
}
