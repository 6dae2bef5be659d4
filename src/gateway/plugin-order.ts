/**
 * Plugins that would take the mail in the ssmax plugin's place. Haraka runs a
 * hook's plugins in order (priority, then their order in config/plugins) until
 * one answers. The ssmax plugin answers its queue and queue_outbound hooks for
 * every message; a plugin that delivers mail itself (Haraka's `queue/…`
 * plugins, `smtp_forward`, `smtp_proxy`, …) and runs first would take it before
 * the gateway saw it: a submission relayed in clear where the policy requires
 * encryption, an arrival delivered without its chain verified. The plugin
 * refuses to start then, naming the plugin and the hook (docs/deploy.md).
 *
 * Other plugins with hooks there usually only look or refuse (karma's
 * queue hooks deny or go on, dkim signs in queue_outbound and goes on,
 * queue/quarantine keeps a copy and goes on), and a get_mx hook ahead of
 * ssmax's only matters for the domains ssmax routes ([routes]; for the others
 * it goes on): those are logged as a WARNING, not refused. Plugins whose hooks
 * run after the ssmax plugin's are never asked for those messages, and are let be.
 */

/** The hooks where the ssmax plugin decides where the mail goes. */
const DECIDING_HOOKS = ['queue', 'queue_outbound', 'get_mx'] as const;

/** The hooks where a delivering plugin ahead of ssmax takes the mail. */
const TAKING_HOOKS: ReadonlySet<string> = new Set(['queue', 'queue_outbound']);

/** Haraka's plugins (and well-known ones) that deliver the mail in their queue hooks, taking it for good. */
const DELIVERING =
  /^(queue\/(?!quarantine$).+|smtp_forward|smtp_proxy|qmail-deliverable|haraka-plugin-(qmail-deliverable|queue-.+|smtp-forward))$/;

/** Haraka's registered hooks (plugins.js `registered_hooks`): per hook, its plugins in the order they run. */
export type RegisteredHooks = Readonly<Record<string, readonly { readonly plugin: string }[] | undefined>>;

/** `refuse`: why a delivering plugin ahead of `self` must go (undefined when none is); `warn`: the others ahead. */
export function pluginsAhead(hooks: RegisteredHooks, self: string): { refuse?: string; warn: string[] } {
  const refused: string[] = [];
  const warn: string[] = [];
  for (const hook of DECIDING_HOOKS) {
    const list = hooks[hook] ?? [];
    const at = list.findIndex((h) => h.plugin === self);
    const before = (at < 0 ? list : list.slice(0, at)).map((h) => h.plugin).filter((p) => p !== self);
    for (const p of new Set(before)) {
      if (TAKING_HOOKS.has(hook) && DELIVERING.test(p)) refused.push(`"${p}" answers the ${hook} hook before ${self}`);
      else
        warn.push(
          `"${p}" has a ${hook} hook that runs before ${self}'s: should it answer there (deliver, route) rather than look or refuse, mail would leave without SSMAX; list ${self} above it in config/plugins (docs/deploy.md)`,
        );
    }
  }
  if (refused.length === 0) return { warn };
  return {
    refuse: `${refused.join('; ')}: mail would leave without SSMAX (a submission in clear, an arrival unverified); list ${self} above it in config/plugins, or remove it (docs/deploy.md)`,
    warn,
  };
}
