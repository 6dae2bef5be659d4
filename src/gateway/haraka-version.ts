/**
 * The Haraka versions the plugin runs in: from the one it is built and tested
 * with (package.json's Haraka, 3.3.4) up to the next major version. Earlier
 * ones lack what the gateway relies on — 3.3.4 refuses bare LF line ends in
 * DATA (SMTP smuggling) and keeps dot-stuffing when it relays; 3.1 lacks
 * modules the plugin loads — and a later major version may change the hooks
 * and the outbound queue it hands copies to. Outside the range the plugin
 * refuses to start, naming the version found and the one needed (npm does not
 * enforce the package's peer dependency).
 */

/** The lowest supported Haraka version (the project's pinned one: test/gateway/haraka-version.test.ts keeps them equal). */
export const HARAKA_MIN = '3.3.4';
/** The first major version not supported. */
const HARAKA_BELOW_MAJOR = 4;

/** Major, minor, patch, and whether it is a pre-release (`-…`: before the version it names, semver §11). */
function parts(version: string): [number, number, number, boolean] | undefined {
  const m = /^(\d{1,6})\.(\d{1,6})\.(\d{1,6})(-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.exec(version);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), m[4] !== undefined] : undefined;
}

/** Throws unless `pkg` (Haraka's package.json, as `haraka_require('package.json')` gives it) names a supported version. */
export function checkHarakaVersion(pkg: unknown): void {
  const version = (pkg as { version?: unknown } | null | undefined)?.version;
  const have = typeof version === 'string' ? parts(version) : undefined;
  const need = `Haraka ${HARAKA_MIN} or later, below ${HARAKA_BELOW_MAJOR}.0.0`;
  if (!have) throw new Error(`cannot tell which Haraka this is (its package.json names no version): this plugin needs ${need}`);
  const min = parts(HARAKA_MIN)!;
  const same = have[0] === min[0] && have[1] === min[1] && have[2] === min[2];
  // a pre-release of the lowest version comes before it (it may lack what the check is for)
  const below =
    have[0] < min[0] || (have[0] === min[0] && (have[1] < min[1] || (have[1] === min[1] && have[2] < min[2]))) || (same && have[3]);
  if (below || have[0] >= HARAKA_BELOW_MAJOR)
    throw new Error(
      `Haraka ${String(version)} is not supported: this plugin needs ${need} (install it: npm install -g Haraka@${HARAKA_MIN}; docs/deploy.md)`,
    );
}
