/**
 * Every keyd client reads keyd's address the same way (src/keyd/client-settings.ts):
 * https://host:port and nothing else, refused with the same text in each
 * command's config file — the gateway, the inspector, the publisher, the
 * console and the abuse/list tool — before anything connects.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'ini';
import { loadAbuseConfig } from '../../src/abuse/config';
import { loadConsoleConfig } from '../../src/console/config';
import { parseGatewayConfig } from '../../src/gateway/config';
import { loadInspectorConfig } from '../../src/inspector/config';
import { isKeydUrl } from '../../src/keyd/client-settings';
import { loadPublisherConfig } from '../../src/publisher/config';
import { shippedIni } from '../support/shipped-ini';

const dir = mkdtempSync(join(tmpdir(), 'ssmax-keyd-url-'));

/** The shipped file with its [keyd] url replaced. */
function withUrl(name: string, url: string): string {
  const text = shippedIni(name);
  const at = text.indexOf('\n[keyd]');
  const line = /^url=.*$/m;
  const tail = text.slice(at).replace(line, `url=${url}`);
  expect(tail).toContain(`url=${url}`); // the file has a [keyd] url to replace
  return text.slice(0, at) + tail;
}

const fromFile = (load: (file: string) => unknown) => (text: string) => {
  const file = join(dir, 'config.ini');
  writeFileSync(file, text);
  return load(file);
};

const readers: [string, (text: string) => unknown][] = [
  ['ssmax.ini', (text) => parseGatewayConfig(parse(text), '/h/config')],
  ['ssmax-inspector.ini', fromFile(loadInspectorConfig)],
  ['ssmax-publisher.ini', fromFile(loadPublisherConfig)],
  ['ssmax-console.ini', fromFile(loadConsoleConfig)],
  ['ssmax-abuse.ini', fromFile(loadAbuseConfig)],
];

describe.each(readers)('%s: [keyd] url', (name, read) => {
  test('an https://host:port is not refused (the console goes on to read its certificate files, absent here)', () => {
    expect(() => read(withUrl(name, 'https://keyd.a.example:7443'))).not.toThrow(/\[keyd\] url/);
  });

  test.each(['http://127.0.0.1:7443', 'https://127.0.0.1:7443/v1', 'https://h:1?x=1', 'keyd.a.example:7443', 'https://'])(
    '%s is refused, naming the setting',
    (url) => {
      expect(() => read(withUrl(name, url))).toThrow(/\[keyd\] url.*must be https:\/\/host:port/s);
    },
  );
});

test('the form: a host and port, as every address of the project, an optional trailing slash, nothing else', () => {
  for (const u of ['https://a:1', 'https://a:1/', 'https://[::1]:7443', 'https://keyd.a.example:7443'])
    expect([u, isKeydUrl(u)]).toEqual([u, true]);
  for (const u of [
    'https://a:1//',
    'https://a b:1',
    'https://a:1#f',
    'https://u:p@a:7443',
    'https://a',
    'https://a:0',
    'https://::1:7443',
    'https://a:1 ',
    'http://a:1',
  ])
    expect([u, isKeydUrl(u)]).toEqual([u, false]);
});
