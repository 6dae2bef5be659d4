// Jest runs the TypeScript sources through ts-jest. The ESM-only dependencies
// (@noble/*, pkijs, asn1js, bytestreamjs, @peculiar/*, pvtsutils, pvutils) are
// transformed too, because Jest 30 on node 20 cannot require() ESM
// itself. Type-checking happens in `npm run typecheck`, not here.
const esmOnly = ['@noble', 'pkijs', 'asn1js', 'bytestreamjs', '@peculiar', 'pvtsutils', 'pvutils'];

/**
 * Two projects. "unit": suites that start no long-lived servers (the crypto
 * core, the chain and envelope formats, PKI, config parsing, docs): `npm test`
 * runs them on two workers. "integration": suites that start real Haraka,
 * keyd, clamd, Postfix or Dovecot processes, some of which measure load or
 * kill processes on purpose: `npm test` runs them one at a time, since on a
 * two-core machine two such suites at once would measure each other.
 */
const UNIT = ['chain', 'config', 'crypto', 'deps', 'directory', 'docs', 'envelope', 'errors', 'fs', 'fuzz', 'mail', 'net', 'pki', 'user'];

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
    { ...common, displayName: 'unit', testMatch: [`<rootDir>/test/{${UNIT.join(',')}}/**/*.test.ts`] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', `<rootDir>/test/(${UNIT.join('|')})/`],
    },
  ],
};
