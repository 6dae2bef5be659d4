// Jest runs the TypeScript sources through ts-jest. The ESM-only dependencies
// (@noble/*, pkijs, asn1js, bytestreamjs, @peculiar/*, pvtsutils, pvutils) are
// transformed too, because Jest 30 on node 20 cannot require() ESM
// itself. Type-checking happens in `npm run typecheck`, not here.
const esmOnly = ['@noble', 'pkijs', 'asn1js', 'bytestreamjs', '@peculiar', 'pvtsutils', 'pvutils'];

/**
 * Two projects. "parallel": the suites that start no long-lived servers (the
 * crypto core, the chain and envelope formats, PKI, config parsing, docs),
 * and a few that start servers but spend most of their time waiting (for a
 * bundle to expire, for Haraka's retry timers, for keyd's schedules); `npm test` runs them on three
 * workers. A suite of those folders that measures compute under a load it
 * makes itself (MEASURING) runs serially. "serial": the other suites with real Haraka, keyd, clamd, Postfix
 * or Dovecot processes, some of which load them, measure them or kill them
 * on purpose; `npm test` runs them one at a time, since on a two-core machine
 * two such suites at once would measure each other.
 */
const PARALLEL_DIRS = [
  'chain',
  'config',
  'crypto',
  'deps',
  'directory',
  'docs',
  'envelope',
  'errors',
  'fs',
  'fuzz',
  'mail',
  'net',
  'pki',
  'user',
];
/**
 * Integration suites that mostly wait (their processes use a quarter of the suite's wall time or less).
 * publisher/publisher.test.ts: 3.2 s and 2.1 s of CPU (user + sys, its children included) in 16.9 s
 * and 12.1 s of wall time (19 % and 17 %), most of it the publisher's first-publication retries
 * (40 x 250 ms) against a keyd of another domain; its clock is injected, it measures no time.
 * ops/sixty-days.test.ts: 27.1 s and 27.6 s of CPU in 99.4 s and 98.4 s of wall time (27 %, 28 %; on a
 * shared machine at a load of 12 to 17, so the wall times are long: against the 66 s it took alone in a
 * full run, 41 %); each simulated day waits for keyd's one-second schedule and the publisher's
 * one-second poll; it prints how long the 60 days took but asserts nothing about time.
 * gateway/config-reload.test.ts: about 0.40 of the machine's two cores busy over its 19 s alone, waiting for Haraka's
 * configuration watcher three times; it asserts log lines and deliveries, no time.
 * (gateway/lying-keyd.test.ts, 0.46 cores over 51 s, waits too, but asserts which operations share a batch formed within a
 * 1 s window: serial. gateway/faults.test.ts and gateway/postfix-dovecot.test.ts took 2.5 and 1.6 times as long beside the
 * others, and the parallel phase 32 s more: serial.)
 */
const WAITING = [
  'gateway/config-reload.test.ts',
  'gateway/rotation-lifetime.test.ts',
  'gateway/dsn.test.ts',
  'publisher/publisher.test.ts',
  'ops/sixty-days.test.ts',
];
/**
 * Suites of the other folders that start no process and no server (the module under test in this process, a mock or
 * an in-process keyd over LMDB on disk): they run with the parallel ones.
 */
const IN_PROCESS = [
  'abuse/config.test.ts',
  'abuse/report-binding.test.ts',
  'abuse/report-format.test.ts',
  'abuse/tracking-retention.test.ts',
  'console/config.test.ts',
  'gateway/config.test.ts',
  'gateway/list-seal-binding.test.ts',
  'inspect/detectors.test.ts',
  'inspect/every-shape.test.ts',
  'inspect/extract.test.ts',
  'inspect/held-keys.test.ts',
  'inspect/quarantine-store.test.ts',
  'inspector/config.test.ts',
  'keyd/backup-manifest.test.ts',
  'keyd/client-settings.test.ts',
  'keyd/config.test.ts',
  'keyd/crypto-wire.test.ts',
  'keyd/list-address.test.ts',
  'lists/bounces.test.ts',
  'lists/chain.test.ts',
  'lists/member-bundles.test.ts',
  'lists/moderation-holds.test.ts',
];
/** Suites of those folders that measure the compute of work under a load they make themselves: serial. */
const MEASURING = ['chain/cpu-budget.test.ts', 'crypto/constant-time.test.ts'];

const common = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: {
    '^.+\\.[tj]sx?$': [
      'ts-jest',
      {
        tsconfig: {
          isolatedModules: true,
          allowJs: true,
          module: 'commonjs',
          moduleResolution: 'node10',
          ignoreDeprecations: '6.0',
          types: ['node', 'jest'],
        },
      },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly.join('|')})/)`],
};

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 60000,
  projects: [
    {
      ...common,
      displayName: 'parallel',
      testMatch: [
        `<rootDir>/test/{${PARALLEL_DIRS.join(',')}}/**/*.test.ts`,
        ...[...WAITING, ...IN_PROCESS].map((f) => `<rootDir>/test/${f}`),
      ],
      testPathIgnorePatterns: ['/node_modules/', ...MEASURING.map((f) => `<rootDir>/test/${f.replace(/\./g, '\\.')}$`)],
    },
    {
      ...common,
      displayName: 'serial',
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: [
        '/node_modules/',
        `<rootDir>/test/(?!(${MEASURING.map((f) => f.replace(/\./g, '\\.')).join('|')})$)(${PARALLEL_DIRS.join('|')})/`,
        ...[...WAITING, ...IN_PROCESS].map((f) => `<rootDir>/test/${f.replace(/\./g, '\\.')}$`),
      ],
    },
  ],
};
