import type { BenchRow } from './harness';
// Filled in with the crypto core (issue 2).
export async function run(): Promise<BenchRow[]> {
  return [];
}
