/**
 * The log line for connections closed over the cap (src/net/listener-limits.ts
 * droppedConnectionsLog), at most one a minute, with fake timers: the count of
 * drops after the last line is written at the end of the minute even when no
 * further drop comes, and the timer does not keep the process alive.
 */
import { droppedConnectionsLog } from '../../src/net/listener-limits';

describe('droppedConnectionsLog', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('the first drop is logged at once; later ones within the minute together at its end, with no further drop', () => {
    const lines: string[] = [];
    const drop = droppedConnectionsLog('keyd', 1000, (l) => lines.push(l));
    drop();
    expect(lines).toEqual(['keyd: 1 connection(s) closed at once: 1000 open already (max_connections)']);
    jest.advanceTimersByTime(10000);
    drop();
    drop();
    jest.advanceTimersByTime(20000);
    drop();
    expect(lines).toHaveLength(1); // still within the minute
    jest.advanceTimersByTime(29999);
    expect(lines).toHaveLength(1);
    jest.advanceTimersByTime(1); // the minute after the first line is over: the pending three
    expect(lines).toEqual([
      'keyd: 1 connection(s) closed at once: 1000 open already (max_connections)',
      'keyd: 3 connection(s) closed at once: 1000 open already (max_connections)',
    ]);
    jest.advanceTimersByTime(600000); // nothing pending: nothing more
    expect(lines).toHaveLength(2);
    expect(jest.getTimerCount()).toBe(0);
  });

  test('a drop a minute or more after the last line is logged at once, alone', () => {
    const lines: string[] = [];
    const drop = droppedConnectionsLog('console', 5, (l) => lines.push(l), 1000);
    drop();
    jest.advanceTimersByTime(1000);
    drop();
    expect(lines.map((l) => l.split(' ')[1])).toEqual(['1', '1']);
    expect(jest.getTimerCount()).toBe(0);
  });

  test('the pending timer is unref’d: it never keeps the process alive', () => {
    const unref = jest.spyOn(global, 'setTimeout');
    const drop = droppedConnectionsLog('keyd', 1, () => undefined);
    drop();
    drop();
    const timer = unref.mock.results.at(-1)?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    unref.mockRestore();
  });
});
