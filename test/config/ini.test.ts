/** The one config reader (src/config/ini.ts): types, defaults, ranges, the error naming file, section and key. */
import {
  ConfigError,
  IniReader,
  changedSettings,
  defineSettings,
  parseIni,
  sectionsOf,
  unknownSections,
  unknownSettings,
} from '../../src/config/ini';

const S = defineSettings({
  'server.port': { type: 'num', min: 1, max: 65535, whole: true, default: 8025 },
  'server.ratio': { type: 'num', min: 0, max: 1, default: 0.25 },
  'server.tls': { type: 'bool', default: true },
  'server.name': { type: 'str' },
  'server.peers': { type: 'list', default: [] },
  'server.mode': { type: 'enum', values: ['inline', 'remote'], default: 'inline' },
  'server.cert': { type: 'str' },
});

const read = (text: string) => new IniReader(S, parseIni(text), 'config/x.ini', '/etc/x');

test("values by type; absent values take the default; whole numbers from Haraka's reader (numbers) read the same", () => {
  const r = read('[server]\nport=25\nratio=0.5\ntls=off\nname= mx \npeers=a.example, ,b.example\nmode=REMOTE\ncert=pki/c.pem\n');
  expect([
    r.get('server.port'),
    r.get('server.ratio'),
    r.get('server.tls'),
    r.get('server.name'),
    r.get('server.peers'),
    r.get('server.mode'),
    r.path('server.cert'),
  ]).toEqual([25, 0.5, false, 'mx', ['a.example', 'b.example'], 'remote', '/etc/x/pki/c.pem']);
  const d = read('[server]\nname=mx\n');
  expect([
    d.get('server.port'),
    d.get('server.ratio'),
    d.get('server.tls'),
    d.get('server.peers'),
    d.get('server.mode'),
    d.opt('server.cert'),
  ]).toEqual([8025, 0.25, true, [], 'inline', undefined]);
  expect(new IniReader(S, { server: { port: 25, tls: 1 } }, 'x', '/').get('server.port')).toBe(25);
  expect(new IniReader(S, { server: { port: 25, tls: 1 } }, 'x', '/').get('server.tls')).toBe(true);
  for (const [word, v] of [
    ['yes', true],
    ['on', true],
    ['1', true],
    ['TRUE', true],
    ['no', false],
    ['0', false],
    ['False', false],
  ] as const)
    expect(read(`[server]\ntls=${word}\n`).get('server.tls')).toBe(v);
});

test.each([
  ['[server]\nport=x\n', 'server.port', "config/x.ini [server] port: must be a whole number from 1 to 65535, got 'x'"],
  ['[server]\nport=70000\n', 'server.port', "config/x.ini [server] port: must be a whole number from 1 to 65535, got '70000'"],
  ['[server]\nport=2.5\n', 'server.port', "config/x.ini [server] port: must be a whole number from 1 to 65535, got '2.5'"],
  ['[server]\nport=0x19\n', 'server.port', "config/x.ini [server] port: must be a whole number from 1 to 65535, got '0x19'"],
  ['[server]\nratio=1.5\n', 'server.ratio', "config/x.ini [server] ratio: must be a number from 0 to 1, got '1.5'"],
  ['[server]\ntls=ture\n', 'server.tls', "config/x.ini [server] tls: must be true or false, got 'ture'"],
  ['[server]\nmode=sideways\n', 'server.mode', "config/x.ini [server] mode: must be inline or remote, got 'sideways'"],
  ['[server]\n', 'server.name', 'config/x.ini [server] name: is required'],
  ['[server]\nname=\n', 'server.name', 'config/x.ini [server] name: is required'],
  ['[server]\nname[]=a\nname[]=b\n', 'server.name', 'config/x.ini [server] name: must be given once, as one value'],
] as const)('%j: %s refused with one ConfigError naming file, section and key', (text, name, message) => {
  let err: unknown;
  try {
    read(text).get(name);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  expect(err).toMatchObject({
    name: 'ConfigError',
    message,
    where: { file: 'config/x.ini', section: 'server', key: name.slice('server.'.length) },
  });
});

test('changedSettings and unknownSettings: by "section.key", free sections key by key', () => {
  const before = parseIni('[server]\nport=25\n[peers]\nb.example=https://b\n');
  const after = parseIni('[server]\nport=26\nprot=1\n[peers]\nc.example=https://c\n[other]\nx=1\n');
  expect(changedSettings(S, before, after, 'x.ini', ['peers'])).toEqual(['server.port', 'peers.b.example', 'peers.c.example']);
  expect(unknownSettings(S, after, ['peers'])).toEqual(['server.prot', 'other.x']);
  expect(unknownSettings(S, parseIni('stray=1\n[server]\nport=1\n'))).toEqual(['stray']);
});

test("sectionsOf and unknownSections: the schema's sections in order; unknown ones, empty ones too, except free ones", () => {
  expect(sectionsOf(S)).toEqual(['server']);
  const two = defineSettings({ 'b.x': { type: 'str' }, 'a.y': { type: 'str' }, 'b.z': { type: 'str' } });
  expect(sectionsOf(two)).toEqual(['b', 'a']);
  const ini = parseIni('stray=1\n[server]\nport=1\n[peers]\nb.example=https://b\n[empty]\n[other]\nx=1\n');
  expect(unknownSections(S, ini, ['peers'])).toEqual(['empty', 'other']);
  expect(unknownSections(S, ini)).toEqual(['peers', 'empty', 'other']);
  expect(unknownSections(S, parseIni('[server]\nport=1\n'))).toEqual([]);
});
