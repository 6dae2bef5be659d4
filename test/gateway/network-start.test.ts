/**
 * startNetwork (src/demo/network.ts) starts the organisations at once, then
 * their gateways at once. When one organisation cannot start, the call fails
 * with that organisation's error, and only once the others have finished
 * starting, so that no process of theirs is left running.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNetwork } from '../../src/demo/network';
import { waitFor } from './network-fixture';

jest.setTimeout(120000);

/** The running processes whose command line names `dir` (keyd, publisher and Haraka name their config under it): pid and command line. */
function processesUnder(dir: string): string[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(dir));
}

const base = mkdtempSync(join(tmpdir(), 'ssmax-netstart-'));
afterAll(() => {
  // if the test failed because a process was left running, it does not outlive the suite
  for (const line of processesUnder(base)) {
    try {
      process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
});

test("an organisation whose keyd cannot start fails the network with its error; the other organisation's processes are stopped", async () => {
  const started: string[] = [];
  const failure = await startNetwork(
    base,
    [
      // a setting keyd does not know: it stops at start (exit 78) naming it
      { domain: 'b.example', users: [], keydIni: ['no_such_setting=1'] },
      { domain: 'a.example', users: [{ address: 'alice@a.example', client: 'ssmax', password: 'pw-alice' }] },
    ],
    (line) => started.push(line),
  ).then(
    () => undefined,
    (err: unknown) => err as Error,
  );
  expect(failure).toBeInstanceOf(Error);
  expect(failure!.message).toMatch(/"ssmax keyd" exited 78: .*no_such_setting/s);
  // both began at once: a.example, after b.example in the list, was provisioned although b.example failed
  expect(started.filter((l) => /: provisioning org CA/.test(l))).toEqual([
    'b.example: provisioning org CA, keyd, publisher, gateway',
    'a.example: provisioning org CA, keyd, publisher, gateway',
  ]);
  // no gateway was started, and nothing a.example started is left running
  expect(started.filter((l) => /gateway on/.test(l))).toEqual([]);
  await waitFor(
    () => processesUnder(base).length === 0,
    10000,
    () => processesUnder(base).join('\n'),
  );
});
