/**
 * The console's pages (docs/console.md): overview, peers, quarantine, users
 * and lists, abuse, audit. Each has a GET (the page) and, where it acts, a
 * POST per action (the server has checked the CSRF token and the role
 * first). Every action that changes something is audited in keyd as the
 * administrator: keyd's own operations audit themselves; the console's own
 * (quarantine release and delete, peer refresh) are recorded in keyd's chain
 * (POST /v1/audit/console) before they are done — no record, no action.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describeResolution, resolveReport, resolveToken, type Resolution } from '../abuse/resolve';
import { SEAL_HEADER, parseSeal } from '../chain/tags';
import { directoryOptions, loadDirectoryConfig } from '../directory/config';
import { Directory, DirectoryError, type PeerStatus } from '../directory/directory';
import { QuarantineStore, RELEASE_HEADER, releaseInterrupted, releaseRecordGone, releaseTaken, shownState } from '../inspect/quarantine';
import { KeydClient } from '../keyd/client';
import { ReinjectError, ReleaseStateError, describeRelease, passwordOf, releaseHeld } from '../mail/release';
import type { ClientIdentity } from '../pki/client-auth';
import type { Role } from '../pki/oids';
import { type Sample, type ServiceHealth, getText, health, parseMetrics } from './backends';
import type { ConsoleConfig } from './config';
import { quarantinedPlaintext } from './content';
import { Html, html } from './html';
import { type Key, type Lang, t as text } from './i18n';

export interface PageContext {
  readonly lang: Lang;
  readonly identity: ClientIdentity;
  readonly csrf: string;
  readonly config: ConsoleConfig;
  readonly url: URL;
  readonly path: string;
  readonly keyd: { call<T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> };
  readonly clock: () => Date;
  t(key: Key, vars?: Record<string, string | number>): string;
  log(line: string): void;
}

export interface Page {
  readonly roles: readonly Role[];
  get(ctx: PageContext): Promise<Html>;
  post?(ctx: PageContext, action: string, form: Map<string, string>): Promise<Html>;
  close?(): Promise<void>;
}

const ADMIN: readonly Role[] = ['admin'];

const iso = (ms: number | undefined) =>
  ms === undefined || !Number.isFinite(ms) || ms <= 0 ? '—' : `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
const duration = (seconds: number) =>
  seconds < 120
    ? `${Math.round(seconds)} s`
    : seconds < 7200
      ? `${Math.round(seconds / 60)} min`
      : seconds < 172800
        ? `${Math.round(seconds / 3600)} h`
        : `${Math.round(seconds / 86400)} d`;

function notice(kind: 'ok' | 'bad', message: string): Html {
  return kind === 'ok' ? html`<p class="notice ok" role="status">${message}</p>` : html`<p class="notice bad" role="alert">${message}</p>`;
}

function csrfField(ctx: PageContext): Html {
  return html`<input type="hidden" name="csrf" value="${ctx.csrf}">`;
}

/** What went wrong, for the page (keyd's and the directory's messages name no secret). */
function failure(ctx: PageContext, err: unknown): Html {
  // the directory's whole reason for the operator (its message alone names only the domain)
  const why = err instanceof DirectoryError ? err.detail : (err as Error).message;
  return notice('bad', ctx.t('failed', { why: why.slice(0, 500) }));
}

/** Records a console action in keyd's audit chain as the administrator; throws (and the action is not done) if keyd cannot. */
async function auditAction(ctx: PageContext, op: string, target: string): Promise<void> {
  await ctx.keyd.call('POST', '/v1/audit/console', { op, target: target.slice(0, 254) });
}

// ---------------------------------------------------------------- overview

async function metrics(base: string | undefined, names: readonly string[]): Promise<Sample[]> {
  if (!base) return [];
  try {
    const r = await getText(`${base}/metrics`);
    return r.status === 200 ? parseMetrics(r.text, new Set(names)) : [];
  } catch {
    return [];
  }
}

interface PublicKeys {
  current: string | null;
  keys: { keyId: string; version: number; state: string; notAfter: string }[];
}

const overview: Page = {
  roles: ADMIN,
  async get(ctx) {
    const ops = ctx.config.ops;
    const [services, keys, keydMetrics, publisherMetrics] = await Promise.all([
      Promise.all((['gateway', 'keyd', 'inspector', 'publisher'] as const).map((s) => health(s, ops[s]))),
      ctx.keyd.call<PublicKeys>('GET', '/v1/public').catch((err: unknown) => err as Error),
      metrics(ops.keyd, ['ssmax_keyd_crl_next_update_timestamp_seconds']),
      metrics(ops.publisher, ['ssmax_publisher_bundle_serial', 'ssmax_publisher_bundle_expiry_timestamp_seconds']),
    ]);
    // clamd has no listener of its own: the inspector's (or the gateway's) readiness checks it
    const clamdCheck = services.map((s) => s.checks.clamd).find((c) => c !== undefined);
    const rows: ServiceHealth[] = [
      ...services,
      {
        service: 'clamd',
        state: clamdCheck === undefined ? 'not-configured' : clamdCheck === 'ok' ? 'ready' : 'not-ready',
        checks: clamdCheck === undefined ? {} : { clamd: clamdCheck },
      },
    ];
    const stateText = (s: ServiceHealth['state']) =>
      ctx.t(s === 'ready' ? 'ready' : s === 'not-ready' ? 'notReady' : s === 'unreachable' ? 'unreachable' : 'notConfigured');
    const serial = publisherMetrics.find((m) => m.name === 'ssmax_publisher_bundle_serial')?.value;
    const bundleExpiry = publisherMetrics.find((m) => m.name === 'ssmax_publisher_bundle_expiry_timestamp_seconds')?.value;
    return html`
<h2 id="services">${ctx.t('services')}</h2>
<table aria-labelledby="services"><thead><tr><th scope="col">${ctx.t('service')}</th><th scope="col">${ctx.t('status')}</th><th scope="col">${ctx.t('checks')}</th></tr></thead><tbody>
${rows.map(
  (s) =>
    html`<tr data-service="${s.service}"><th scope="row">${s.service}</th><td class="${s.state === 'ready' ? 'ok' : s.state === 'not-configured' ? '' : 'bad'}">${stateText(s.state)}</td><td>${Object.entries(
      s.checks,
    )
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')}</td></tr>`,
)}
</tbody></table>
<h2 id="keys">${ctx.t('keyVersions')}</h2>
${
  keys instanceof Error
    ? failure(ctx, keys)
    : html`<table aria-labelledby="keys"><thead><tr><th scope="col">${ctx.t('keyId')}</th><th scope="col">${ctx.t('state')}</th><th scope="col">${ctx.t('notAfter')}</th></tr></thead><tbody>
${keys.keys.map((k) => html`<tr><td>${k.keyId}${k.keyId === keys.current ? html` <strong>(${ctx.t('current')})</strong>` : ''}</td><td>${k.state}</td><td>${iso(Date.parse(k.notAfter))}</td></tr>`)}
</tbody></table>`
}
<h2 id="renewals">${ctx.t('renewals')}</h2>
<dl aria-labelledby="renewals">
${keydMetrics.map((m) => html`<dt>${ctx.t('crlNext')} (${basename(m.labels.crl ?? '')})</dt><dd>${iso(m.value * 1000)}</dd>`)}
<dt>${ctx.t('bundleSerial')}</dt><dd>${serial === undefined ? '—' : String(serial)}</dd>
<dt>${ctx.t('bundleNext')}</dt><dd>${iso(bundleExpiry === undefined ? undefined : bundleExpiry * 1000)}</dd>
</dl>`;
  },
};

// ---------------------------------------------------------------- peers

/** The directory over the gateway's cache, and the peers its configuration names; undefined when [peers] directory is not set. */
function openDirectory(ctx: PageContext): { dir: Directory; named: string[] } | undefined {
  if (!ctx.config.directoryConfig) return undefined;
  const config = loadDirectoryConfig(ctx.config.directoryConfig);
  return { dir: new Directory(directoryOptions(config)), named: Object.keys(config.peers) };
}

async function peersPage(ctx: PageContext, message?: Html): Promise<Html> {
  const gw = await metrics(ctx.config.ops.gateway, [
    'ssmax_gateway_peer_bundle_age_seconds',
    'ssmax_gateway_peer_bundle_expiry_timestamp_seconds',
    'ssmax_gateway_peer_bundle_last_error_timestamp_seconds',
    'ssmax_gateway_peer_bundle_usable',
  ]);
  let cached: PeerStatus[] = [];
  let named: string[] = [];
  let problem: Html | undefined;
  try {
    const opened = openDirectory(ctx);
    if (opened) {
      named = opened.named;
      try {
        cached = opened.dir.status();
      } finally {
        await opened.dir.close();
      }
    }
  } catch (err) {
    problem = failure(ctx, err);
  }
  const domains = [
    ...new Set(
      [...named, ...cached.map((c) => c.domain), ...gw.map((m) => m.labels.peer ?? '')].filter((d) => d !== '' && d !== ctx.config.domain),
    ),
  ].sort();
  const now = ctx.clock().getTime();
  const metric = (name: string, peer: string) =>
    gw.find((m) => m.name === `ssmax_gateway_peer_bundle_${name}` && m.labels.peer === peer)?.value;
  return html`${message}${problem}
${
  domains.length === 0
    ? html`<p>${ctx.t('noPeers')}</p>`
    : html`<table aria-label="${ctx.t('peers')}"><thead><tr><th scope="col">${ctx.t('peer')}</th><th scope="col">${ctx.t('bundleSerial')}</th><th scope="col">${ctx.t('age')}</th><th scope="col">${ctx.t('expiry')}</th><th scope="col">${ctx.t('usable')}</th><th scope="col">${ctx.t('lastError')}</th><th scope="col">${ctx.t('actions')}</th></tr></thead><tbody>
${domains.map((d) => {
  const c = cached.find((x) => x.domain === d);
  const age = metric('age_seconds', d) ?? (c?.lastFetch ? (now - c.lastFetch.getTime()) / 1000 : undefined);
  const expiry = metric('expiry_timestamp_seconds', d);
  const usable = metric('usable', d);
  const errAt = metric('last_error_timestamp_seconds', d);
  return html`<tr data-peer="${d}"><th scope="row">${d}</th><td class="num">${c?.serial === undefined ? '—' : String(c.serial)}</td><td class="num">${age === undefined ? '—' : duration(age)}</td>
<td>${iso(expiry !== undefined ? expiry * 1000 : c?.expires?.getTime())}</td><td>${usable === undefined ? (c ? c.state : '—') : ctx.t(usable === 1 ? 'yes' : 'no')}</td>
<td>${c?.lastError ? `${iso(c.lastErrorAt?.getTime())} ${c.lastError}` : errAt ? iso(errAt * 1000) : ctx.t('never')}</td>
<td>${ctx.config.directoryConfig ? html`<form class="inline" method="post" action="/peers/refresh">${csrfField(ctx)}<input type="hidden" name="domain" value="${d}"><button type="submit" class="secondary" aria-label="${ctx.t('refreshNow')}: ${d}">${ctx.t('refreshNow')}</button></form>` : '—'}</td></tr>`;
})}
</tbody></table>`
}`;
}

const peers: Page = {
  roles: ADMIN,
  get: (ctx) => peersPage(ctx),
  async post(ctx, action, form) {
    if (action !== 'refresh') throw new Error('unknown action');
    const domain = (form.get('domain') ?? '').toLowerCase();
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(domain)) return peersPage(ctx, notice('bad', ctx.t('failed', { why: 'not a domain name' })));
    try {
      await auditAction(ctx, 'console.peers.refresh', domain);
      const opened = openDirectory(ctx);
      if (!opened) throw new Error('[peers] directory is not configured');
      try {
        const entry = await opened.dir.refresh(domain);
        return await peersPage(ctx, notice('ok', `${ctx.t('refreshed')}: ${domain} (${ctx.t('bundleSerial')} ${entry.serial})`));
      } finally {
        await opened.dir.close();
      }
    } catch (err) {
      return peersPage(ctx, failure(ctx, err));
    }
  },
};

// ---------------------------------------------------------------- quarantine

const stores = new Map<string, QuarantineStore>();

function quarantineStore(ctx: PageContext): QuarantineStore | undefined {
  const q = ctx.config.quarantine;
  if (!q) return undefined;
  let s = stores.get(q.dir);
  if (!s) {
    s = new QuarantineStore(q.dir);
    stores.set(q.dir, s);
  }
  return s;
}

/** A quarantine id as the store makes them. */
const QUARANTINE_ID = /^q-[0-9a-z]+-[0-9a-f]{12}$/;

/** The most of a held message's plaintext a page shows. */
const MAX_SHOWN_BYTES = 64 * 1024;

async function quarantinePage(ctx: PageContext, message?: Html, content?: Html): Promise<Html> {
  const store = quarantineStore(ctx);
  if (!store) return html`${message}<p>${ctx.t('notConfigured')}</p>`;
  // one page, newest first, read from the entries' metadata (never their messages): ?before=ID for older ones
  const before = ctx.url.searchParams.get('before') ?? '';
  const { entries, next } = store.page(QUARANTINE_ID.test(before) ? { before } : {});
  const canShow = ctx.config.quarantine?.inspector !== undefined;
  return html`${message}<p>${ctx.t(canShow ? 'contentNoteInspector' : 'contentNote')}</p>
<p>${ctx.t('heldSummary', { count: store.heldCount(), bytes: store.heldBytes(), shown: entries.length })}</p>
${
  entries.length === 0
    ? html`<p>${ctx.t('empty')}</p>`
    : html`<table aria-label="${ctx.t('quarantine')}"><thead><tr><th scope="col">${ctx.t('id')}</th><th scope="col">${ctx.t('time')}</th><th scope="col">${ctx.t('direction')}</th><th scope="col">${ctx.t('sender')}</th><th scope="col">${ctx.t('recipients')}</th><th scope="col">${ctx.t('rule')}</th><th scope="col">${ctx.t('state')}</th><th scope="col">${ctx.t('actions')}</th></tr></thead><tbody>
${entries.map(
  (
    e,
  ) => html`<tr data-id="${e.id}"><td><code>${e.id}</code></td><td>${iso(e.time)}</td><td>${e.direction}</td><td>${e.from}</td><td>${e.rcpts.join(', ')}</td><td>${e.rule}</td><td>${shownState(e)}${releaseInterrupted(e) ? html`<br><small>${ctx.t('releaseInterrupted')}</small>` : ''}${releaseRecordGone(e) ? html`<br><small>${ctx.t('releaseRecordGone')}</small>` : releaseTaken(e) ? html`<br><small>${ctx.t('releaseTaken')}</small>` : ''}${e.note ? html`<br><small>${e.note}</small>` : ''}</td>
<td>${canShow ? html`<form class="inline" method="post" action="/quarantine/show">${csrfField(ctx)}<input type="hidden" name="id" value="${e.id}"><button type="submit" class="secondary" aria-label="${ctx.t('showContent')}: ${e.id}">${ctx.t('showContent')}</button></form> ` : ''}${shownState(e) === 'held' ? html`<form class="inline" method="post" action="/quarantine/release">${csrfField(ctx)}<input type="hidden" name="id" value="${e.id}"><button type="submit" aria-label="${ctx.t('release')}: ${e.id}">${ctx.t('release')}</button></form> ` : ''}<form class="inline" method="post" action="/quarantine/delete">${csrfField(ctx)}<input type="hidden" name="id" value="${e.id}"><button type="submit" class="danger" aria-label="${ctx.t('delete')}: ${e.id}">${ctx.t('delete')}</button></form></td></tr>`,
)}
</tbody></table>`
}
${
  next || before
    ? html`<nav aria-label="${ctx.t('quarantine')}">${before ? html`<a href="/quarantine">${ctx.t('newestPage')}</a> ` : ''}${next ? html`<a href="/quarantine?before=${next}" rel="next">${ctx.t('olderPage')}</a>` : ''}</nav>`
    : ''
}
${content}`;
}

const quarantine: Page = {
  roles: ADMIN,
  get: (ctx) => quarantinePage(ctx),
  async post(ctx, action, form) {
    const store = quarantineStore(ctx);
    const q = ctx.config.quarantine;
    const id = form.get('id') ?? '';
    if (!store || !q) return quarantinePage(ctx, notice('bad', ctx.t('notConfigured')));
    const entry = QUARANTINE_ID.test(id) ? store.summary(id) : undefined; // the message is read only to show it
    if (!entry) return quarantinePage(ctx, notice('bad', ctx.t('failed', { why: `no quarantined message "${id.slice(0, 80)}"` })));
    try {
      if (action === 'release') {
        await auditAction(ctx, 'console.quarantine.release', id);
        const password = q.passwordFile ? passwordOf(readFileSync(q.passwordFile, 'utf8')) : undefined;
        // in a release only while the gateway takes it; held again when it does not (src/mail/release.ts)
        let done: Awaited<ReturnType<typeof releaseHeld>>;
        try {
          done = await releaseHeld(store, id, RELEASE_HEADER, {
            host: q.smtpHost,
            port: q.smtpPort,
            user: q.user,
            password,
            leaseMs: q.releaseLeaseMs,
            tls: { ca: q.smtpCa, servername: q.smtpServername },
          });
        } catch (err) {
          if (err instanceof ReleaseStateError) return await quarantinePage(ctx, notice('bad', ctx.t('failed', { why: err.message })));
          if (!(err instanceof ReinjectError)) throw err;
          const text = err.held ? 'releaseFailed' : 'releaseFailedNotHeld';
          return await quarantinePage(ctx, notice('bad', ctx.t(text, { why: err.message.slice(0, 1000) })));
        }
        if (!done) throw new Error(`no quarantined message "${id}" (deleted meanwhile)`);
        if (done.refused.length > 0 || done.warning)
          return await quarantinePage(ctx, notice('bad', ctx.t('releasedPartly', { id, what: describeRelease(done).slice(0, 1000) })));
        return await quarantinePage(ctx, notice('ok', `${ctx.t('released')}: ${id} (${done.reply})`));
      }
      if (action === 'show') {
        const creds = q.inspector;
        if (!creds) throw new Error('[quarantine] inspector_cert is not configured: the content stays encrypted');
        await auditAction(ctx, 'console.quarantine.show', id);
        const k = ctx.config.keyd;
        const inspector = new KeydClient({
          url: k.url,
          ...(k.servername ? { servername: k.servername } : {}),
          ca: k.ca,
          cert: creds.cert,
          key: creds.key,
          timeoutMs: k.timeoutMs,
          maxSockets: 1,
        });
        let plaintext: Buffer;
        try {
          const held = store.get(id);
          if (!held) throw new Error(`no quarantined message "${id}" (deleted meanwhile)`);
          plaintext = await quarantinedPlaintext(held.message, ctx.config.domain, ctx.keyd, inspector);
        } finally {
          inspector.close();
        }
        const shown = plaintext.subarray(0, MAX_SHOWN_BYTES).toString('utf8');
        plaintext.fill(0);
        return await quarantinePage(
          ctx,
          undefined,
          html`<h2 id="content">${ctx.t('content')}: ${id}</h2><pre aria-labelledby="content" data-content="${id}">${shown}</pre>`,
        );
      }
      if (action === 'delete') {
        await auditAction(ctx, 'console.quarantine.delete', id);
        await store.delete(id);
        return await quarantinePage(ctx, notice('ok', `${ctx.t('deleted')}: ${id}`));
      }
      throw new Error('unknown action');
    } catch (err) {
      return quarantinePage(ctx, failure(ctx, err));
    }
  },
  async close() {
    const all = [...stores.values()];
    stores.clear();
    await Promise.all(all.map((s) => s.close()));
  },
};

// ---------------------------------------------------------------- users and lists

interface PublicUser {
  address: string;
  code?: string;
  status: string;
  revoked?: number;
  kind?: string;
  inspectionConsent?: boolean;
  encryptionKeyId?: string;
}

/** The reasons an administrator may give for a revocation (RFC 5280's, as keyd takes them). */
const REVOKE_REASONS = [
  'unspecified',
  'keyCompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
] as const;

/** Suspend or reinstate, and revoke (with a reason and a confirmation); nothing for a revoked user. */
function userActions(ctx: PageContext, u: PublicUser): Html {
  if (u.revoked !== undefined) return html``;
  const next = u.status === 'active' ? 'suspended' : 'active';
  return html`<form method="post" action="/users/status">${csrfField(ctx)}<input type="hidden" name="address" value="${u.address}"><input type="hidden" name="status" value="${next}"><button type="submit" class="${next === 'suspended' ? 'danger' : ''}">${ctx.t(next === 'suspended' ? 'suspend' : 'reinstate')}</button></form>
<h3 id="revoke">${ctx.t('revokeTitle')}</h3>
<form class="stack" method="post" action="/users/revoke" aria-labelledby="revoke">${csrfField(ctx)}<input type="hidden" name="address" value="${u.address}">
<p>${ctx.t('revokeNote')}</p>
<label for="v-reason">${ctx.t('revokeReason')}</label><select id="v-reason" name="reason">${REVOKE_REASONS.map((r) => html`<option value="${r}">${r}</option>`)}</select>
<label><input type="checkbox" name="confirm" value="1" required> ${ctx.t('revokeConfirm')}</label>
<div><button type="submit" class="danger">${ctx.t('revoke')}</button></div></form>`;
}

const ADDRESS = /^[^\s@<>"]{1,64}@[a-z0-9.-]{1,253}$/i;

async function usersPage(ctx: PageContext, message?: Html, address?: string): Promise<Html> {
  const lookup = address ?? ctx.url.searchParams.get('address') ?? '';
  const list = ctx.url.searchParams.get('list') ?? '';
  let user: Html | undefined;
  if (lookup !== '') {
    try {
      const u = await ctx.keyd.call<PublicUser>('GET', `/v1/registry/users/${encodeURIComponent(lookup)}`);
      const state = u.revoked !== undefined ? 'revoked' : u.status;
      user = html`<h2 id="user">${u.address}</h2><dl aria-labelledby="user"><dt>${ctx.t('status')}</dt><dd data-status="${state}">${u.revoked !== undefined ? ctx.t('revokedState') : u.status}</dd>${u.revoked !== undefined ? html`<dt>${ctx.t('revokedAt')}</dt><dd>${iso(u.revoked)}</dd>` : ''}<dt>${ctx.t('code')}</dt><dd>${u.code ?? '—'}</dd><dt>${ctx.t('kind')}</dt><dd>${u.kind ?? '—'}</dd></dl>
${userActions(ctx, u)}`;
    } catch (err) {
      user = failure(ctx, err);
    }
  }
  let members: Html | undefined;
  if (list !== '') {
    try {
      const l = await ctx.keyd.call<{ members?: string[] }>('GET', `/v1/lists/${encodeURIComponent(list)}`);
      members = html`<h2 id="members">${ctx.t('members')}: ${list}</h2><ul aria-labelledby="members">${(l.members ?? []).map((m) => html`<li>${m}</li>`)}</ul>`;
    } catch (err) {
      members = failure(ctx, err);
    }
  }
  return html`${message}
<form class="stack" method="get" action="/users" role="search"><label for="address">${ctx.t('address')}</label><input type="text" id="address" name="address" value="${lookup}" autocomplete="off"><div><button type="submit">${ctx.t('lookUp')}</button></div></form>
${user}
<h2 id="register">${ctx.t('register')}</h2>
<form class="stack" method="post" action="/users/register" aria-labelledby="register">${csrfField(ctx)}
<label for="r-address">${ctx.t('address')}</label><input type="text" id="r-address" name="address" required autocomplete="off">
<label for="r-code">${ctx.t('code')}</label><input type="text" id="r-code" name="code" required autocomplete="off">
<label for="r-ref">${ctx.t('identityRef')}</label><input type="text" id="r-ref" name="identityRef" autocomplete="off">
<label for="r-kind">${ctx.t('kind')}</label><select id="r-kind" name="kind"><option value="organisation">organisation</option><option value="individual">individual</option></select>
<div><button type="submit">${ctx.t('register')}</button></div></form>
<h2 id="lists">${ctx.t('members')}</h2>
<form class="stack" method="get" action="/users" aria-labelledby="lists"><label for="list">${ctx.t('listAddress')}</label><input type="text" id="list" name="list" value="${list}" autocomplete="off"><div><button type="submit" class="secondary">${ctx.t('showMembers')}</button></div></form>
${members}`;
}

const users: Page = {
  roles: ADMIN,
  get: (ctx) => usersPage(ctx),
  async post(ctx, action, form) {
    const address = (form.get('address') ?? '').trim();
    if (!ADDRESS.test(address)) return usersPage(ctx, notice('bad', ctx.t('failed', { why: 'not an address' })));
    try {
      if (action === 'status') {
        const status = form.get('status') === 'active' ? 'active' : 'suspended';
        const u = await ctx.keyd.call<PublicUser>('POST', `/v1/registry/users/${encodeURIComponent(address)}/status`, { status });
        return await usersPage(ctx, notice('ok', `${u.address}: ${u.status}`), address);
      }
      if (action === 'revoke') {
        // keyd checks the role and the reason, signs the CRL with the CA it holds, audits as the administrator via the console
        if (form.get('confirm') !== '1') return await usersPage(ctx, notice('bad', ctx.t('revokeUnconfirmed')), address);
        const reason = REVOKE_REASONS.find((r) => r === form.get('reason')) ?? 'unspecified';
        const r = await ctx.keyd.call<{ user: PublicUser; serials: string[]; crlNumber: string }>(
          'POST',
          `/v1/registry/users/${encodeURIComponent(address)}/revoke`,
          { reason },
        );
        return await usersPage(
          ctx,
          notice('ok', ctx.t('revokedDone', { address: r.user.address, number: r.crlNumber, serials: r.serials.join(', ') || '—' })),
          address,
        );
      }
      if (action === 'register') {
        const ref = (form.get('identityRef') ?? '').trim();
        const kind = form.get('kind') === 'individual' ? 'individual' : 'organisation';
        const u = await ctx.keyd.call<PublicUser>('POST', '/v1/registry/users', {
          address,
          code: (form.get('code') ?? '').trim(),
          kind,
          ...(ref ? { identityRef: ref } : {}),
        });
        return await usersPage(ctx, notice('ok', `${ctx.t('registered')}: ${u.address}`), address);
      }
      throw new Error('unknown action');
    } catch (err) {
      return usersPage(ctx, failure(ctx, err));
    }
  },
};

// ---------------------------------------------------------------- abuse

/** The tracking token of seal i=1 of this organisation in a pasted message's header block, if any. */
export function tokenOfMessage(raw: string, domain: string): string | undefined {
  const end = raw.search(/\r?\n\r?\n/);
  const head = (end < 0 ? raw : raw.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  for (const line of head.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== SEAL_HEADER.toLowerCase()) continue;
    try {
      const seal = parseSeal(line.slice(colon + 1).trim());
      if (seal.instance === 1 && seal.domain.toLowerCase() === domain.toLowerCase() && seal.trackingToken) return seal.trackingToken;
    } catch {
      // not a seal we can read: the next one
    }
  }
  return undefined;
}

/** The Message-ID of a pasted message's header block, if it has one (keyd discloses only with the one the token was minted for). */
export function messageIdOfMessage(raw: string): string | undefined {
  const end = raw.search(/\r?\n\r?\n/);
  const head = (end < 0 ? raw : raw.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  for (const line of head.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'message-id') return line.slice(colon + 1).trim() || undefined;
  }
  return undefined;
}

function resolutionView(ctx: PageContext, r: Resolution): Html {
  return html`<h2 id="resolved">${ctx.t('resolvedUser')}</h2><dl aria-labelledby="resolved" data-resolved="${r.user.address}">
<dt>${ctx.t('address')}</dt><dd>${r.user.address}</dd><dt>${ctx.t('code')}</dt><dd>${r.user.code}</dd><dt>${ctx.t('status')}</dt><dd>${r.user.status}</dd>
<dt>${ctx.t('minted')}</dt><dd>${r.time}</dd>
${r.submitter ? html`<dt>${ctx.t('submitter')}</dt><dd>${r.submitter.id} (${r.submitter.via})</dd>` : ''}
${r.identityRef !== undefined ? html`<dt>${ctx.t('identityRef')}</dt><dd data-identity-ref="1">${r.identityRef}</dd>` : ''}
</dl><pre>${describeResolution(r).join('\n')}</pre>`;
}

function abusePage(ctx: PageContext, message?: Html, result?: Html, input = ''): Html {
  const discloser = ctx.identity.role === 'disclosure';
  return html`${message}
<form class="stack" method="post" action="/abuse/resolve">${csrfField(ctx)}
<label for="report">${ctx.t('tokenOrMessage')}</label><textarea id="report" name="report" required spellcheck="false">${input}</textarea>
${discloser ? html`<label><input type="checkbox" name="disclose" value="1"> ${ctx.t('disclose')}</label>` : ''}
<div><button type="submit">${ctx.t('resolve')}</button></div></form>
${result}`;
}

const abuse: Page = {
  roles: ['admin', 'disclosure'],
  get: (ctx) => Promise.resolve(abusePage(ctx)),
  async post(ctx, action, form) {
    if (action !== 'resolve') throw new Error('unknown action');
    const input = form.get('report') ?? '';
    const disclose = form.get('disclose') === '1' && ctx.identity.role === 'disclosure';
    const options = { keyd: ctx.keyd as unknown as KeydClient, domain: ctx.config.domain, disclose };
    try {
      const trimmed = input.trim();
      let r: Resolution;
      if (/^[A-Za-z0-9_-]+$/.test(trimmed)) r = await resolveToken(trimmed, options);
      else if (/content-type:\s*multipart\/report/i.test(input))
        r = await resolveReport(Buffer.from(input.replace(/\r?\n/g, '\r\n'), 'utf8'), options);
      else {
        const token = tokenOfMessage(input, ctx.config.domain);
        if (!token) throw new Error(`no tracking token of ${ctx.config.domain} in the pasted text (seal i=1)`);
        const messageId = messageIdOfMessage(input);
        r = await resolveToken(token, { ...options, ...(messageId ? { messageId } : {}) });
      }
      return abusePage(ctx, undefined, resolutionView(ctx, r), input);
    } catch (err) {
      return abusePage(ctx, failure(ctx, err), undefined, input);
    }
  },
};

// ---------------------------------------------------------------- audit

interface AuditRecordView {
  seq: number;
  time: string;
  actor: string;
  role: string;
  op: string;
  target?: string;
  keyId?: string;
  result: string;
  reason?: string;
}

async function auditPage(ctx: PageContext, message?: Html): Promise<Html> {
  const before = Number(ctx.url.searchParams.get('before') ?? '0');
  const last = Number.isInteger(before) && before > 0 ? before : 0;
  let table: Html;
  let oldest = 0;
  try {
    const { records } = await ctx.keyd.call<{ records: AuditRecordView[] }>('GET', `/v1/audit/records/${last}`);
    oldest = records.at(-1)?.seq ?? 0;
    table = html`<table aria-label="${ctx.t('audit')}"><thead><tr><th scope="col">${ctx.t('seq')}</th><th scope="col">${ctx.t('time')}</th><th scope="col">${ctx.t('actor')}</th><th scope="col">${ctx.t('role')}</th><th scope="col">${ctx.t('op')}</th><th scope="col">${ctx.t('target')}</th><th scope="col">${ctx.t('result')}</th></tr></thead><tbody>
${records.map((r) => html`<tr><td class="num">${String(r.seq)}</td><td>${r.time}</td><td>${r.actor}</td><td>${r.role}</td><td>${r.op}</td><td>${r.target ?? r.keyId ?? ''}</td><td class="${r.result === 'ok' ? 'ok' : 'bad'}">${r.result}${r.reason ? ` — ${r.reason}` : ''}</td></tr>`)}
</tbody></table>`;
  } catch (err) {
    table = failure(ctx, err);
  }
  return html`${message}
<form method="post" action="/audit/verify">${csrfField(ctx)}<button type="submit">${ctx.t('verifyChain')}</button></form>
${table}
<p>${oldest > 1 ? html`<a href="/audit?before=${String(oldest - 1)}">${ctx.t('older')}</a> · ` : ''}<a href="/audit">${ctx.t('newest')}</a></p>`;
}

const audit: Page = {
  roles: ADMIN,
  get: (ctx) => auditPage(ctx),
  async post(ctx, action) {
    if (action !== 'verify') throw new Error('unknown action');
    try {
      const v = await ctx.keyd.call<{ ok: boolean; count?: number; seq?: number; reason?: string }>('GET', '/v1/audit/verify');
      return await auditPage(
        ctx,
        v.ok
          ? notice('ok', ctx.t('chainOk', { n: v.count ?? 0 }))
          : notice('bad', ctx.t('chainBad', { seq: v.seq ?? 0, reason: v.reason ?? '' })),
      );
    } catch (err) {
      return auditPage(ctx, failure(ctx, err));
    }
  },
};

export const PAGES = { overview, peers, quarantine, users, abuse, audit } as const;

const ORDER: (keyof typeof PAGES)[] = ['overview', 'peers', 'quarantine', 'users', 'abuse', 'audit'];

function head(lang: Lang, title: string): Html {
  return html`<!doctype html><html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title} — ${text(lang, 'title')}</title><link rel="stylesheet" href="/static/console.css"></head>`;
}

/** A whole page: header (who, language switch), the sections' navigation, the page's body. */
export function renderPage(ctx: PageContext, name: keyof typeof PAGES, body: Html): Html {
  const title = ctx.t(name);
  const back = name === 'overview' ? '/' : `/${name}`; // the page itself, never an action's path (a GET of it would be 404)
  return html`${head(ctx.lang, title)}<body>
<a class="skip" href="#main">${ctx.t('skip')}</a>
<header><strong>${ctx.t('title')} · ${ctx.config.domain}</strong><span class="who">${ctx.t('signedInAs')}: <span data-actor="1">${ctx.identity.name}</span> (${ctx.t('role')}: <span data-role="1">${ctx.identity.role}</span>)</span>
<nav class="langs" aria-label="${ctx.t('language')}"><a href="/lang?to=en&amp;back=${back}" lang="en" hreflang="en"${ctx.lang === 'en' ? new Html(' aria-current="true"') : ''}>English</a><a href="/lang?to=ja&amp;back=${back}" lang="ja" hreflang="ja"${ctx.lang === 'ja' ? new Html(' aria-current="true"') : ''}>日本語</a></nav></header>
<div class="layout"><nav class="sections" aria-label="${ctx.t('nav')}"><ul>
${ORDER.filter((p) => PAGES[p].roles.includes(ctx.identity.role)).map((p) => html`<li><a href="${p === 'overview' ? '/' : `/${p}`}"${p === name ? new Html(' aria-current="page"') : ''}>${ctx.t(p)}</a></li>`)}
</ul></nav>
<main id="main" tabindex="-1"><h1>${title}</h1>
${body}
</main></div></body></html>`;
}

/** A refusal or failure page (no navigation: the caller may not be an administrator at all). */
export function renderError(lang: Lang, status: number, title: string, message: string): Html {
  return html`${head(lang, title)}<body><main id="main"><h1>${title} (${String(status)})</h1><p class="notice bad" role="alert">${message}</p></main></body></html>`;
}
