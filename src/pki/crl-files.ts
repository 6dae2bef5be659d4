/**
 * The CRL files a service checks client certificates against (keyd for its
 * callers and for the administrator a console request names; the console
 * for its logins), read only when they change. Each call looks at the
 * files' metadata (device, inode, size, change and modification times, in
 * nanoseconds) and reads a file again only when that differs from the last
 * read: an unchanged CRL costs a stat per check, a replaced one (the
 * renewal's write-and-rename, or an operator's copy) is used from the next
 * check on. A file that cannot be read throws, every time: a certificate is
 * never accepted against a CRL that is gone (fail closed).
 */
import { statSync } from 'node:fs';

interface Known {
  readonly stamp: string;
  readonly text: string;
}

export class CrlFiles {
  private readonly known = new Map<string, Known>();
  /** How many times a file was read (for tests and metrics). */
  reads = 0;

  /** `read`: the file's text, throwing a clear error when it cannot be read. */
  constructor(
    readonly files: readonly string[],
    private readonly read: (file: string) => string,
  ) {}

  /** The CRLs (PEM text), one per file, as they are now. */
  current(): string[] {
    return this.files.map((file) => {
      let stamp: string;
      try {
        const s = statSync(file, { bigint: true });
        stamp = `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
      } catch {
        this.known.delete(file);
        this.reads++;
        return this.read(file); // throws with the reader's words (gone, not readable)
      }
      const k = this.known.get(file);
      if (k && k.stamp === stamp) return k.text;
      const text = this.read(file);
      this.reads++;
      this.known.set(file, { stamp, text });
      return text;
    });
  }
}
