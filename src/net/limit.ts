/**
 * The one concurrency limit of the project: at most `max` holders at once.
 * A holder either takes a place if one is free (`tryAcquire`: a service
 * that answers "busy" rather than queue) or waits its turn, first come first
 * served (`acquire`). Each place is given back once, by calling the release
 * function it came with; calling it again does nothing.
 */
export class Limit {
  private held = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`A concurrency limit must be a whole number of at least 1 (got ${max})`);
  }

  /** Places held now. */
  get active(): number {
    return this.held;
  }

  /** A place if one is free now (its release function), else undefined. */
  tryAcquire(): (() => void) | undefined {
    if (this.held >= this.max) return undefined;
    this.held++;
    return this.releaser();
  }

  /** A place, waiting in line for one when all are held; resolves with its release function. */
  async acquire(): Promise<() => void> {
    if (this.held < this.max) {
      this.held++;
      return this.releaser();
    }
    // The place is handed over by its releaser (held stays the same), so no one can take it in between.
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.releaser();
  }

  /**
   * A place, waiting in line at most `ms` for one; undefined when none came in time (the waiter leaves the line:
   * a line of callers that gave up never builds up behind a slow service).
   */
  acquireWithin(ms: number): Promise<(() => void) | undefined> {
    if (this.held < this.max) {
      this.held++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const turn = (): void => {
        clearTimeout(timer);
        resolve(this.releaser());
      };
      const timer = setTimeout(() => {
        const at = this.waiting.indexOf(turn);
        if (at < 0) return; // handed its place already
        this.waiting.splice(at, 1);
        resolve(undefined);
      }, ms);
      this.waiting.push(turn);
    });
  }

  /** Callers waiting in line now. */
  get queued(): number {
    return this.waiting.length;
  }

  /** The release function of a place held: hands it to the first in line, else frees it. */
  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.held--;
    };
  }
}
