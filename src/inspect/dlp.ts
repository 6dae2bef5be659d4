/**
 * Data-loss prevention rules for outbound mail (SSMAX §3.2), from
 * config/ssmax-dlp.ini: one section per rule with a `type`:
 *   keyword    words=a,b,…          (case-insensitive, NFKC)
 *   regex      pattern=…            (RE2 syntax, linear time: no catastrophic backtracking)
 *   card       min=1                (Luhn-valid payment card numbers)
 *   mynumber   min=1                (valid Japanese My Numbers)
 *   attachment content_types=…, extensions=.exe,…
 *   size       max_bytes=…          (any single attachment)
 * and an `action`: reject (5xx naming the rule, never the content),
 * quarantine (kept encrypted), tag (recorded in the seal only).
 */
import { ConfigError, type KnownNames } from '../config/ini';
import { RE2JS } from 're2js';
import { countCardNumbers, countMyNumbers } from './detectors';
import type { Extracted } from './extract';

export type DlpAction = 'reject' | 'quarantine' | 'tag';

export type DlpRule =
  | { readonly name: string; readonly action: DlpAction; readonly type: 'keyword'; readonly words: readonly string[] }
  | { readonly name: string; readonly action: DlpAction; readonly type: 'regex'; readonly pattern: RE2JS }
  | { readonly name: string; readonly action: DlpAction; readonly type: 'card' | 'mynumber'; readonly min: number }
  | {
      readonly name: string;
      readonly action: DlpAction;
      readonly type: 'attachment';
      readonly contentTypes: readonly string[];
      readonly extensions: readonly string[];
    }
  | { readonly name: string; readonly action: DlpAction; readonly type: 'size'; readonly maxBytes: number };

export interface DlpFinding {
  readonly rule: string;
  readonly action: DlpAction;
}

/** The one configuration error (src/config/ini.ts), under the name this module always exported. */
export const DlpConfigError = ConfigError;
export type DlpConfigError = ConfigError;

/** The keys of a rule of each type (besides type and action). */
const RULE_KEYS: Readonly<Record<string, readonly string[]>> = {
  keyword: ['words'],
  regex: ['pattern'],
  card: ['min'],
  mynumber: ['min'],
  attachment: ['content_types', 'extensions'],
  size: ['max_bytes'],
};

/**
 * What ssmax-dlp.ini may hold (src/config/ini.ts findUnknown): any rule name as
 * a section, with `type`, `action` and its type's keys (a rule of an unknown
 * type is refused by parseDlpRules, naming the type).
 */
export const DLP_KNOWN: KnownNames = {
  sections: new Map(),
  other: (_section, body) => {
    const keys = RULE_KEYS[String(body.type)];
    return keys ? ['type', 'action', ...keys] : 'any';
  },
};

const list = (v: unknown) =>
  String(v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function parseDlpRules(ini: Record<string, Record<string, unknown> | undefined>): DlpRule[] {
  const rules: DlpRule[] = [];
  for (const [name, sec] of Object.entries(ini)) {
    if (!sec || typeof sec !== 'object') continue;
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name))
      throw new DlpConfigError(`DLP rule "${name}": names are 1-32 lowercase letters, digits and "-"`);
    const action = String(sec.action ?? 'reject');
    if (action !== 'reject' && action !== 'quarantine' && action !== 'tag')
      throw new DlpConfigError(`DLP rule "${name}": action "${action}" is not reject, quarantine or tag`);
    const base = { name, action } as const;
    switch (sec.type) {
      case 'keyword': {
        const words = list(sec.words).map((w) => w.normalize('NFKC').toLowerCase());
        if (words.length === 0) throw new DlpConfigError(`DLP rule "${name}": words is empty`);
        rules.push({ ...base, type: 'keyword', words });
        break;
      }
      case 'regex': {
        let pattern: RE2JS;
        try {
          pattern = RE2JS.compile(String(sec.pattern ?? ''), RE2JS.CASE_INSENSITIVE);
        } catch (err) {
          throw new DlpConfigError(`DLP rule "${name}": pattern does not compile: ${(err as Error).message}`);
        }
        rules.push({ ...base, type: 'regex', pattern });
        break;
      }
      case 'card':
      case 'mynumber': {
        const min = Number(sec.min ?? 1);
        if (!Number.isInteger(min) || min < 1) throw new DlpConfigError(`DLP rule "${name}": min must be a positive integer`);
        rules.push({ ...base, type: sec.type, min });
        break;
      }
      case 'attachment':
        rules.push({
          ...base,
          type: 'attachment',
          contentTypes: list(sec.content_types).map((s) => s.toLowerCase()),
          extensions: list(sec.extensions).map((s) => s.toLowerCase()),
        });
        break;
      case 'size': {
        const maxBytes = Number(sec.max_bytes);
        if (!Number.isFinite(maxBytes) || maxBytes <= 0)
          throw new DlpConfigError(`DLP rule "${name}": max_bytes must be a positive number`);
        rules.push({ ...base, type: 'size', maxBytes });
        break;
      }
      default:
        throw new DlpConfigError(
          `DLP rule "${name}": type "${String(sec.type)}" is not keyword, regex, card, mynumber, attachment or size`,
        );
    }
  }
  return rules;
}

function matches(rule: DlpRule, content: Extracted, texts: readonly string[]): boolean {
  switch (rule.type) {
    case 'keyword':
      return texts.some((t) => rule.words.some((w) => t.includes(w)));
    case 'regex':
      return content.texts.some((t) => rule.pattern.matcher(t).find());
    case 'card':
      return content.texts.reduce((n, t) => n + countCardNumbers(t), 0) >= rule.min;
    case 'mynumber':
      return content.texts.reduce((n, t) => n + countMyNumbers(t), 0) >= rule.min;
    case 'attachment':
      return content.attachments.some(
        (a) => rule.contentTypes.includes(a.contentType) || rule.extensions.some((e) => a.filename.toLowerCase().endsWith(e)),
      );
    case 'size':
      return content.attachments.some((a) => a.size > rule.maxBytes);
  }
}

/** Every rule that matches, in configuration order. */
export function evaluateDlp(rules: readonly DlpRule[], content: Extracted): DlpFinding[] {
  const lowered = content.texts.map((t) => t.normalize('NFKC').toLowerCase());
  return rules.filter((r) => matches(r, content, lowered)).map((r) => ({ rule: r.name, action: r.action }));
}

/** The decision: the strictest action among the findings (reject > quarantine > tag), or pass. */
export function dlpDecision(findings: readonly DlpFinding[]): { action: DlpAction | 'pass'; rule?: string } {
  for (const action of ['reject', 'quarantine', 'tag'] as const) {
    const f = findings.find((x) => x.action === action);
    if (f) return { action, rule: f.rule };
  }
  return { action: 'pass' };
}
