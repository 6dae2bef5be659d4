import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'ini';
import { INSPECT_DEFAULTS, InspectConfigError, parseInspectionConfig } from '../../src/inspect/config';

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
    { dlp: { enabled: 'true' }, av: { enabled: 'true', clamd: '127.0.0.1:3310' } },
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
      { dlp: { ...dlp, enabled: 'true' }, av: { ...written.av, enabled: 'true' } },
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
      parseInspectionConfig({ av: { enabled: 'true', clamd: '127.0.0.1:1', clamd_config: 'clamd.conf' } }, {}, '/h/config', '/s').av
        ?.clamdConfig,
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
