import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Script } from 'node:vm';
import { parse as parseIni } from 'ini';
import { parse } from 'yaml';

// No Docker engine runs here (no container engine on the test machines): the compose files are validated
// by parsing them and checking that what they name exists in the repository.
const root = join(__dirname, '..', '..');

jest.setTimeout(120000);

test('docker/compose.yaml parses and builds from this repository with docker/Dockerfile', () => {
  const text = readFileSync(join(root, 'docker', 'compose.yaml'), 'utf8');
  const compose = parse(text) as { services: Record<string, { build: { context: string; dockerfile: string }; command: string[] }> };
  expect(Object.keys(compose.services).sort()).toEqual(['demo', 'tests']);
  for (const svc of Object.values(compose.services)) {
    const context = join(root, 'docker', svc.build.context);
    expect(existsSync(join(context, svc.build.dockerfile))).toBe(true);
    expect(existsSync(join(context, 'package.json'))).toBe(true);
  }
  expect(compose.services.demo!.command.slice(0, 3)).toEqual(['node', 'bin/ssmax', 'demo']);
  expect(compose.services.demo!.command).toEqual(expect.arrayContaining(['--dir', '--keep']));
  expect(text).toMatch(/Compose Specification, run with Docker Compose v2/);
  const dockerfile = readFileSync(join(root, 'docker', 'Dockerfile'), 'utf8');
  expect(dockerfile).toMatch(/npm ci/);
  expect(dockerfile).toMatch(/clamav-daemon/);
});

interface Service {
  build?: { context: string; dockerfile: string };
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval: string; timeout: string; retries: number; start_period: string };
}

describe('docker/org.compose.yaml: one deployable organisation', () => {
  const text = readFileSync(join(root, 'docker', 'org.compose.yaml'), 'utf8');
  const compose = parse(text, { merge: true }) as { name: string; services: Record<string, Service>; volumes: Record<string, unknown> };
  const s = compose.services;
  /** container path → source, for one service */
  const mounts = (svc: Service) =>
    new Map(
      (svc.volumes ?? []).map((v) => {
        const [source, target] = v.replace(/\$\{SSMAX_ORG:-[^}]*\}/, 'ORG').split(':') as [string, string]; // ${VAR:-default} holds a colon
        return [target, source];
      }),
    );
  const mountedUnder = (svc: Service, path: string) => [...mounts(svc).keys()].find((t) => path === t || path.startsWith(`${t}/`));

  test('states its format (Compose v2) and has gateway, keyd, publisher, inspector, clamd, built from this repository', () => {
    expect(text).toMatch(/Compose Specification, run with Docker Compose v2/);
    expect(compose.name).toBe('ssmax-org');
    expect(Object.keys(s).sort()).toEqual(['clamd', 'gateway', 'inspector', 'keyd', 'publisher']);
    for (const name of ['gateway', 'keyd', 'publisher', 'inspector']) {
      const b = s[name]!.build!;
      expect(existsSync(join(root, 'docker', b.context, b.dockerfile))).toBe(true);
    }
    expect(s.clamd!.image).toMatch(/^clamav\/clamav:\d+\.\d+$/);
  });

  test('every ssmax command is a real subcommand of this build, and its --config lies in a folder mounted into that service', () => {
    for (const name of ['keyd', 'publisher', 'inspector']) {
      const cmd = s[name]!.command!;
      expect(cmd.slice(0, 2)).toEqual(['node', 'bin/ssmax']);
      const config = cmd[cmd.indexOf('--config') + 1] as string;
      const at = mountedUnder(s[name]!, posix.dirname(config));
      expect({ name, config, mounted: at !== undefined }).toEqual({ name, config, mounted: true });
      const help = spawnSync(process.execPath, [join(root, 'bin', 'ssmax'), ...cmd.slice(2, cmd.indexOf('--config')), '--help'], {
        encoding: 'utf8',
      });
      expect({ name, status: help.status }).toEqual({ name, status: 0 });
    }
    const gw = s.gateway!;
    expect(gw.command!.join(' ')).toMatch(/node_modules\/Haraka\/bin\/haraka -c \/var\/lib\/ssmax\/haraka$/);
    expect(existsSync(join(root, 'node_modules', 'Haraka', 'bin', 'haraka'))).toBe(true);
    expect(existsSync(join(root, 'plugins', 'ssmax', 'package.json'))).toBe(true);
    expect(gw.environment!.HARAKA).toBe('/var/lib/ssmax/haraka');
    expect(mounts(gw).get('/var/lib/ssmax/haraka/config')).toMatch(/\/gateway\/config$/);
    for (const svc of Object.values(s)) for (const v of svc.volumes ?? []) if (v.includes('${SSMAX_ORG')) expect(v).toMatch(/:ro$/); // the organisation's files: read-only
  });

  test("every state folder is on a named volume declared at the top (the shipped configs' defaults where they are absolute)", () => {
    const named = (svc: Service, path: string) => {
      const source = mounts(svc).get(path);
      return source !== undefined && Object.prototype.hasOwnProperty.call(compose.volumes, source) ? source : undefined;
    };
    const keydIni = parseIni(readFileSync(join(root, 'config', 'ssmax-keyd.ini'), 'utf8')) as { keyd: { data_dir: string } };
    const pubIni = parseIni(readFileSync(join(root, 'config', 'ssmax-publisher.ini'), 'utf8')) as { publisher: { state_file: string } };
    expect(named(s.keyd!, keydIni.keyd.data_dir)).toBe('keyd-data');
    expect(named(s.publisher!, posix.dirname(pubIni.publisher.state_file))).toBe('publisher-state');
    expect(named(s.inspector!, '/var/lib/ssmax/inspector')).toBe('inspector-state');
    expect(named(s.gateway!, '/var/lib/ssmax/haraka/ssmax-state')).toBe('gateway-state'); // setupGateway: <haraka>/ssmax-state
    expect(named(s.gateway!, '/var/lib/ssmax/haraka/queue')).toBe('gateway-queue'); // Haraka's default queue_dir: <haraka>/queue
    expect(named(s.clamd!, '/var/lib/clamav')).toBe('clamav-db');
    const used = Object.values(s)
      .flatMap((svc) => [...mounts(svc).values()])
      .filter((src) => !src.includes('/'));
    expect(used.sort()).toEqual(Object.keys(compose.volumes).sort());
  });

  test('every service has a healthcheck (its Node.js one-liner compiles); start order follows health', () => {
    for (const [name, svc] of Object.entries(s)) {
      const h = svc.healthcheck!;
      expect({ name, has: h !== undefined && h.test.length > 1 }).toEqual({ name, has: true });
      expect(h.interval).toMatch(/^\d+s$/);
      expect(h.timeout).toMatch(/^\d+s$/);
      expect(h.retries).toBeGreaterThan(0);
      if (h.test[0] === 'CMD' && h.test[1] === 'node') expect(() => new Script(h.test[3] as string)).not.toThrow();
    }
    // the HTTP readiness endpoints of the [ops] listeners (ssmax setup --ops-port 9520), not TCP checks
    expect(s.gateway!.healthcheck!.test.join(' ')).toMatch(/http:\/\/127\.0\.0\.1:9520\/health\/ready/);
    expect(s.keyd!.healthcheck!.test.join(' ')).toMatch(/http:\/\/127\.0\.0\.1:9521\/health\/ready/);
    expect(s.publisher!.healthcheck!.test.join(' ')).toMatch(/http:\/\/127\.0\.0\.1:9522\/health\/ready/);
    expect(s.inspector!.healthcheck!.test.join(' ')).toMatch(/http:\/\/127\.0\.0\.1:9523\/health\/ready/);
    for (const name of ['gateway', 'keyd', 'publisher', 'inspector'])
      expect(s[name]!.healthcheck!.test.join(' ')).not.toMatch(/connect\(|startsWith\('220'\)/);
    expect(s.clamd!.healthcheck!.test.join(' ')).toMatch(/PING/);
    const after = (svc: string) =>
      Object.entries(s[svc]!.depends_on ?? {})
        .map(([dep, c]) => {
          expect(c.condition).toBe('service_healthy');
          return dep;
        })
        .sort();
    expect(after('publisher')).toEqual(['keyd']);
    expect(after('inspector')).toEqual(['clamd', 'keyd']);
    expect(after('gateway')).toEqual(['inspector', 'keyd']);
  });
});
