/**
 * The compute time of one piece of asynchronous work (reading one message),
 * not the wall time it took (docs/chain.md, "CPU budget").
 *
 * A message is read in many callbacks (the MIME splitter continues in
 * setImmediate steps, decoders emit in later ticks, awaits resume in promise
 * jobs), and between them the event loop runs other connections' work. Wall
 * time from start to finish therefore grows with the load of the process,
 * and an innocent message on a busy gateway would pass its budget.
 *
 * Here the work runs inside an AsyncLocalStorage context, and an async hook
 * times each callback that runs in that context, from `before` to `after`.
 * Callbacks of one thread cannot overlap, so the sum is exactly the time the
 * thread spent on this work, whatever ran in between. Each callback's time is
 * the smaller of its wall time and the process's CPU time over it, so time
 * the operating system gave to other processes (a loaded machine) does not
 * count either, unless other threads of this process were busy meanwhile.
 * Asking for the CPU time is a system call, and a message is read in
 * hundreds of short callbacks: the first WALL_ONLY_MS of a piece of work count
 * their callbacks' wall time without asking (an ordinary message is read in
 * less, so it costs no system call at all), a callback shorter than SHORT_MS
 * counts its wall time, and a reading of the CPU time serves as the start of
 * callbacks that follow within FRESH_MS (all three can only count more, never
 * less).
 *
 * The hook is enabled only while some tracked work is running. A callback
 * outside any tracked work, with none running around it, leaves no frame.
 */
import { AsyncLocalStorage, createHook } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';

/** The compute time of one piece of work, summed over its callbacks. */
export class ComputeTally {
  /** Milliseconds of the callbacks that have ended. */
  closedMs = 0;
}

interface Frame {
  /** The async id of the callback (0 for the synchronous start of `trackCompute`). */
  readonly id: number;
  readonly tally: ComputeTally | undefined;
  wall: number;
  /** The process's CPU time (µs) at the start, or NaN while the tally counts wall time only (WALL_ONLY_MS). */
  cpu: number;
}

const context = new AsyncLocalStorage<ComputeTally>();
/** The callbacks being run, innermost last (callbacks nest, e.g. one run in another's async scope). */
let stack: Frame[] = [];
let tracking = 0;

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/**
 * A callback whose wall time is below this is counted by its wall time alone,
 * without asking for the process's CPU time (a system call): being shorter,
 * it cannot have been inflated by more than this by the operating system
 * running other processes, and most callbacks of a message are this short.
 */
const SHORT_MS = 0.05;
/**
 * A reading of the process's CPU time no older than this serves as the start
 * of the next callback. An older start only adds CPU time from before the
 * callback (at most this much wall time of it), and the result is never more
 * than the callback's wall time: the count can err only upwards.
 */
const FRESH_MS = 1;
/**
 * A piece of work whose callbacks have run less than this in all counts
 * their wall time alone: no system call for the whole reading of an ordinary
 * message (about 1 ms of callbacks for a 5 KB one; the system calls were 6% of
 * the gateway's CPU on the hop, docs/scaling.md). Time the operating system
 * gave to other processes meanwhile is counted, so the count errs upwards by
 * at most this much (and the callback that crosses it), against a budget of
 * seconds; past it, callbacks are counted as below.
 */
const WALL_ONLY_MS = 10;
let lastCpu = 0;
let lastCpuAt = -Infinity;

function readCpu(now: number): number {
  lastCpu = cpuMicros();
  lastCpuAt = now;
  return lastCpu;
}

function startCpu(now: number): number {
  return now - lastCpuAt <= FRESH_MS ? lastCpu : readCpu(now);
}

/** The CPU time at the start of a callback of `tally`, or NaN while the tally counts wall time only. */
function cpuAtStart(tally: ComputeTally, now: number): number {
  return tally.closedMs < WALL_ONLY_MS ? NaN : startCpu(now);
}

/** Milliseconds a frame has run since it (re)started: wall time, but no more than the process's CPU time over it. */
function elapsed(frame: Frame, now: number): number {
  const wall = now - frame.wall;
  if (wall < SHORT_MS || Number.isNaN(frame.cpu)) return Math.max(0, wall);
  return Math.max(0, Math.min(wall, (readCpu(now) - frame.cpu) / 1000));
}

function enter(id: number, tally: ComputeTally | undefined): void {
  const outer = stack[stack.length - 1];
  if (!tally && !outer?.tally) return; // nothing to count and nothing to pause: most callbacks of a busy gateway
  const now = performance.now();
  if (outer?.tally) outer.tally.closedMs += elapsed(outer, now); // the outer callback is paused while the inner one runs
  stack.push({ id, tally, wall: tally ? now : 0, cpu: tally ? cpuAtStart(tally, now) : 0 });
}

function leave(id: number): void {
  let at = stack.length - 1;
  while (at >= 0 && stack[at]!.id !== id) at--;
  if (at < 0) return; // entered before the hook was enabled, or left no frame
  const now = performance.now();
  for (const frame of stack.splice(at)) if (frame.tally) frame.tally.closedMs += elapsed(frame, now);
  const outer = stack[stack.length - 1];
  if (outer?.tally) {
    outer.wall = now;
    outer.cpu = cpuAtStart(outer.tally, now);
  }
}

const hook = createHook({
  before: (asyncId) => enter(asyncId, context.getStore()),
  after: (asyncId) => leave(asyncId),
});

/** Milliseconds of compute the tally's work has used so far, the running callback included. */
export function computeMs(tally: ComputeTally): number {
  let ms = tally.closedMs;
  const top = stack[stack.length - 1];
  if (top?.tally === tally) ms += elapsed(top, performance.now());
  return ms;
}

/** Whether the caller runs inside the tally's work. */
export function insideTally(tally: ComputeTally): boolean {
  return tracking > 0 && context.getStore() === tally;
}

/**
 * Runs `work` with its compute time counted in `tally`: its synchronous start
 * and every callback it schedules, directly or through the streams and
 * promises it uses, until the promise it returns settles.
 */
export async function trackCompute<T>(tally: ComputeTally, work: () => Promise<T>): Promise<T> {
  if (tracking++ === 0) {
    stack = [];
    hook.enable();
  }
  try {
    return await context.run(tally, () => {
      enter(0, tally);
      try {
        return work();
      } finally {
        leave(0);
      }
    });
  } finally {
    if (--tracking === 0) {
      hook.disable();
      stack = [];
    }
  }
}
