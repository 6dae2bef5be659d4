// Jest runs the TypeScript sources through ts-jest. The ESM-only dependencies
// (@noble/*, pkijs, asn1js, bytestreamjs, @peculiar/*, pvtsutils, pvutils) are
// transformed too, because Jest 30 on node 20 cannot require() ESM
// itself. Type-checking happens in `npm run typecheck`, not here.
const esmOnly = ['@noble', 'pkijs', 'asn1js', 'bytestreamjs', '@peculiar', 'pvtsutils', 'pvutils'];

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
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
  testTimeout: 60000,
};
