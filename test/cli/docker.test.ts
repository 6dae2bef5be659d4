import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

// No Docker engine runs here (STACK-NOTES.md): the compose file is validated
// by parsing it and checking that what it names exists in the repository.
const root = join(__dirname, '..', '..');

test('docker/compose.yaml parses and builds from this repository with docker/Dockerfile', () => {
  const compose = parse(readFileSync(join(root, 'docker', 'compose.yaml'), 'utf8')) as { services: Record<string, { build: { context: string; dockerfile: string }; command: string[] }> };
  expect(Object.keys(compose.services).sort()).toEqual(['demo', 'tests']);
  for (const svc of Object.values(compose.services)) {
    const context = join(root, 'docker', svc.build.context);
    expect(existsSync(join(context, svc.build.dockerfile))).toBe(true);
    expect(existsSync(join(context, 'package.json'))).toBe(true);
  }
  expect(compose.services.demo!.command.slice(0, 3)).toEqual(['node', 'bin/ssmax', 'demo']);
  const dockerfile = readFileSync(join(root, 'docker', 'Dockerfile'), 'utf8');
  expect(dockerfile).toMatch(/npm ci/);
  expect(dockerfile).toMatch(/clamav-daemon/);
});
