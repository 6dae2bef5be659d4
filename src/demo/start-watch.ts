/**
 * The end of a child process that was to start, for the demo's and the tests' process starters
 * (Haraka, the ssmax services).
 */
import type { ChildProcess } from 'node:child_process';

/**
 * Calls `failed(code)` when `proc` exits before `isUp()`: once its output is complete ('close', which can
 * come after 'exit'), or 2 s after 'exit' when a grandchild still holds its pipes. The function returned
 * says whether it has exited: output read after that is not a start.
 */
export function failIfExitedBeforeUp(proc: ChildProcess, isUp: () => boolean, failed: (code: number | null) => void): () => boolean {
  let gone = false;
  proc.once('exit', (code) => {
    if (isUp()) return;
    gone = true;
    const fail = () => failed(code);
    const late = setTimeout(fail, 2000);
    proc.once('close', () => {
      clearTimeout(late);
      fail();
    });
  });
  return () => gone;
}
