// The repository stands alone: no tracked file refers the reader to design
// notes kept outside it, and every relative link in README.md and docs/*.md
// leads to a file (and, for a #fragment into a Markdown file, a heading) that
// exists.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(__dirname, '..', '..');

// Spelled in pieces so that this file does not name them itself. Case matters:
// docs/protocol.md is this project's own protocol document.
const NAMES = {
  protocol: 'PROTO' + 'COL',
  architecture: 'ARCHI' + 'TECTURE',
  stackNotes: 'STACK' + '-NOTES',
  developers: 'DEVEL' + 'OPERS',
  shared: 'shared' + '/',
};
const OUTSIDE = new RegExp(
  [
    `${NAMES.protocol}\\.md`,
    `${NAMES.architecture}\\.md`,
    NAMES.stackNotes,
    NAMES.developers,
    NAMES.shared,
    "[Dd]evelopers' " + '[Gg]uide',
  ].join('|'),
);

/** The lines of `text` that name a file outside the repository, as "line: text". */
function outsideReferences(text: string): string[] {
  return text.split('\n').flatMap((line, i) => (OUTSIDE.test(line) ? [`${i + 1}: ${line.trim().slice(0, 120)}`] : []));
}

/**
 * The repository's files: `git ls-files` in a clone; where there is no git
 * (the test container copies the tree without .git), every file of the tree
 * but the folders git and the container leave out.
 */
function trackedFiles(): string[] {
  const git = spawnSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  const listed = git.status === 0 ? git.stdout.split('\0').filter((f) => f !== '') : walk('');
  return listed.filter((f) => existsSync(join(root, f)) && statSync(join(root, f)).isFile());
}

const NOT_SOURCE = new Set(['.git', 'node_modules', 'dist', 'coverage']);
function walk(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const path = dir === '' ? e.name : `${dir}/${e.name}`;
    if (e.isDirectory()) return NOT_SOURCE.has(e.name) ? [] : walk(path);
    return e.isFile() ? [path] : [];
  });
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of withoutCode(markdown).matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Markdown without fenced code blocks and inline code spans, which hold no links. */
function withoutCode(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[ \t]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** The relative link targets of a Markdown text: `[text](target)` and `[label]: target`. */
function relativeLinks(markdown: string): string[] {
  const text = withoutCode(markdown);
  const targets = [...text.matchAll(/\]\(([^()\s]+)(?:\s+"[^"\n]*")?\)/g)].map((m) => m[1]!);
  targets.push(...[...text.matchAll(/^\s*\[[^\]\n]+\]:\s*(\S+)/gm)].map((m) => m[1]!));
  return targets.filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

/** Broken links of one Markdown file, as "target: why". */
function brokenLinks(file: string, base = root): string[] {
  const text = readFileSync(file, 'utf8');
  const broken: string[] = [];
  for (const target of relativeLinks(text)) {
    const [path, fragment] = target.split('#', 2) as [string, string | undefined];
    const dest = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
    if (relative(base, dest).startsWith('..')) broken.push(`${target}: leads outside the repository`);
    else if (!existsSync(dest)) broken.push(`${target}: no such file`);
    else if (fragment !== undefined && dest.endsWith('.md') && !anchors(readFileSync(dest, 'utf8')).has(fragment))
      broken.push(`${target}: no heading "#${fragment}" in ${relative(base, dest)}`);
  }
  return broken;
}

const markdownFiles = [
  join(root, 'README.md'),
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(root, 'docs', f)),
];

test('the detectors find what they look for (so the checks below can fail)', () => {
  const sample = [
    'ok line',
    `see ${NAMES.protocol}.md, "Roles"`,
    `Design: \`../${NAMES.shared}design/\``,
    `the ${NAMES.stackNotes} anchor`,
    `the ${NAMES.developers}.md rule`,
    'docs/protocol.md is ours',
  ];
  expect(outsideReferences(sample.join('\n'))).toEqual([2, 3, 4, 5].map((line) => `${line}: ${sample[line - 1]!}`));
  expect(relativeLinks('[a](protocol.md) [b](https://x.example/) `[c](in-code.md)` [d](#roles)\n[e]: ../x.md\n')).toEqual([
    'protocol.md',
    '#roles',
    '../x.md',
  ]);
  expect(
    anchors('# The SSMAX protocol, version 1\n## Groups and primitives\n```\n# not a heading\n```\n## Groups and primitives\n'),
  ).toEqual(new Set(['the-ssmax-protocol-version-1', 'groups-and-primitives', 'groups-and-primitives-1']));
});

test('no tracked file refers to design notes outside the repository', () => {
  const files = trackedFiles();
  expect(files).toContain('docs/protocol.md');
  const found = files.flatMap((f) => {
    const buf = readFileSync(join(root, f));
    if (buf.includes(0)) return [];
    return outsideReferences(buf.toString('utf8')).map((hit) => `${f}:${hit}`);
  });
  expect(found).toEqual([]);
});

test.each(markdownFiles.map((f) => [relative(root, f), f]))('every relative link in %s exists', (_name, file) => {
  expect(brokenLinks(file)).toEqual([]);
});

test('a broken link, a missing heading and a link out of the repository are reported', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ssmax-links-'));
  mkdirSync(join(dir, 'docs'));
  writeFileSync(join(dir, 'docs', 'b.md'), '# B\n## Real section\n');
  writeFileSync(
    join(dir, 'docs', 'a.md'),
    '[ok](b.md#real-section) [gone](c.md) [anchor](b.md#no-such-section) [out](../../x.md) [self](#a)\n# A\n',
  );
  expect(brokenLinks(join(dir, 'docs', 'a.md'), dir)).toEqual([
    'c.md: no such file',
    'b.md#no-such-section: no heading "#no-such-section" in docs/b.md',
    '../../x.md: leads outside the repository',
  ]);
});
