import type { BenchRow } from './harness';
// Placeholder: the pki benchmark suite replaces this file.
export async function run(): Promise<BenchRow[]> {
  return [];
}
