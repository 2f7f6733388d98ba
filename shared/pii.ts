/**
 * Privacy guard run on a prompt before it leaves for an LLM provider: PII redaction (emails, phone
 * numbers, payment cards, IBANs, US SSNs) and a URL allowlist. Pure TypeScript, no Node APIs.
 *
 * How redaction works: every detector reports spans on the ORIGINAL text and claims them in a mask,
 * in priority order (email, IBAN, card, SSN, phone); a later detector never touches claimed text, so
 * a card is never half-eaten as a phone. Things that have the shape of a card/IBAN/SSN but fail its
 * checksum are claimed without being redacted, so a phone rule can't nibble at them either.
 *
 * Linear time: every regex below is written so that it can't backtrack more than a constant amount
 * (no nested ambiguous quantifiers), numbers are tokenized into "runs" of digit groups once, and the
 * window search over a run is bounded per start group.
 */
import type { ChatMessage, ContentPart } from './openai-types';

export type PiiKind = 'email' | 'phone' | 'card' | 'iban' | 'ssn';
export interface RedactionResult {
  text: string;
  counts: Partial<Record<PiiKind, number>>;
}

const PLACEHOLDER: Record<PiiKind, string> = {
  email: '[EMAIL]',
  phone: '[PHONE]',
  card: '[CARD]',
  iban: '[IBAN]',
  ssn: '[SSN]',
};

interface Span {
  start: number;
  end: number;
  kind: PiiKind;
}

/** Spans found so far plus a per-char mask of claimed text (redacted or protected). */
class Claims {
  readonly spans: Span[] = [];
  private readonly mask: Uint8Array;
  constructor(length: number) {
    this.mask = new Uint8Array(length);
  }
  isFree(start: number, end: number): boolean {
    for (let i = start; i < end; i++) if (this.mask[i]) return false;
    return true;
  }
  /** kind null = protect only (checksum-failing look-alike): nothing later may match inside. */
  claim(start: number, end: number, kind: PiiKind | null): void {
    this.mask.fill(1, start, end);
    if (kind) this.spans.push({ start, end, kind });
  }
}

export function redactPii(text: string): RedactionResult {
  const claims = new Claims(text.length);
  findEmails(text, claims);
  findIbans(text, claims);
  findNumbers(text, claims);

  const spans = claims.spans.sort((a, b) => a.start - b.start);
  const counts: Partial<Record<PiiKind, number>> = {};
  if (spans.length === 0) return { text, counts };
  let out = '';
  let at = 0;
  for (const s of spans) {
    out += text.slice(at, s.start) + PLACEHOLDER[s.kind];
    at = s.end;
    counts[s.kind] = (counts[s.kind] ?? 0) + 1;
  }
  return { text: out + text.slice(at), counts };
}

// ---------------------------------------------------------------------------------------------
// Emails

// The lookbehind (one char) makes a local part start only at the beginning of a run of local-part
// characters; without it a long run with no "@" would be rescanned from every position (quadratic).
// The domain is labels joined by dots, each dot mandatory, so it can't backtrack; the TLD is checked
// in code rather than in the pattern for the same reason.
const EMAIL_RE = /(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g;
const TLD_RE = /^[A-Za-z]{2,63}$/;

function findEmails(text: string, claims: Claims): void {
  for (const m of text.matchAll(EMAIL_RE)) {
    const start = m.index;
    const local = m[0].indexOf('@');
    if (m[0][local - 1] === '.') continue; // "a.@b.com": not an address
    // Drop trailing labels until the last one looks like a TLD ("x@host.com.1" -> "x@host.com").
    let end = start + m[0].length;
    let domain = m[0].slice(local + 1);
    while (true) {
      const dot = domain.lastIndexOf('.');
      if (dot < 0) break;
      if (TLD_RE.test(domain.slice(dot + 1))) {
        claims.claim(start, end, 'email');
        break;
      }
      end -= domain.length - dot;
      domain = domain.slice(0, dot);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// IBANs

// Country code + check digits, then 4-char groups with an optional space (so both the compact and
// the printed "DE89 3704 ..." form), then a short tail. Fixed-size groups: bounded backtracking.
const IBAN_RE = /\b[A-Z]{2}\d{2}(?:[ \u00A0]?[A-Z0-9]{4}){2,7}(?:[ \u00A0]?[A-Z0-9]{1,3})?\b/g;

function findIbans(text: string, claims: Claims): void {
  const lookalikes: [number, number][] = [];
  const re = new RegExp(IBAN_RE.source, 'g');
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    const start = m.index;
    const cand = m[0];
    // The spaced form may have swallowed a trailing word ("... 7034 CODE"): try the whole match,
    // then shorter prefixes ending at a space.
    const ends = [cand.length];
    for (let i = cand.length - 1; i > 4; i--) if (cand[i] === ' ' || cand[i] === '\u00A0') ends.push(i);
    const end = ends.find((e) => isValidIban(cand.slice(0, e)));
    if (end !== undefined && claims.isFree(start, start + end)) {
      claims.claim(start, start + end, 'iban');
      re.lastIndex = start + end;
    } else {
      lookalikes.push([start, start + cand.length]);
      re.lastIndex = start + 1; // a real IBAN may start at a later word of this match
    }
  }
  for (const [s, e] of lookalikes) if (claims.isFree(s, e)) claims.claim(s, e, null);
}

/** ISO 13616: 15–34 chars, ISO 7064 mod-97 of (BBAN + country + check) must be 1. Spaces ignored. */
function isValidIban(s: string): boolean {
  const iban = s.replace(/[ \u00A0]/g, '');
  if (iban.length < 15 || iban.length > 34) return false;
  let rem = 0;
  for (let k = 0; k < iban.length; k++) {
    // Rearranged: BBAN first, then country code and check digits.
    const code = iban.charCodeAt((k + 4) % iban.length);
    // Digits add one decimal place, letters (A=10 … Z=35) two; reduce as we go to stay in int range.
    rem = code <= 57 ? (rem * 10 + (code - 48)) % 97 : (rem * 100 + (code - 55)) % 97;
  }
  return rem === 1;
}

// ---------------------------------------------------------------------------------------------
// Numbers: cards, SSNs, phones

/**
 * A run of digit groups joined by phone/card separators: single space, "-", ".", "/" (optionally
 * spaced), "(area)" groups, and a leading "+". Every separator is mandatory between two plain digit
 * groups, so the split of a run is unique and the pattern can't backtrack.
 */
const RUN_RE = /\+?(?:\(\d{1,5}\)[ \u00A0]?)?\d+(?:(?:[ \u00A0]?[-./][ \u00A0]?|[ \u00A0])(?:\(\d{1,5}\)[ \u00A0]?)?\d+)*/g;
const TOKEN_RE = /\+|\(\d+\)|\d+|[^\d()+]+/g;
const WORD_RE = /[\p{L}\p{N}_]/u;
const ALNUM_RE = /[\p{L}\p{N}]/u;
const DIGIT_RE = /\d/;

interface Group {
  digits: string;
  paren: boolean;
  /** Separator before this group, spaces squeezed: ' ', '-', '.', '/', or '' (after a paren). */
  sep: string;
  start: number;
  end: number;
}

interface Run {
  groups: Group[];
  /** The run starts with "+" (it belongs to groups[0]). */
  plus: boolean;
  /** The run is not glued to a word/number on that side (e.g. "ORD-2024…", "v1.2…", "3.14…"). */
  freeLeft: boolean;
  freeRight: boolean;
}

/** Result of a window test: a kind to redact, 'lookalike' to protect only, undefined for no match. */
type Verdict = PiiKind | 'lookalike' | undefined;

function findNumbers(text: string, claims: Claims): void {
  for (const m of text.matchAll(RUN_RE)) {
    const run = parseRun(text, m[0], m.index);
    // Per-run priority: a card wins over an SSN wins over a phone.
    scanWindows(run, claims, { maxGroups: 6, minDigits: 13, maxDigits: 19 }, cardVerdict);
    scanWindows(run, claims, { maxGroups: 3, minDigits: 9, maxDigits: 9 }, ssnVerdict);
    scanWindows(run, claims, { maxGroups: 8, minDigits: 9, maxDigits: 17 }, phoneVerdict);
  }
}

function parseRun(text: string, s: string, base: number): Run {
  const groups: Group[] = [];
  let plus = false;
  let sep = '';
  for (const t of s.matchAll(TOKEN_RE)) {
    const tok = t[0];
    const at = base + t.index;
    if (tok === '+') plus = true;
    else if (tok[0] === '(' || DIGIT_RE.test(tok[0]!)) {
      const paren = tok[0] === '(';
      groups.push({
        digits: paren ? tok.slice(1, -1) : tok,
        paren,
        sep: squeeze(sep),
        start: plus && groups.length === 0 ? base : at,
        end: at + tok.length,
      });
      sep = '';
    } else sep += tok;
  }
  const end = base + s.length;
  return { groups, plus, freeLeft: !gluedBefore(text, base), freeRight: !gluedAfter(text, end) };
}

function squeeze(sep: string): string {
  const t = sep.replace(/[ \u00A0]/g, '');
  return t === '' && sep !== '' ? ' ' : t;
}

function gluedBefore(text: string, i: number): boolean {
  const c = text[i - 1];
  if (c === undefined) return false;
  if (WORD_RE.test(c)) return true; // "v1.2.3", "ORD2024…", "0x…"
  const p = text[i - 2];
  if (p === undefined) return false;
  if (c === '.' || c === ',') return DIGIT_RE.test(p); // decimals, thousands
  if (c === '-' || c === '/') return ALNUM_RE.test(p); // "ORD-2024-000123", "ref/123…"
  return false;
}

function gluedAfter(text: string, i: number): boolean {
  const c = text[i];
  if (c === undefined) return false;
  if (WORD_RE.test(c)) return true;
  const n = text[i + 1];
  if (n === undefined) return false;
  if (c === '.' || c === ',' || c === '-' || c === '/') return ALNUM_RE.test(n);
  return false;
}

/**
 * Tries windows of consecutive groups, longest first, left to right. A window may start/end inside
 * a run only at a plain space ("Room 12 555-123-4567"), never at "-", "." or "/" (that would cut an
 * ID such as "ORD-2024-000123" apart). Work per start group is bounded by maxGroups.
 */
function scanWindows(
  run: Run,
  claims: Claims,
  limits: { maxGroups: number; minDigits: number; maxDigits: number },
  verdict: (w: Group[], plus: boolean) => Verdict,
): void {
  const g = run.groups;
  const lookalikes: [number, number][] = [];
  let i = 0;
  while (i < g.length) {
    let next = i + 1;
    if (i === 0 ? run.freeLeft : g[i]!.sep === ' ') {
      // Digit counts of windows i..j, so most windows are rejected before building anything.
      const last = Math.min(g.length, i + limits.maxGroups) - 1;
      const counts: number[] = [];
      for (let j = i, n = 0; j <= last; j++) counts.push((n += g[j]!.digits.length));
      for (let j = last; j >= i; j--) {
        const n = counts[j - i]!;
        if (n < limits.minDigits) break;
        if (n > limits.maxDigits) continue;
        if (!(j === g.length - 1 ? run.freeRight : g[j + 1]!.sep === ' ')) continue;
        const start = g[i]!.start;
        const end = g[j]!.end;
        if (!claims.isFree(start, end)) continue;
        const v = verdict(g.slice(i, j + 1), i === 0 && run.plus);
        if (v === 'lookalike') lookalikes.push([start, end]);
        else if (v) {
          claims.claim(start, end, v);
          next = j + 1;
          break;
        }
      }
    }
    i = next;
  }
  // Protect checksum-failing look-alikes only after the scan, so a failing window never hides a
  // valid one that overlaps it ("5678 4111 1111 1111 1111").
  for (const [s, e] of lookalikes) if (claims.isFree(s, e)) claims.claim(s, e, null);
}

const digitsOf = (w: Group[]): string => w.map((x) => x.digits).join('');
const digitCount = (w: Group[]): number => w.reduce((n, x) => n + x.digits.length, 0);

/**
 * Payment cards: 13–19 digits, compact or grouped the way cards are printed, with one consistent
 * " " or "-": in fours with a shorter tail (4-4-4-4, 4-4-4-4-3, 4-4-4-2) or Amex/Diners 4-6-5 / 4-6-4.
 * Luhn decides; a well-shaped number failing Luhn is protected from the phone rules.
 */
function cardVerdict(w: Group[], plus: boolean): Verdict {
  if (plus || w.some((x) => x.paren)) return undefined;
  const n = digitCount(w);
  if (n < 13 || n > 19) return undefined;
  if (w.length > 1) {
    const sep = w[1]!.sep;
    if ((sep !== ' ' && sep !== '-') || w.some((x, k) => k > 0 && x.sep !== sep)) return undefined;
    const lens = w.map((x) => x.digits.length);
    const inFours = lens.every((len, k) => (k < lens.length - 1 ? len === 4 : len >= 1 && len <= 4));
    const amexDiners = lens.length === 3 && lens[0] === 4 && lens[1] === 6 && (lens[2] === 4 || lens[2] === 5);
    if (!inFours && !amexDiners) return undefined;
  }
  const digits = digitsOf(w);
  // A valid ISBN-13 (978/979…) is a book; no card scheme issues 13-digit numbers starting with 97.
  if (n === 13 && /^97[89]/.test(digits) && isbn13Ok(digits)) return undefined;
  return luhnOk(digits) ? 'card' : 'lookalike';
}

function luhnOk(digits: string): boolean {
  let sum = 0;
  for (let i = digits.length - 1, dbl = false; i >= 0; i--, dbl = !dbl) {
    let d = digits.charCodeAt(i) - 48;
    if (dbl && (d *= 2) > 9) d -= 9;
    sum += d;
  }
  return sum % 10 === 0;
}

function isbn13Ok(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < 13; i++) sum += (digits.charCodeAt(i) - 48) * (i % 2 ? 3 : 1);
  return sum % 10 === 0;
}

/** US SSN ddd-dd-dddd; area 000, 666 and 9xx, group 00 and serial 0000 are never issued. */
function ssnVerdict(w: Group[], plus: boolean): Verdict {
  if (plus || w.length !== 3 || w.some((x) => x.paren)) return undefined;
  const [a, g, s] = w as [Group, Group, Group];
  if (a.digits.length !== 3 || g.digits.length !== 2 || s.digits.length !== 4) return undefined;
  if (g.sep !== '-' || s.sep !== '-') return undefined;
  const valid = a.digits !== '000' && a.digits !== '666' && a.digits[0] !== '9' && g.digits !== '00' && s.digits !== '0000';
  return valid ? 'ssn' : 'lookalike';
}

const PHONE_SEPS = new Set([' ', '-', '.']);

/**
 * Phone numbers need ≥ 9 digits and one of these shapes (bare digit strings without "+" are not
 * phones: too many IDs look like that):
 *  - international: "+CC …" (any grouping, 9–15 digits, E.164 "+14155552671" included) or "00CC …";
 *  - NANP: [1 ]AAA EEE NNNN with "(AAA)" allowed, area code 2–9;
 *  - European national: trunk "0" + area code as first group ("020 7946 0958", "06 12 34 56 78",
 *    "030/1234567", "(030) 1234567"), 9–13 digits, consistent separators, not date-like.
 */
function phoneVerdict(w: Group[], plus: boolean): Verdict {
  const n = digitCount(w);
  if (n < 9) return undefined;
  const first = w[0]!;

  if (plus) {
    const ok = n <= 15 && first.digits[0] !== '0' && (w.length === 1 || (!first.paren && first.digits.length <= 3));
    return ok ? 'phone' : undefined;
  }
  if (w.length >= 2 && !first.paren && /^00[1-9]\d{0,2}$/.test(first.digits)) {
    return n - 2 >= 9 && n - 2 <= 15 ? 'phone' : undefined;
  }
  if (isNanp(w)) return 'phone';
  if (isEuropeanNational(w, n)) return 'phone';
  return undefined;
}

function isNanp(w: Group[]): boolean {
  let r = w;
  if (w.length === 4) {
    const one = w[0]!;
    if (one.paren || one.digits !== '1' || !PHONE_SEPS.has(w[1]!.sep)) return false;
    r = w.slice(1);
  }
  if (r.length !== 3) return false;
  const [area, exch, line] = r as [Group, Group, Group];
  if (!/^[2-9]\d\d$/.test(area.digits) || exch.paren || line.paren) return false;
  if (exch.digits.length !== 3 || line.digits.length !== 4) return false;
  const sepOk = area.paren ? exch.sep === '' || exch.sep === ' ' || exch.sep === '-' : PHONE_SEPS.has(exch.sep);
  return sepOk && PHONE_SEPS.has(line.sep);
}

function isEuropeanNational(w: Group[], n: number): boolean {
  if (w.length < 2 || n > 13) return false;
  const first = w[0]!;
  if (!/^0[1-9]\d{0,3}$/.test(first.digits)) return false;
  for (let k = 1; k < w.length; k++) {
    const len = w[k]!.digits.length;
    if (w[k]!.paren || len < 2 || len > 8) return false;
  }
  // After the area code: " ", "-", "." or "/" (German "030/1234567"); after "(030)" nothing or a
  // space. Later separators all alike, and like the first unless that was "/" or the paren.
  const s1 = w[1]!.sep;
  if (first.paren ? s1 !== '' && s1 !== ' ' : !PHONE_SEPS.has(s1) && s1 !== '/') return false;
  const later = w.length > 2 ? w[2]!.sep : undefined;
  if (later !== undefined) {
    if (!PHONE_SEPS.has(later) || (later !== s1 && s1 !== '/' && !first.paren)) return false;
    for (let k = 3; k < w.length; k++) if (w[k]!.sep !== later) return false;
  }
  // "01.02.2024 …", "05/06/2024": day, month, 4-digit year.
  if (w.length >= 3 && first.digits.length <= 2 && w[1]!.digits.length <= 2 && w[2]!.digits.length === 4 && s1 === w[2]!.sep && s1 !== ' ') {
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// URLs

// Any http(s) URL, also glued to a preceding word ("xhttps://…") and with "\\" for "/" (browsers
// accept both), up to whitespace or a quote/angle bracket.
const URL_RE = /https?:[/\\]{2}[^\s<>"'`]+/gi;
const TRAILING_PUNCT = new Set(['.', ',', ';', ':', '!', '?', '*', "'", '"']);

export function filterUrls(text: string, allowedDomains: readonly string[]): { text: string; removed: number } {
  if (allowedDomains.length === 0) return { text, removed: 0 };
  return filterUrlsWith(text, normalizeAllowlist(allowedDomains));
}

function normalizeAllowlist(domains: readonly string[]): string[] {
  // Lenient about how entries are written: "Example.com", "*.example.com", ".example.com".
  return domains.map((d) => d.trim().toLowerCase().replace(/^\*?\.+/, '').replace(/\.+$/, '')).filter(Boolean);
}

function filterUrlsWith(text: string, allowed: readonly string[]): { text: string; removed: number } {
  let removed = 0;
  const out = text.replace(URL_RE, (raw) => {
    const url = trimUrl(raw);
    const host = hostOf(url);
    if (host && allowed.some((d) => host === d || host.endsWith('.' + d))) return raw;
    removed++;
    return '[URL REMOVED]' + raw.slice(url.length);
  });
  return { text: removed ? out : text, removed };
}

/** Sentence punctuation and unbalanced closing brackets after a URL are not part of it. */
function trimUrl(raw: string): string {
  const count = (ch: string): number => raw.split(ch).length - 1;
  const open: Record<string, number> = { ')': count('('), ']': count('['), '}': count('{') };
  const close: Record<string, number> = { ')': count(')'), ']': count(']'), '}': count('}') };
  let end = raw.length;
  while (end > 0) {
    const c = raw[end - 1]!;
    if (TRAILING_PUNCT.has(c)) end--;
    else if (c in close && close[c]! > open[c]!) {
      close[c]!--;
      end--;
    } else break;
  }
  return raw.slice(0, end);
}

/** The host as a browser would see it: after any "user:pass@", before ":port", lower case. */
function hostOf(url: string): string {
  const rest = url.replace(/^https?:[/\\]{2}/i, '');
  const authority = rest.split(/[/\\?#]/, 1)[0] ?? '';
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  const host = hostPort.startsWith('[') ? hostPort.slice(0, hostPort.indexOf(']') + 1) : (hostPort.split(':', 1)[0] ?? '');
  return host.toLowerCase().replace(/\.+$/, '');
}

// ---------------------------------------------------------------------------------------------
// Messages

/**
 * New messages with fn applied to string content and {type:'text'} parts. Everything else (image
 * parts, tool_calls, names) is carried over as is, shared with the input: nothing is mutated.
 */
function mapMessageText(messages: ChatMessage[], fn: (text: string) => string): ChatMessage[] {
  return messages.map((m) => {
    if (typeof m.content === 'string') return { ...m, content: fn(m.content) };
    if (Array.isArray(m.content)) {
      const content = m.content.map((p): ContentPart => (p.type === 'text' && typeof p.text === 'string' ? { ...p, text: fn(p.text) } : p));
      return { ...m, content };
    }
    return { ...m };
  });
}

export function redactMessages(messages: ChatMessage[]): { messages: ChatMessage[]; counts: Partial<Record<PiiKind, number>> } {
  const counts: Partial<Record<PiiKind, number>> = {};
  const out = mapMessageText(messages, (text) => {
    const r = redactPii(text);
    for (const [k, v] of Object.entries(r.counts) as [PiiKind, number][]) counts[k] = (counts[k] ?? 0) + v;
    return r.text;
  });
  return { messages: out, counts };
}

export function filterMessageUrls(messages: ChatMessage[], allowedDomains: readonly string[]): { messages: ChatMessage[]; removed: number } {
  if (allowedDomains.length === 0) return { messages: mapMessageText(messages, (t) => t), removed: 0 };
  const allowed = normalizeAllowlist(allowedDomains);
  let removed = 0;
  const out = mapMessageText(messages, (text) => {
    const r = filterUrlsWith(text, allowed);
    removed += r.removed;
    return r.text;
  });
  return { messages: out, removed };
}
