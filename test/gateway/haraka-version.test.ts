/**
 * The plugin refuses to start in a Haraka outside the versions it supports
 * (src/gateway/haraka-version.ts): npm does not enforce the package's peer
 * dependency, and Haraka 3.2 started and relayed mail without 3.3.4's refusal
 * of bare LF line ends in DATA.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HARAKA_MIN, checkHarakaVersion } from '../../src/gateway/haraka-version';

test("the lowest supported version is the project's pinned Haraka", () => {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  expect(pkg.dependencies.Haraka).toBe(HARAKA_MIN);
  // and the Haraka installed here, which every other test runs the plugin in, passes
  expect(() => checkHarakaVersion(JSON.parse(readFileSync(require.resolve('Haraka/package.json'), 'utf8')))).not.toThrow();
});

test.each(['3.3.4', '3.3.4+build.7', '3.3.5', '3.4.0', '3.10.2', '3.99.0-rc.1'])('Haraka %s is accepted', (version) => {
  expect(() => checkHarakaVersion({ version })).not.toThrow();
});

test.each(['3.3.3', '3.2.1', '3.1.7', '2.8.28', '4.0.0', '10.1.0', '3.3.4-rc.1', '3.3.4-alpha'])(
  'Haraka %s is refused, naming it and the range',
  (version) => {
    expect(() => checkHarakaVersion({ version })).toThrow(
      `Haraka ${version} is not supported: this plugin needs Haraka 3.3.4 or later, below 4.0.0`,
    );
  },
);

test.each([undefined, null, {}, { version: 3.3 }, { version: 'latest' }, { version: '3.3' }])(
  'a package.json naming no version (%p) is refused',
  (pkg) => {
    expect(() => checkHarakaVersion(pkg)).toThrow(/cannot tell which Haraka this is/);
  },
);
