import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { INSPECT_DEFAULTS, InspectConfigError, parseInspectionConfig } from '../../src/inspect/config';

/** A clamd.conf in a fresh folder, with these lines. */
function clamdConf(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'ssmax-inspect-clamd-conf-')), 'clamd.conf');
  writeFileSync(file, text);
  return file;
}
/** clamd's settings as the project starts it (src/inspect/clamd-process.ts): temporary files on the tmpfs /dev/shm. */
const inMemory = () => clamdConf('TemporaryDirectory /dev/shm\nLeaveTemporaryFiles no\nAlertExceedsMax yes\n');

const cfg = (n: string) => parse(readFileSync(join(__dirname, '..', '..', 'config', n), 'utf8')) as Record<string, Record<string, unknown>>;

test('the shipped inspection config: off by default, every default written out; the shipped DLP rules parse', () => {
  const text = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-inspect.ini'), 'utf8');
  const commented = Object.fromEntries([...text.matchAll(/^;([a-z_]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
  expect(commented).toMatchObject({
    enabled: 'false',
    timeout_ms: String(INSPECT_DEFAULTS.clamd_timeout_ms),
    max_connections: String(INSPECT_DEFAULTS.clamd_max_connections),
    on_infected: INSPECT_DEFAULTS.on_infected,
    on_unavailable: INSPECT_DEFAULTS.on_unavailable,
  });
  const off = parseInspectionConfig(cfg('ssmax-inspect.ini'), cfg('ssmax-dlp.ini'), '/h/config', '/h/state');
  expect(off).toEqual({
    quarantineDir: '/h/state/quarantine',
    quarantineCaps: {
      maxBytes: INSPECT_DEFAULTS.quarantine_max_bytes,
      maxBytesPerSender: INSPECT_DEFAULTS.quarantine_max_bytes_per_sender,
      maxEntries: INSPECT_DEFAULTS.quarantine_max_entries,
    },
  });
  expect(INSPECT_DEFAULTS).toMatchObject({
    quarantine_max_bytes: 1024 ** 3,
    quarantine_max_bytes_per_sender: 128 * 1024 ** 2,
    quarantine_max_entries: 100_000,
  });
  const on = parseInspectionConfig(
    { dlp: { enabled: 'true' }, av: { enabled: 'true', clamd: '127.0.0.1:3310', clamd_config: inMemory() } },
    cfg('ssmax-dlp.ini'),
    '/h/config',
    '/h/state',
  );
  expect(on.dlp?.rules.map((r) => r.name)).toEqual(['payment-cards', 'my-number', 'executables']);
  expect(on.av).toMatchObject({ onInfected: 'reject', onUnavailable: 'tempfail' });
});

test('every key of ssmax-inspect.ini, uncommented as shipped, gives the defaults the code uses', () => {
  const text = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-inspect.ini'), 'utf8');
  const written = parse(text.replace(/^;([a-z_]+=.*)$/gm, '$1')) as Record<string, Record<string, unknown>>;
  expect(written.dlp).toEqual({
    enabled: false,
    max_depth: String(INSPECT_DEFAULTS.dlp_max_depth),
    max_document_bytes: String(INSPECT_DEFAULTS.dlp_max_document_bytes),
    max_text_chars: String(INSPECT_DEFAULTS.dlp_max_text_chars),
    timeout_ms: String(INSPECT_DEFAULTS.dlp_timeout_ms),
    on_unreadable: INSPECT_DEFAULTS.dlp_on_unreadable,
  });
  expect(written.quarantine).toEqual({
    dir: '',
    max_bytes: String(INSPECT_DEFAULTS.quarantine_max_bytes),
    max_bytes_per_sender: String(INSPECT_DEFAULTS.quarantine_max_bytes_per_sender),
    max_entries: String(INSPECT_DEFAULTS.quarantine_max_entries),
  });
  expect(
    parseInspectionConfig({ quarantine: { max_bytes: '5000', max_bytes_per_sender: '100', max_entries: '7' } }, {}, '/c', '/s')
      .quarantineCaps,
  ).toEqual({
    maxBytes: 5000,
    maxBytesPerSender: 100,
    maxEntries: 7,
  });
  expect(written.av).toMatchObject({ clamd_config: INSPECT_DEFAULTS.clamd_config, timeout_ms: String(INSPECT_DEFAULTS.clamd_timeout_ms) });
  const on = (dlp: Record<string, unknown>) =>
    parseInspectionConfig(
      { dlp: { ...dlp, enabled: 'true' }, av: { ...written.av, enabled: 'true', allow_plaintext_on_disk: 'yes' } },
      cfg('ssmax-dlp.ini'),
      '/h/config',
      '/h/state',
    );
  const explicit = on(written.dlp!);
  const implicit = on({});
  expect(explicit.dlp).toEqual(implicit.dlp);
  expect(implicit.dlp).toMatchObject({
    onUnreadable: 'quarantine',
    limits: { maxDepth: 3, maxDocumentBytes: 26214400, maxTextChars: 20971520, timeoutMs: 10000 },
  });
  expect(implicit.av?.clamdConfig).toBeUndefined();
  expect(
    on({}).av &&
      parseInspectionConfig(
        { av: { enabled: 'true', clamd: '127.0.0.1:1', clamd_config: 'clamd.conf', allow_plaintext_on_disk: 'yes' } },
        {},
        '/h/config',
        '/s',
      ).av?.clamdConfig,
  ).toBe('/h/config/clamd.conf');
});

test('bad inspection settings are refused naming the key', () => {
  expect(() => parseInspectionConfig({ dlp: { enabled: 'true', on_unreadable: 'ignore' } }, {}, '/c', '/s')).toThrow(
    /\[dlp\] on_unreadable: must be reject, quarantine or tag/,
  );
  expect(() => parseInspectionConfig({ dlp: { enabled: 'true', max_document_bytes: '10k' } }, {}, '/c', '/s')).toThrow(
    /ssmax-inspect\.ini \[dlp\] max_document_bytes: must be a whole number from 1 to \d+, got '10k'/,
  );
  expect(() => parseInspectionConfig({ av: { enabled: 'true', clamd: 'nowhere' } }, {}, '/c', '/s')).toThrow(InspectConfigError);
  expect(() => parseInspectionConfig({ av: { enabled: 'true', clamd: '127.0.0.1:1', on_infected: 'ignore' } }, {}, '/c', '/s')).toThrow(
    /\[av\] on_infected: must be reject or quarantine/,
  );
  expect(() => parseInspectionConfig({ dlp: { enabled: 'true' } }, { x: { type: 'nope' } }, '/c', '/s')).toThrow(
    /ssmax-dlp\.ini: DLP rule "x"/,
  );
});

describe('where clamd can put the decrypted mail: refused at start unless shown safe or opted into', () => {
  const av = (settings: Record<string, string>) => () =>
    parseInspectionConfig({ av: { enabled: 'true', ...settings } }, {}, '/h/config', '/s').av!;

  test('a clamd over TCP on another machine is refused naming [av] clamd, unless allow_plaintext_over_network', () => {
    for (const clamd of ['192.0.2.7:3310', '10.0.0.1:3310', '[2001:db8::1]:3310', 'localhost:3310', 'clamd.example:3310', '0.0.0.0:3310'])
      expect(av({ clamd, clamd_config: inMemory() })).toThrow(
        new RegExp(
          `^ssmax-inspect\\.ini \\[av\\] clamd: .*not a loopback address: clamd is sent the decrypted mail in cleartext.*allow_plaintext_over_network=true`,
        ),
      );
    const allowed = av({ clamd: '192.0.2.7:3310', clamd_config: inMemory(), allow_plaintext_over_network: 'yes' })();
    expect(allowed.startWarnings).toEqual([
      expect.stringMatching(
        /clamd 192\.0\.2\.7:3310 is not on this machine: .*cleartext \(accepted: \[av\] allow_plaintext_over_network=true\)/,
      ),
    ]);
    // on this machine: loopback addresses (v4 and v6, IPv4-mapped) and a unix socket, no opt-in needed, nothing to warn of
    for (const clamd of [
      '127.0.0.1:3310',
      '127.8.9.10:3310',
      '[::1]:3310',
      '[0:0:0:0:0:0:0:1]:3310',
      '[::ffff:127.0.0.1]:3310',
      '/run/clamav/clamd.ctl',
    ])
      expect(av({ clamd, clamd_config: inMemory() })().startWarnings).toEqual([]);
  });

  test('clamd settings unknown (clamd_config empty or unreadable) are refused naming [av] clamd_config, unless allow_plaintext_on_disk', () => {
    expect(av({ clamd: '127.0.0.1:3310' })).toThrow(
      /^ssmax-inspect\.ini \[av\] clamd_config: clamd settings unknown: \[av\] clamd_config is not set.*allow_plaintext_on_disk=true/,
    );
    expect(av({ clamd: '127.0.0.1:3310', clamd_config: '/nonexistent/clamd.conf' })).toThrow(
      /^ssmax-inspect\.ini \[av\] clamd_config: clamd settings unknown: cannot read \[av\] clamd_config \/nonexistent\/clamd\.conf: .*ENOENT/,
    );
    expect(av({ clamd: '127.0.0.1:3310', allow_plaintext_on_disk: 'yes' })().startWarnings).toEqual([
      expect.stringMatching(/clamd settings unknown: .*\(accepted: \[av\] allow_plaintext_on_disk=true\)$/),
    ]);
  });

  test('a clamd.conf that puts the scanned mail on a disk is refused, each reason named, unless allow_plaintext_on_disk', () => {
    const stock = clamdConf('# Debian default\nLocalSocket /run/clamav/clamd.ctl\nLeaveTemporaryFiles yes\n');
    expect(av({ clamd: '127.0.0.1:3310', clamd_config: stock })).toThrow(
      /\[av\] clamd_config: clamd \(.*\) has no TemporaryDirectory.*; clamd \(.*\) has LeaveTemporaryFiles yes.*Antivirus is on, and clamd may write the decrypted mail it scans to a disk/,
    );
    const onDisk = mkdtempSync(join(tmpdir(), 'ssmax-inspect-disk-'));
    const diskConf = clamdConf(`TemporaryDirectory ${onDisk}\nAlertExceedsMax yes\n`);
    expect(av({ clamd: '127.0.0.1:3310', clamd_config: diskConf })).toThrow(
      new RegExp(`\\[av\\] clamd_config: clamd \\(.*\\) TemporaryDirectory ${onDisk} is not on a tmpfs or ramfs`),
    );
    expect(av({ clamd: '127.0.0.1:3310', clamd_config: diskConf, allow_plaintext_on_disk: 'yes' })().startWarnings).toEqual([
      expect.stringMatching(/TemporaryDirectory .* is not on a tmpfs or ramfs.*\(accepted: \[av\] allow_plaintext_on_disk=true\)$/),
    ]);
    // in memory: accepted, no warning; AlertExceedsMax off is a warning only (it is not about where the mail goes)
    expect(av({ clamd: '127.0.0.1:3310', clamd_config: inMemory() })().startWarnings).toEqual([]);
    expect(av({ clamd: '127.0.0.1:3310', clamd_config: clamdConf('TemporaryDirectory /dev/shm\n') })().startWarnings).toEqual([
      expect.stringMatching(/has no AlertExceedsMax yes/),
    ]);
  });

  test('the opt-ins are off by default, and antivirus off reads neither', () => {
    expect(INSPECT_DEFAULTS).toMatchObject({ allow_plaintext_on_disk: false, allow_plaintext_over_network: false });
    // the [av] section of the shipped file: from its header to the next section's (comments there may hold "[::1]")
    const shipped = readFileSync(join(__dirname, '..', '..', 'config', 'ssmax-inspect.ini'), 'utf8');
    const av = shipped.slice(shipped.indexOf('\n[av]\n')).split(/\n\[(?!av\])[a-z_]+\]\n/)[0]!;
    expect(av.split('\n')).toEqual(expect.arrayContaining([';allow_plaintext_on_disk=false', ';allow_plaintext_over_network=false']));
    expect(parseInspectionConfig({ av: { clamd: '192.0.2.7:3310' } }, {}, '/h/config', '/s').av).toBeUndefined();
  });
});
