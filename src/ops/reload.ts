/**
 * Renewed certificates are picked up without a restart (docs/operations.md,
 * "Renewals"): keyd re-certifies the certificate files in place (atomically,
 * src/keyd/cert-renewal.ts); each process watches the files it serves or
 * presents and swaps them in when their content changes. A file that cannot
 * be read, or a certificate that does not fit the key it is used with, leaves
 * the previous one in use and logs a WARNING line.
 */
import { readFileSync } from 'node:fs';

/** How often the files are compared (one read of a few small files). */
export const RELOAD_CHECK_MS = 1000;

export class FileWatch {
  private last: string;
  private timer: NodeJS.Timeout | undefined;

  /**
   * `apply` gets the new texts (same order as `files`); it throws to refuse them (the previous
   * ones stay), or answers 'later' to be asked again at the next check.
   */
  constructor(
    private readonly files: readonly string[],
    private readonly apply: (texts: string[]) => void | 'later',
    private readonly log: (line: string) => void,
    private readonly what: string,
  ) {
    this.last = this.read().join('\0');
  }

  private read(): string[] {
    return this.files.map((f) => readFileSync(f, 'utf8'));
  }

  /** Compares once; true when a change was applied. Never throws. */
  check(): boolean {
    let texts: string[];
    try {
      texts = this.read();
    } catch (err) {
      this.log(`WARNING cannot re-read ${this.what} (${this.files.join(', ')}), the previous one stays in use: ${(err as Error).message}`);
      return false;
    }
    const joined = texts.join('\0');
    if (joined === this.last) return false;
    try {
      if (this.apply(texts) === 'later') return false;
    } catch (err) {
      this.log(`WARNING ${this.what} changed on disk but was not taken, the previous one stays in use: ${(err as Error).message}`);
      this.last = joined; // once per change, not every second
      return false;
    }
    this.last = joined;
    this.log(`${this.what} reloaded (${this.files[0]})`);
    return true;
  }

  start(intervalMs = RELOAD_CHECK_MS): this {
    this.timer = setInterval(() => this.check(), intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
