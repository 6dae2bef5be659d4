/**
 * The inspection step of a gateway hop (SSMAX §3.2, §3.3, §3.5), on the
 * plaintext the gateway obtained in memory (blinded decryption with a verified
 * proof — src/keyd/client-ops.ts — or a plaintext submission): DLP rules outbound, ClamAV
 * inbound. It returns the verdict for this hop's seal and a decision; the
 * plaintext is never written anywhere. A user flagged as an individual
 * without consent is not inspected: verdict `no-consent`.
 */
import type { Verdict } from '../chain/tags';
import { GatewayError } from '../mail/replies';
import { ClamdError, type ClamdClient } from './clamd';
import { type DlpAction, type DlpRule, dlpDecision, evaluateDlp } from './dlp';
import { PdfReaderBusy } from './documents';
import { EXTRACT_DEFAULTS, type ExtractLimits, extractContent } from './extract';

export type Decision =
  | { readonly action: 'pass' }
  | { readonly action: 'tag'; readonly rule: string }
  | { readonly action: 'reject'; readonly rule: string }
  | { readonly action: 'quarantine'; readonly rule: string }
  /** The inspector is unavailable and the policy does not allow delivering unscanned mail. */
  | { readonly action: 'tempfail'; readonly reason: string };

export interface Inspection {
  readonly verdict: Verdict;
  readonly decision: Decision;
}

export interface DlpSettings {
  readonly rules: readonly DlpRule[];
  /** Bounds of text extraction (default EXTRACT_DEFAULTS). */
  readonly limits?: ExtractLimits;
  /** A part that could not be read in full (a bound reached, a damaged or encrypted document): this action, rule "unreadable" (default quarantine). */
  readonly onUnreadable?: DlpAction;
}

/** The rule name a decision carries when a part could not be read in full. */
export const UNREADABLE_RULE = 'unreadable';

export interface AvSettings {
  readonly client: ClamdClient;
  readonly onInfected: 'reject' | 'quarantine';
  /** `tempfail` (default, safe) or `tag` (deliver unscanned, verdict temperror: explicit opt-in). */
  readonly onUnavailable: 'tempfail' | 'tag';
  /** clamd's configuration file, read at start to check where it keeps temporary files (clamd-settings.ts). */
  readonly clamdConfig?: string;
  /**
   * The most bytes clamd scans in one stream (its StreamMaxLength, from `clamdConfig`): a longer message is not sent
   * to it (clamd would close the connection part way, often before its answer can be read).
   */
  readonly streamMaxBytes?: number;
  /** The operator's opt-ins ([av] allow_plaintext_on_disk, allow_plaintext_over_network: default false, refused). */
  readonly allowPlaintextOnDisk?: boolean;
  readonly allowPlaintextOverNetwork?: boolean;
  /** What the start check (src/inspect/clamd-settings.ts) found worth a warning in the start log, and what was opted into. */
  readonly startWarnings?: readonly string[];
}

export function notInspected(): Inspection {
  return { verdict: { name: 'dlp', result: 'no-consent' }, decision: { action: 'pass' } };
}

/** Outbound: DLP over the decoded text and attachments. */
export async function inspectOutbound(plaintext: Buffer, dlp: DlpSettings, consent = true): Promise<Inspection> {
  if (!consent) return { verdict: { name: 'dlp', result: 'no-consent' }, decision: { action: 'pass' } };
  let content;
  try {
    content = await extractContent(plaintext, dlp.limits ?? EXTRACT_DEFAULTS);
  } catch (err) {
    // the PDF reader busy with other messages for most of this one's time: no finding, inspected again at the retry
    if (err instanceof PdfReaderBusy)
      return { verdict: { name: 'dlp', result: 'temperror' }, decision: { action: 'tempfail', reason: err.message } };
    throw err;
  }
  const findings = evaluateDlp(dlp.rules, content);
  if (content.unreadable.length > 0) findings.push({ rule: UNREADABLE_RULE, action: dlp.onUnreadable ?? 'quarantine' });
  const d = dlpDecision(findings);
  if (d.action === 'pass') return { verdict: { name: 'dlp', result: 'pass' }, decision: { action: 'pass' } };
  return { verdict: { name: 'dlp', result: 'fail' }, decision: { action: d.action, rule: d.rule! } };
}

/** Inbound: ClamAV over the whole message (clamd decodes MIME and attachments itself). */
export async function inspectInbound(plaintext: Buffer, av: AvSettings, consent = true): Promise<Inspection> {
  if (!consent) return { verdict: { name: 'av', result: 'no-consent' }, decision: { action: 'pass' } };
  // longer than clamd takes (its StreamMaxLength, read at start): not sent, refused for good as clamd's own answer is below
  if (av.streamMaxBytes !== undefined && plaintext.length > av.streamMaxBytes)
    throw new GatewayError(
      'tooLargeToScan',
      `${plaintext.length} bytes are more than clamd scans in one stream (its StreamMaxLength, ${av.streamMaxBytes} bytes)`,
    );
  try {
    const r = await av.client.scan(plaintext);
    if (!r.infected) return { verdict: { name: 'av', result: 'pass' }, decision: { action: 'pass' } };
    return { verdict: { name: 'av', result: 'fail' }, decision: { action: av.onInfected, rule: `av:${r.signature}` } };
  } catch (err) {
    if (!(err instanceof ClamdError)) throw err;
    // longer than clamd takes: no retry can be scanned either, so a final refusal naming the limit, not 4xx for days;
    // even with on_unavailable=tag, since the size is the sender's to choose (padding would skip the scan)
    if (err.code === 'too-large') throw new GatewayError('tooLargeToScan', err.message);
    // waited in line past timeout_ms while clamd scanned others: for now, even with on_unavailable=tag (a sender who
    // floods the gateway must not have its own message pass unscanned)
    if (av.onUnavailable === 'tag' && err.code !== 'busy')
      return { verdict: { name: 'av', result: 'temperror' }, decision: { action: 'pass' } };
    return { verdict: { name: 'av', result: 'temperror' }, decision: { action: 'tempfail', reason: err.message } };
  }
}
