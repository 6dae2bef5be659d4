import type { BenchRow } from './harness';
// Placeholder: the chain benchmark suite replaces this file.
export async function run(): Promise<BenchRow[]> {
  return [];
}
