/**
 * What the shipped code imports is what package.json promises: every package
 * src/ imports is a dependency (not only a devDependency, which a production
 * install leaves out), every dependency is imported by src/ or named below
 * with its reason, and every deep import of a package goes through a subpath
 * the package itself declares in its `exports` map (its public surface), never
 * a file path inside it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Deep imports into packages without an exports map, each with its reason. */
const DEEP_IMPORTS: Record<string, string> = {
  'secp256k1/bindings': "the native addon alone, never the package's pure-JavaScript fallback (src/crypto/group-native.ts)",
  'pdfjs-dist/legacy/build/pdf.mjs': "pdf.js's build for Node, as pdf.js documents it (src/inspect/pdf-worker.ts)",
};

/** Dev tools kept in src/ and run only from npm scripts of a checkout (bench, fuzz): they may use devDependencies. */
const DEV_TOOLS = ['bench', 'fuzz'];

/** Dependencies src/ does not import by name, and why they are dependencies all the same. */
const NOT_IMPORTED: Record<string, string> = {
  Haraka: 'the server the gateway plugin runs in (bin/, docker/, setup); its modules are reached through the running server',
  'haraka-dsn': 'Haraka plugin dependency used through the running server',
};

function sourceFiles(dir: string, skip: readonly string[] = []): string[] {
  return readdirSync(dir)
    .filter((name) => !skip.includes(name))
    .flatMap((name) => {
      const p = join(dir, name);
      return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
    });
}

/** Module specifiers of import/require/import() in a source file (comments left out). */
function specifiers(source: string): string[] {
  const text = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\brequire\(\s*|\bimport\(\s*|^import\s+)'([^']+)'/gm)) out.push(m[1]!);
  return out;
}

const imports = new Map<string, Set<string>>(); // package -> deep subpaths ('' for the package itself)
for (const file of sourceFiles(join(ROOT, 'src'), DEV_TOOLS)) {
  for (const spec of specifiers(readFileSync(file, 'utf8'))) {
    if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]!)) continue;
    const parts = spec.split('/');
    const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
    const sub = spec.slice(name.length);
    if (!imports.has(name)) imports.set(name, new Set());
    imports.get(name)!.add(sub);
  }
}

test('every package src/ imports is a dependency, not only a devDependency', () => {
  const missing = [...imports.keys()].filter((n) => !(n in pkg.dependencies));
  expect(missing).toEqual([]);
});

test('every dependency is imported by src/ or has a stated reason; test-only packages are devDependencies', () => {
  const unused = Object.keys(pkg.dependencies).filter((n) => !imports.has(n) && !(n in NOT_IMPORTED));
  expect(unused).toEqual([]);
  // the two legacy charset libraries: tests build their fixtures with them; src/ decodes through iconv-lite only
  expect(imports.has('encoding-japanese')).toBe(false);
  expect(pkg.devDependencies['encoding-japanese']).toBeDefined();
});

/** Whether subpath `./x/y` is declared by an exports map, as a key or by a `./x/*` pattern. */
function declares(exportsMap: Record<string, unknown>, subpath: string): boolean {
  return Object.keys(exportsMap).some((key) => key === subpath || (key.endsWith('*') && subpath.startsWith(key.slice(0, -1))));
}

test('deep imports use subpaths the package declares in its exports map (no paths into its files), or are listed with their reason', () => {
  const undeclared: string[] = [];
  for (const [name, subs] of imports) {
    const exp = (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { exports?: unknown }).exports;
    for (const sub of subs) {
      if (sub === '' || `${name}${sub}` in DEEP_IMPORTS) continue;
      const declared =
        typeof exp === 'object' && exp !== null && !Array.isArray(exp) && declares(exp as Record<string, unknown>, `.${sub}`);
      if (!declared) undeclared.push(`${name}${sub}`);
    }
  }
  expect(undeclared).toEqual([]);
  // nodemailer's SMTP client, address parser and MIME node: declared entries of its exports map, not files reached by path
  expect([...(imports.get('nodemailer') ?? [])].sort()).toEqual(['', '/lib/addressparser', '/lib/mime-node', '/lib/smtp-connection']);
});
