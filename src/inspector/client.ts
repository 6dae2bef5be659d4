/**
 * The gateway's side of remote inspection ([inspection] mode=remote): an
 * `Inspector` that asks the inspector process over HTTPS with mutual TLS (the
 * gateway's own gateway-role certificate; the server must present an
 * inspector-role certificate for `servername` from the org CA). The message
 * travels as ciphertext: encrypted to this organisation (a plaintext
 * submission is encrypted to the org key first). Any fault — unreachable,
 * timeout, a refusal, an answer that does not parse — is a 4xx
 * (`inspectionUnavailable`); a message over the inspector's size limit is
 * 552; a message the inspector finds malformed gets the same 5xx the inline
 * step would give.
 */
import { type PeerCertificate, checkServerIdentity } from 'node:tls';
import { Agent } from 'node:https';
import { HttpsJsonError, requestJson } from '../net/https-json';
import { VERDICT_RESULTS, type Verdict } from '../chain/tags';
import type { Group } from '../crypto';
import type { Decision } from '../inspect/inspect';
import { roleOf } from '../pki/certificate';
import { parseCapsule } from '../envelope';
import { type InspectAnswer, type InspectRequest, type Inspector, encryptToOrg } from '../inspect/engine';
import type { KeydOps } from '../keyd/client-ops';
import { GatewayError, REPLIES, type ReplyName } from '../mail/replies';

export interface RemoteInspectorOptions {
  /** https://host:port of the inspector process. */
  readonly url: string;
  /** Host name in the inspector's server certificate (inspect.<domain>). */
  readonly servername: string;
  /** CAs the inspector's certificate chains to (PEM). */
  readonly ca: readonly string[];
  /** This gateway's gateway-role client certificate and key (PEM). */
  readonly cert: string;
  readonly key: string;
  readonly timeoutMs: number;
  /** For plaintext submissions: the org's current public key (keyd, gateway role). */
  readonly keyd: Pick<KeydOps, 'orgKeys'>;
  readonly group: Group;
  /** The gateway's log: a request the inspector refuses as malformed (400, 431) is a fault of ours, logged here. */
  readonly log?: (line: string) => void;
}

/** The inspector's wire path. */
export const INSPECT_PATH = '/v1/inspect';

const ACTIONS = ['pass', 'tag', 'reject', 'quarantine', 'tempfail'] as const;
/** Final refusals of the message that the inspector may hand back as they are (a limit or parse failure of the message is its own: docs/delivery.md). */
const PASSED_ON: readonly ReplyName[] = [
  'badFormat',
  'formatLimit',
  'badCapsule',
  'keyDestroyed',
  'releaseNotHonoured',
  'heldTooLarge',
  'tooLargeToScan',
  // what the message checks find in a decrypted message (message-checks.ts), as inline: the same 5xx, not 4xx for ever
  'bareCr',
  'headerLineBreak',
  'headerNul',
  'headerNotUtf8',
  'duplicateHeader',
];

function unavailable(detail: string): GatewayError {
  return new GatewayError('inspectionUnavailable', `inspector: ${detail}`);
}

/** The longest capsule text taken from an inspector's answer (a capsule's field value is a few hundred characters). */
const MAX_CAPSULE_TEXT = 4096;

/**
 * The answer, checked field by field: anything unexpected is a fault (4xx), never a pass. `released`: the request
 * carried a release marker; only then may a pass carry the held entry's moved capsule (`capsule`, engine.ts
 * InspectAnswer), which must read as a capsule.
 */
export function parseAnswer(json: unknown, direction: 'outbound' | 'inbound', released = false): InspectAnswer {
  const a = json as {
    verdict?: { name?: unknown; result?: unknown };
    decision?: Record<string, unknown>;
    quarantined?: unknown;
    capsule?: unknown;
  } | null;
  const d = a?.decision;
  if (!a || typeof a !== 'object' || !d || !ACTIONS.includes(d.action as never)) throw unavailable('answer without a valid decision');
  const text = (v: unknown, what: string) => {
    if (typeof v !== 'string' || v === '' || v.length > 300) throw unavailable(`answer without a valid ${what}`);
    return v;
  };
  let decision: Decision;
  if (d.action === 'pass') decision = { action: 'pass' };
  else if (d.action === 'tempfail') decision = { action: 'tempfail', reason: text(d.reason, 'reason') };
  else decision = { action: d.action as 'tag' | 'reject' | 'quarantine', rule: text(d.rule, 'rule') };
  let verdict: Verdict | undefined;
  if (a.verdict !== undefined) {
    const name = direction === 'outbound' ? 'dlp' : 'av';
    if (a.verdict?.name !== name || !VERDICT_RESULTS.includes(a.verdict.result as never))
      throw unavailable('answer with an invalid verdict');
    verdict = { name, result: a.verdict.result as Verdict['result'] };
  } else if (decision.action !== 'pass') {
    throw unavailable('a decision without a verdict');
  }
  const quarantined = decision.action === 'quarantine' ? text(a.quarantined, 'quarantine id') : undefined;
  if (quarantined !== undefined && !/^q-[0-9a-z]+-[0-9a-f]{12}$/.test(quarantined))
    throw unavailable('answer with an invalid quarantine id');
  let capsule: string | undefined;
  if (a.capsule !== undefined) {
    if (!released || decision.action !== 'pass') throw unavailable('a capsule in an answer to no release');
    if (typeof a.capsule !== 'string' || a.capsule.length > MAX_CAPSULE_TEXT) throw unavailable('answer with an invalid capsule');
    try {
      parseCapsule(a.capsule);
    } catch {
      throw unavailable('answer with an invalid capsule');
    }
    capsule = a.capsule;
  }
  return { decision, ...(verdict ? { verdict } : {}), ...(quarantined ? { quarantined } : {}), ...(capsule ? { capsule } : {}) };
}

/** The most bytes of an inspector's answer read: a decision, a verdict and a quarantine id are a few hundred. */
const INSPECTOR_ANSWER_MAX_BYTES = 64 * 1024;

/** The inspector's endpoint handing over a released plain submission's plaintext (server.ts). */
export const RELEASED_PLAINTEXT_PATH = '/v1/released-plaintext';

/**
 * The most bytes of the answer carrying a released plaintext (base64 in JSON): above the inspector's default
 * `[limits] max_body_bytes` (50 MiB), four thirds of it and some. A larger one is refused 4xx: the release is let go
 * and the entry shows held again (docs/inspection.md).
 */
const RELEASED_PLAINTEXT_MAX_BYTES = 96 * 1024 * 1024;

/** The request's envelope: what POST /v1/inspect is asked about (src/inspector/server.ts readEnvelope). */
export interface InspectEnvelope {
  readonly direction: 'outbound' | 'inbound';
  readonly from: string;
  readonly rcpts: readonly string[];
  readonly release?: string;
}

/** The body of POST /v1/inspect: the envelope as one line of JSON, a line feed, the message (docs/inspection.md). */
export function envelopeBody(envelope: InspectEnvelope, message: Buffer): Buffer {
  const line = JSON.stringify({
    direction: envelope.direction,
    from: envelope.from,
    rcpts: envelope.rcpts,
    ...(envelope.release !== undefined ? { release: envelope.release } : {}),
  });
  return Buffer.concat([Buffer.from(`${line}\n`, 'utf8'), message]);
}

export class RemoteInspector implements Inspector {
  private agent: Agent;
  private readonly base: URL;

  constructor(private readonly opts: RemoteInspectorOptions) {
    this.base = new URL(opts.url);
    this.agent = this.agentFor(opts.cert, opts.key);
  }

  /** A renewed client certificate: new requests use it; those under way finish on the old connections. */
  setCredentials(cert: string, key: string): void {
    const old = this.agent;
    this.agent = this.agentFor(cert, key);
    setTimeout(() => old.destroy(), 30000).unref();
  }

  private agentFor(cert: string, key: string): Agent {
    const opts = this.opts;
    return new Agent({
      keepAlive: true,
      maxSockets: 16,
      cert,
      key,
      ca: [...opts.ca],
      servername: opts.servername,
      // the name, and the inspector role: another service of the organisation cannot stand in for it
      checkServerIdentity: (_host: string, peer: PeerCertificate) =>
        checkServerIdentity(opts.servername, peer) ??
        (roleOf(new Uint8Array(peer.raw)) === 'inspector'
          ? undefined
          : new Error('the server certificate does not carry the inspector role')),
    });
  }

  async inspect(req: InspectRequest): Promise<InspectAnswer> {
    const body = req.capsule ? req.message : await encryptToOrg(this.opts.keyd, this.opts.group, req.message);
    const envelope = { direction: req.direction, from: req.from, rcpts: req.rcpts, ...(req.releaseId ? { release: req.releaseId } : {}) };
    // `wrapped`: encrypted here only to travel (held, the entry is released as the plaintext it was); in the query,
    // which an inspector of an earlier version ignores (an unknown field of the envelope it would refuse: 4xx for ever)
    // `arrival`: a retry of a message held already answers with its entry (engine.ts InspectRequest.arrival)
    const query = new URLSearchParams();
    if (!req.capsule) query.set('wrapped', '1');
    if (req.arrival !== undefined) query.set('arrival', req.arrival);
    const path = query.size > 0 ? `${INSPECT_PATH}?${query.toString()}` : INSPECT_PATH;
    const { status, json } = await this.post(path, envelopeBody(envelope, body), INSPECTOR_ANSWER_MAX_BYTES);
    if (status === 200) return parseAnswer(json, req.direction, req.releaseId !== undefined);
    throw this.refusal(status, json);
  }

  /**
   * The plaintext of a held plain submission whose release `value` names (engine.ts Inspector.releasedPlaintext): the
   * inspector opens its own entry (this gateway holds no inspector credentials) and hands the plaintext over, on this
   * mutual-TLS connection only; undefined for any other release. Read only: the release is honoured, once, by the
   * inspection step that follows. An inspector of an earlier version has no such endpoint (404): undefined, the
   * release goes on as before.
   */
  async releasedPlaintext(value: string): Promise<Buffer | undefined> {
    const body = Buffer.from(JSON.stringify({ release: value }), 'utf8');
    const { status, json } = await this.post(RELEASED_PLAINTEXT_PATH, body, RELEASED_PLAINTEXT_MAX_BYTES);
    if (status === 404 && (json as { error?: { code?: unknown } } | undefined)?.error?.code === 'not-found') return undefined;
    if (status !== 200) throw this.refusal(status, json);
    const message = (json as { message?: unknown } | null)?.message;
    if (message === undefined) return undefined;
    if (typeof message !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(message) || message.length % 4 !== 0)
      throw unavailable('answer with an invalid released message');
    const plaintext = Buffer.from(message, 'base64');
    if (plaintext.length === 0) throw unavailable('answer with an empty released message');
    return plaintext;
  }

  /** The GatewayError of an answer other than 200 (the same for every endpoint). */
  private refusal(status: number, json: unknown): GatewayError {
    const e = (json as { error?: { code?: unknown; message?: unknown; details?: { reply?: unknown } } } | undefined)?.error;
    const message = typeof e?.message === 'string' ? e.message.slice(0, 200) : `HTTP ${status}`;
    if (status === 400 || status === 431) {
      // the request itself refused: never the message's fault, and no retry will mend it by itself; logged for the operator, 4xx kept
      const detail = `the inspector refused this gateway's request (HTTP ${status} ${typeof e?.code === 'string' ? e.code : 'error'}: ${message}): a fault of the gateway or the inspector, not of the message`;
      this.opts.log?.(`ssmax inspection: ERROR: ${detail}; the sender was answered 4xx and will retry`);
      return unavailable(detail);
    }
    if (status === 413) return new GatewayError('tooLarge', "over the inspector's limit");
    const reply = e?.details?.reply;
    if (status === 422 && typeof reply === 'string' && PASSED_ON.includes(reply as ReplyName) && reply in REPLIES) {
      const base = REPLIES[reply as ReplyName].text;
      return new GatewayError(reply as ReplyName, message.startsWith(`${base}: `) ? message.slice(base.length + 2) : undefined);
    }
    if (status === 503 && reply === 'quarantineFull') {
      // the inspector's quarantine at its cap: the same temporary reply as inline (4.3.1), its text kept
      const base = REPLIES.quarantineFull.text;
      return new GatewayError('quarantineFull', message.startsWith(`${base}: `) ? message.slice(base.length + 2) : undefined);
    }
    return unavailable(`${typeof e?.code === 'string' ? e.code : 'error'}: ${message}`);
  }

  private async post(path: string, body: Buffer, maxBytes: number): Promise<{ status: number; json: unknown }> {
    const timeoutMs = this.opts.timeoutMs;
    try {
      return await requestJson({
        agent: this.agent,
        base: this.base,
        servername: this.opts.servername,
        method: 'POST',
        path,
        body,
        contentType: 'application/octet-stream',
        timeoutMs,
        maxBytes,
      });
    } catch (err) {
      if (!(err instanceof HttpsJsonError)) throw err;
      switch (err.failure) {
        case 'timeout':
          throw unavailable(`no answer within ${timeoutMs} ms`);
        case 'not-json':
          throw unavailable(`HTTP ${err.status} with a body that is not JSON`);
        case 'response-failed':
          throw unavailable(`response failed: ${err.detail}`);
        case 'unreachable':
          throw unavailable(`unreachable: ${err.detail}`);
        case 'too-large':
          throw unavailable(`an answer of more than ${err.detail} bytes`);
      }
    }
  }

  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }
}
