/**
 * A list's address at creation (src/keyd/lists.ts): every copy of a post leaves with the list's bounce address
 * (<local>-bounces@domain, src/lists/bounces.ts) as its envelope sender, so that address must be a mail address
 * too. A list whose local part leaves no room for the suffix was created, and then no copy to a member at a peer
 * could ever be queued (Haraka refuses a local part over 64 characters): 451 on every retry of every post.
 */
import { loadKeydConfig } from '../../src/keyd/config';
import { openKeyd } from '../../src/keyd/daemon';
import type { Actor } from '../../src/keyd/service';
import { listBounceAddress } from '../../src/lists/bounces';
import { makeOrgFixture } from '../support/org-fixture';

const admin: Actor = { role: 'admin', name: 'test admin' };

describe('list addresses', () => {
  const fx = makeOrgFixture();
  const parts = openKeyd(loadKeydConfig(fx.configFile));
  afterAll(() => parts.store.close());

  test('a local part of 56 characters is taken (its bounce address has 64); one of 57 is refused, naming the limit', async () => {
    const fits = `${'l'.repeat(56)}@a.example`;
    await parts.service.lists.create(admin, { address: fits });
    expect(listBounceAddress(fits).split('@')[0]).toHaveLength(64);
    const over = `${'m'.repeat(57)}@a.example`;
    await expect(parts.service.lists.create(admin, { address: over })).rejects.toMatchObject({
      code: 'bad-request',
      message: expect.stringMatching(/bounce address m{57}-bounces@… would have a local part over 64 characters \(at most 56 for a list\)/),
    });
    expect(parts.service.lists.get(over)).toBeUndefined();
  });
});
