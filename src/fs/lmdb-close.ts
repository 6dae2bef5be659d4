/**
 * Closing an LMDB environment (lmdb-js) safely. lmdb 3.5's `close()`, called
 * in the same synchronous run as a `transactionSync` on that environment,
 * never returns: the native close waits for a lock the write worker started
 * by the synchronous transaction still holds, and that worker waits for the
 * main thread. Waiting for `committed` first ends that run (and lets every
 * write issued so far commit) before the native close starts. Every store of
 * the project closes through this.
 */
/** What closing needs of a root database: its `committed` promise and `close`. */
export interface ClosableLmdb {
  readonly committed: Promise<unknown>;
  close(): Promise<void>;
}

export async function closeLmdb(root: ClosableLmdb): Promise<void> {
  await root.committed;
  await root.close();
}
