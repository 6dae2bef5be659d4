/**
 * Where the decrypted mail the gateway hands clamd can go: clamd writes each
 * scanned stream (INSTREAM) to a temporary file, and unpacks archives there
 * too, so for decrypted mail never to touch a disk its `TemporaryDirectory`
 * must be on a memory file system (tmpfs or ramfs); and a clamd reached over
 * TCP gets the mail in cleartext, so it must be on this machine (a loopback
 * address). One check, run when ssmax-inspect.ini is parsed
 * (src/inspect/config.ts parseInspectionConfig), by the gateway and by the
 * inspector alike: either condition not shown to hold is a configuration
 * error at start, naming the setting, unless the operator opted in
 * (`[av] allow_plaintext_on_disk`, `[av] allow_plaintext_over_network`;
 * docs/inspection.md).
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

export interface ClamdSettingsFindings {
  /** Why clamd would (or could, its settings unknown) write the decrypted mail it scans to a disk; empty: it keeps it in memory. */
  readonly plaintextOnDisk: readonly string[];
  /** Other settings worth a warning at start (not about where the mail goes). */
  readonly warnings: readonly string[];
  /** The most bytes clamd takes in one scan (StreamMaxLength), when its configuration was read. */
  readonly streamMaxBytes?: number;
}

/** clamd's StreamMaxLength when it is not set (ClamAV 1.x; Debian's packaged clamd.conf sets 25M). */
export const CLAMD_STREAM_MAX_DEFAULT = 100 * 1024 * 1024;

const SIZE_UNIT: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * A size in clamd.conf's notation: bytes, or kibibytes, mebibytes or gibibytes (`25M`, `1024K`, `1G`), an inline
 * comment after it allowed; undefined if it is none. A number with a leading zero, which clamd may read as octal, is
 * none here either (the caller warns).
 */
export function parseClamdSize(value: string): number | undefined {
  const m = /^(0|[1-9]\d{0,9})([kKmMgG]?)(?:\s+#.*)?$/.exec(value.trim());
  if (!m) return undefined;
  return Number(m[1]) * SIZE_UNIT[m[2]!.toLowerCase()]!;
}

/** What clamd's configuration file `confPath` (`[av] clamd_config`; undefined: not set) says about the mail clamd scans. */
export function clamdSettingsFindings(confPath: string | undefined): ClamdSettingsFindings {
  if (!confPath)
    return {
      plaintextOnDisk: [
        'clamd settings unknown: [av] clamd_config is not set, so it cannot be checked that clamd keeps the decrypted mail it scans in memory (a stock clamd writes it to /tmp, on disk)',
      ],
      warnings: [],
    };
  let conf: Map<string, string>;
  try {
    conf = parseClamdConf(readFileSync(confPath, 'utf8'));
  } catch (err) {
    return { plaintextOnDisk: [`clamd settings unknown: cannot read [av] clamd_config ${confPath}: ${errnoText(err)}`], warnings: [] };
  }
  const disk: string[] = [];
  const warnings: string[] = [];
  const tmp = conf.get('temporarydirectory');
  if (!tmp)
    disk.push(`clamd (${confPath}) has no TemporaryDirectory: it writes the mail it scans to its default temporary directory, on disk`);
  else if (!memoryFileSystem(tmp))
    disk.push(
      `clamd (${confPath}) TemporaryDirectory ${tmp} is not on a tmpfs or ramfs (or does not exist here): the mail it scans would touch a disk`,
    );
  if (yes(conf.get('leavetemporaryfiles')))
    disk.push(`clamd (${confPath}) has LeaveTemporaryFiles yes: the mail it scans stays in its temporary directory`);
  if (!yes(conf.get('alertexceedsmax')))
    warnings.push(
      `clamd (${confPath}) has no AlertExceedsMax yes: a message or archive over clamd's scan limits is answered as clean without being scanned in full`,
    );
  const streamMax = conf.get('streammaxlength');
  const streamMaxBytes = streamMax === undefined ? CLAMD_STREAM_MAX_DEFAULT : parseClamdSize(streamMax);
  if (streamMaxBytes === undefined)
    warnings.push(
      `clamd (${confPath}) StreamMaxLength ${streamMax} is not a size this gateway reads: clamd's answer tells a message it refuses as too long`,
    );
  return { plaintextOnDisk: disk, warnings, ...(streamMaxBytes !== undefined ? { streamMaxBytes } : {}) };
}
