/**
 * When the gateway starts sealing with a renewed sealing certificate
 * (src/gateway/seal-switch.ts), on a simulated monotonic clock: only once its
 * own published bundle carries it; the own bundle checked every second while
 * the wait is young (a check that ran just before the publisher re-published
 * must not hold the switch back for long: the publisher drops the previous
 * certificate once it no longer outlives the bundle); at once when the own
 * bundle no longer carries the certificate in use.
 */
import { type OwnBundle, SealSwitch } from '../../src/gateway/seal-switch';

const OLD = 'old-ref';
const NEW = 'new-ref';

function world(initial: string[]) {
  const t = { now: 0 };
  const state = { published: new Set(initial), fetches: 0, fail: false };
  const logs: string[] = [];
  const sw = new SealSwitch({
    domain: 'a.example',
    log: (l) => logs.push(l),
    now: () => t.now,
    fetchOwn: (): Promise<OwnBundle> => {
      state.fetches++;
      if (state.fail) return Promise.reject(new Error('publisher unreachable'));
      const carried = new Set(state.published);
      return Promise.resolve({ serial: state.fetches, sealingCertificate: (ref: string) => (carried.has(ref) ? {} : undefined) });
    },
  });
  /** One FileWatch check (every second in the gateway) at time `at`. */
  const tick = async (at: number) => {
    t.now = at;
    const go = sw.decide(NEW, '0b', OLD);
    await sw.settled();
    return go;
  };
  return { sw, state, logs, tick };
}

test('the renewed certificate is used only once the own bundle carries it; a check made before the re-publication is repeated a second later', async () => {
  const w = world([OLD]);
  expect(await w.tick(0)).toBe(false); // fetched before the publisher re-published: only the old one
  expect(w.state.fetches).toBe(1);
  w.state.published.add(NEW); // the publisher re-publishes (its poll: within a second)
  expect(await w.tick(500)).toBe(false); // not yet due again
  expect(w.state.fetches).toBe(1);
  expect(await w.tick(1000)).toBe(false); // checked again, carries it now
  expect(w.state.fetches).toBe(2);
  expect(await w.tick(2000)).toBe(true); // switch
  expect(w.logs).toEqual([]);
});

test('while the own bundle keeps the certificate in use and lacks the renewed one: checks every second, then every 5 s, a WARNING after 10 minutes', async () => {
  const w = world([OLD]);
  for (let s = 0; s < 120; s++) expect(await w.tick(s * 1000)).toBe(false);
  expect(w.state.fetches).toBe(120);
  for (let s = 120; s < 600; s++) await w.tick(s * 1000);
  expect(w.state.fetches).toBe(120 + 96);
  expect(w.logs).toEqual([]);
  await w.tick(601000);
  expect(w.logs).toEqual([
    expect.stringMatching(
      /^WARNING the renewed sealing certificate \(serial 0b\) is not in a\.example's published bundle after 10 minutes/,
    ) as string,
  ]);
});

test('the own bundle no longer carries the certificate in use (dropped or revoked): switch at once, with a WARNING', async () => {
  const w = world([]);
  expect(await w.tick(0)).toBe(false);
  expect(await w.tick(1000)).toBe(true);
  expect(w.logs.join('\n')).toMatch(
    /WARNING a\.example's published bundle no longer carries the sealing certificate in use; switching to the renewed one/,
  );
});

test('the own bundle cannot be fetched: the certificate in use stays, checks go on', async () => {
  const w = world([OLD, NEW]);
  w.state.fail = true;
  expect(await w.tick(0)).toBe(false);
  expect(await w.tick(1000)).toBe(false);
  w.state.fail = false;
  expect(await w.tick(2000)).toBe(false);
  expect(await w.tick(3000)).toBe(true);
  expect(w.state.fetches).toBe(3);
});

test('a check whose reading of the bundle throws (a CRL file unreadable just then): the certificate in use stays, nothing rejects, checks go on', async () => {
  const t = { now: 0 };
  let throwing = true;
  const sw = new SealSwitch({
    domain: 'a.example',
    log: () => undefined,
    now: () => t.now,
    fetchOwn: (): Promise<OwnBundle> =>
      Promise.resolve({
        serial: 1,
        sealingCertificate: (ref: string) => {
          if (throwing) throw new Error('Cannot read CRL "/etc/ssmax/pki/org-ca.crl.pem": ENOENT');
          return ref === NEW ? {} : undefined;
        },
      }),
  });
  // nothing awaits the check in the gateway: a rejection here was an unhandled rejection, which ends Haraka
  expect(sw.decide(NEW, '0b', OLD)).toBe(false);
  await expect(sw.settled()).resolves.toBeUndefined();
  throwing = false;
  t.now = 1000;
  expect(sw.decide(NEW, '0b', OLD)).toBe(false);
  await sw.settled();
  t.now = 2000;
  expect(sw.decide(NEW, '0b', OLD)).toBe(true);
});
