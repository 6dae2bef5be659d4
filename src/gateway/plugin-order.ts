/**
 * Plugins that would answer in the ssmax plugin's place. Haraka runs a hook's
 * plugins in order (priority, then their order in config/plugins) until one
 * answers; the ssmax plugin always answers its queue, queue_outbound and
 * get_mx hooks. Another plugin's hook for one of them that runs first — Haraka's
 * own `queue/smtp_forward` listed above `ssmax`, say — would take the mail
 * before the gateway saw it: a submission relayed in clear where the policy
 * requires encryption, an arrival delivered without its chain verified. The
 * plugin refuses to start then, naming the plugin and the hook
 * (docs/deploy.md). Plugins whose hooks for them run after the ssmax plugin's
 * are never asked, and are let be.
 */

/** The hooks where the ssmax plugin decides where the mail goes. */
export const DECIDING_HOOKS = ['queue', 'queue_outbound', 'get_mx'] as const;

/** Haraka's registered hooks (plugins.js `registered_hooks`): per hook, its plugins in the order they run. */
export type RegisteredHooks = Readonly<Record<string, readonly { readonly plugin: string }[] | undefined>>;

/** Why the plugins ahead of `self` in a deciding hook must go; undefined when none is. */
export function pluginsAhead(hooks: RegisteredHooks, self: string): string | undefined {
  const ahead: string[] = [];
  for (const hook of DECIDING_HOOKS) {
    const list = hooks[hook] ?? [];
    const at = list.findIndex((h) => h.plugin === self);
    const before = (at < 0 ? list : list.slice(0, at)).map((h) => h.plugin).filter((p) => p !== self);
    for (const p of new Set(before)) ahead.push(`"${p}" answers the ${hook} hook before ${self}`);
  }
  if (ahead.length === 0) return undefined;
  return `${ahead.join('; ')}: mail would leave without SSMAX (a submission in clear, an arrival unverified); list ${self} above it in config/plugins, or remove it (docs/deploy.md)`;
}
