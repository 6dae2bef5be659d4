/**
 * When the gateway starts sealing with a renewed sealing certificate
 * (docs/operations.md, "Renewals"). keyd re-certifies the sealing key in
 * place; the gateway keeps sealing with the certificate in use until the
 * organisation's own published bundle carries the renewed one, so a peer that
 * meets the new certificate and refreshes its copy of the bundle finds it.
 *
 * The wait has a limit on the other side too: the publisher keeps the
 * previous certificate in the bundle only while it outlives the bundle, so
 * a gateway that lags keeps sealing with a certificate peers no longer find.
 * Therefore:
 *  - the own bundle is fetched afresh (Directory.refresh: never a fetch that
 *    was under way before the re-publication) every `fastMs` during the first
 *    `fastForMs` of the wait (the publisher re-publishes within its poll
 *    interval), then every `slowMs`;
 *  - when a fetched own bundle no longer carries the certificate in use, the
 *    gateway switches to the renewed one at once (staying is certain refusal).
 */

/** What the gateway needs of its own bundle: whether it carries a certificate (by certRef), valid now. */
export interface OwnBundle {
  readonly serial: number;
  sealingCertificate(certRef: string, time: Date): unknown;
}

export interface SealSwitchOptions {
  /** Fetches the own bundle afresh (Directory.refresh of the own domain). */
  readonly fetchOwn: () => Promise<OwnBundle>;
  readonly log: (line: string) => void;
  /** Monotonic milliseconds (performance.now). */
  readonly now?: () => number;
  /** Wall-clock time for certificate validity. */
  readonly clock?: () => Date;
  readonly fastMs?: number;
  readonly fastForMs?: number;
  readonly slowMs?: number;
  readonly warnAfterMs?: number;
  /** For the WARNING line. */
  readonly domain: string;
}

export const SEAL_SWITCH_DEFAULTS = { fastMs: 1000, fastForMs: 120000, slowMs: 5000, warnAfterMs: 600000 } as const;

export class SealSwitch {
  private waiting: { ref: string; since: number; warned: boolean } | undefined;
  private ready: { ref: string; why: 'published' | 'previous-dropped' } | undefined;
  private checking: Promise<void> | undefined;
  private checkedAt = -Infinity;
  private readonly now: () => number;
  private readonly clock: () => Date;
  private readonly o: Required<Pick<SealSwitchOptions, 'fastMs' | 'fastForMs' | 'slowMs' | 'warnAfterMs'>>;

  constructor(private readonly opts: SealSwitchOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.clock = opts.clock ?? (() => new Date());
    this.o = {
      ...SEAL_SWITCH_DEFAULTS,
      ...Object.fromEntries(
        Object.entries({ fastMs: opts.fastMs, fastForMs: opts.fastForMs, slowMs: opts.slowMs, warnAfterMs: opts.warnAfterMs }).filter(
          ([, v]) => v !== undefined,
        ),
      ),
    };
  }

  /**
   * The sealing certificate on disk is `ref` (serial `serial`), the one in use
   * is `inUse`: true when the gateway may switch now; otherwise a check of the
   * own bundle is started when due and the caller asks again later.
   */
  decide(ref: string, serial: string, inUse: string): boolean {
    if (this.ready?.ref === ref) {
      if (this.ready.why === 'previous-dropped')
        this.opts.log(
          `WARNING ${this.opts.domain}'s published bundle no longer carries the sealing certificate in use; switching to the renewed one (serial ${serial}) now, although the bundle does not carry it either (check the publisher's [pki] sealing_certificates)`,
        );
      this.ready = undefined;
      this.waiting = undefined;
      return true;
    }
    const t = this.now();
    if (this.waiting?.ref !== ref) this.waiting = { ref, since: t, warned: false };
    const waited = t - this.waiting.since;
    if (!this.waiting.warned && waited > this.o.warnAfterMs) {
      this.waiting.warned = true;
      this.opts.log(
        `WARNING the renewed sealing certificate (serial ${serial}) is not in ${this.opts.domain}'s published bundle after ${this.o.warnAfterMs / 60000} minutes; the previous one stays in use until it is (check the publisher's [pki] sealing_certificates and this gateway's [peers] ${this.opts.domain} entry)`,
      );
    }
    const interval = waited < this.o.fastForMs ? this.o.fastMs : this.o.slowMs;
    if (this.checking || t - this.checkedAt < interval) return false;
    this.checkedAt = t;
    this.checking = this.opts
      .fetchOwn()
      .then((own) => {
        const now = this.clock();
        if (own.sealingCertificate(ref, now)) this.ready = { ref, why: 'published' };
        else if (!own.sealingCertificate(inUse, now)) this.ready = { ref, why: 'previous-dropped' };
      })
      // a failed fetch, or a check that threw (a CRL file unreadable just now): the next message checks again;
      // nothing awaits this promise, so nothing may reject it (an unhandled rejection ends Haraka)
      .catch(() => undefined)
      .finally(() => {
        this.checking = undefined;
      });
    return false;
  }

  /** Resolves when a check under way has finished (tests). */
  async settled(): Promise<void> {
    await this.checking;
  }
}
