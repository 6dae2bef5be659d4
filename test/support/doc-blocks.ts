/**
 * The shell blocks of a Markdown document that the document marks as tested:
 * a line `<!-- tested: <name> … -->` directly before a fenced ```sh block.
 * Tests run those blocks exactly as written (bash -euo pipefail), so the
 * documented steps are the steps that are proven.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function testedBlocks(markdownFile: string, name: string): string[] {
  const lines = readFileSync(markdownFile, 'utf8').split('\n');
  const blocks: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!-- tested: (\S+)/.exec(lines[i]!);
    if (!m || m[1] !== name) continue;
    if (!/^```(sh|bash|shell)\s*$/.test(lines[i + 1] ?? ''))
      throw new Error(`${markdownFile}:${i + 1}: the tested marker is not followed by a \`\`\`sh block`);
    const end = lines.findIndex((l, j) => j > i + 1 && /^```\s*$/.test(l));
    if (end < 0) throw new Error(`${markdownFile}:${i + 2}: unterminated block`);
    blocks.push(lines.slice(i + 2, end).join('\n'));
  }
  if (blocks.length === 0) throw new Error(`${markdownFile}: no block marked "<!-- tested: ${name}"`);
  return blocks;
}

export interface ShellResult {
  readonly status: number | null;
  readonly output: string;
}

/** Runs a documented block with bash in `cwd` (the event loop keeps running: services started by the test stay drained); `env` adds to the environment. */
export function runBlock(script: string, cwd: string, env: Record<string, string> = {}, timeoutMs = 300000): Promise<ShellResult> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      output += `\n(killed after ${timeoutMs} ms)`;
    }, timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}
