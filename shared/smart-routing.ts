/**
 * Smart routing: a fast, explainable heuristic classifier that picks the cheapest model tier likely to
 * answer a chat request well. No model call, no dependencies, no Node APIs (runs in Workers).
 *
 * How it works: the latest user message (plus a little conversation context) is tokenized once into
 * lowercase words; 1-3 word phrases are looked up in keyword tables. Each signal adds a fixed, visible
 * weight to a complexity score, so every decision can be explained from its signals. Scanned text is
 * capped (MAX_SCAN_CHARS) and every regex is linear, so cost stays at microseconds for typical prompts.
 */
import type { ChatMessage } from './openai-types';

export type Complexity = 'simple' | 'moderate' | 'complex';
export type Tier = 'flash-lite' | 'flash' | 'pro';
export type Domain = 'healthcare' | 'legal' | 'finance' | 'tech' | 'math';

export interface RouteDecision {
  /** simple→flash-lite, moderate→flash, complex→pro; images force at least 'flash'. */
  tier: Tier;
  complexity: Complexity;
  /** One of Domain ('healthcare', 'legal', 'finance', 'tech', 'math') or null. */
  domain: string | null;
  /** Any image_url content part in the messages. */
  needsVision: boolean;
  /** 0..1: how far the score is from the nearest tier boundary (0 = on a boundary). */
  confidence: number;
  /** The raw complexity score (before the high-stakes domain nudge). */
  score: number;
  /** The inputs behind the decision, short names. */
  signals: Record<string, number | boolean>;
}

/** Total characters scanned per request (latest user message first, then recent context). */
export const MAX_SCAN_CHARS = 20_000;

/** Score boundaries: below SIMPLE_MAX is simple, from COMPLEX_MIN on is complex. */
const SIMPLE_MAX = 1.6;
const COMPLEX_MIN = 4.2;

/** A latest message with fewer words than this is "trivially short": no high-stakes nudge. */
const TRIVIAL_WORDS = 9;

/** How many leading prose words count as "the instruction" when deciding on a text transformation. */
const HEAD_WORDS = 16;

// ---------------------------------------------------------------------------------------------
// Keyword tables. Entries are comma-separated; an entry may be a phrase of up to 3 words, written
// the way the tokenizer sees it (lowercase, hyphens and punctuation become spaces).
// ---------------------------------------------------------------------------------------------

type Cue = 'reason' | 'math' | 'proof' | 'task' | 'code' | 'transform';

/** Complexity cues with their weight. */
const CUE_TABLE: [Cue, number, string][] = [
  // Multi-step reasoning / open-ended analysis.
  ['reason', 1.2, 'step by step, trade offs, trade off, tradeoffs, tradeoff, analyze, analyse, analysis, compare, comparing, contrast, design, architecture, evaluate, explain why, pros and cons, in depth, comprehensive, detailed, walk me through, walk through, optimize, optimise, refactor, redesign, strategy, roadmap, recommendation, recommend, justify, justification, diagnose, implications, critique, assess, propose, failure modes, scalability, concurrency, research'],
  ['reason', 0.6, 'essay, report, white paper, causes of, caused, impact of, consequences'],
  // System-design scale words.
  ['reason', 0.6, 'at scale, scale, scaling, millions, distributed, real time, high availability, fault tolerant, multi region'],
  ['reason', 0.6, 'implement, debug, plan, why, risks, sensitive, sensitivity, consider, considering, discuss, evidence, derivation, migrate, migration, projections, estimates, interactions'],
  // Math content (the proof family is scored separately below).
  ['math', 1, 'integral, integrate, derivative, differentiate, theorem, lemma, eigenvalue, eigenvalues, eigenvector, matrix, equation, equations, differential, polynomial, converge, converges, convergence, limit of, probability, induction, irrational, prime, primes, logarithm, sqrt, square root, sum of, series, sample size, p value, variance, calculus, algebra, undecidable, modulo, integer, integers, closed form, fibonacci, factorial, generating functions, trigonometry, vector, vectors'],
  ['proof', 1, 'prove, proof, proofs, derive, proving'],
  // Concrete tasks that need more than a one-line lookup.
  ['task', 1, 'write, explain, summarize, summarise, create, draft, fix, solve, implement, describe, build, generate, review, how do i, how should i, what should i, how can i, itinerary, meal plan, outline, brainstorm, ideas, suggest, suggestions, list of, packing list, checklist'],
  // Transformations of text the user supplies: long input, but the work is routine.
  ['transform', 1, 'summarize, summarise, summary, tl dr, tldr, rewrite, paraphrase, proofread, translate, shorten, reformat'],
  // Code words that suggest real programming work even without a fenced block.
  ['code', 0.5, 'function, class, stack trace, traceback, exception, compile, regex, unit tests, script, query'],
];

/** Domain vocabularies: [domain, weight, entries]. Strong terms are unambiguous; weak ones need company. */
const DOMAIN_TABLE: [Domain, number, string][] = [
  ['healthcare', 2, 'symptom, symptoms, diagnosis, diagnosed, dosage, dose, doses, patient, patients, doctor, physician, medication, medications, prescribed, prescription, fever, diabetes, diabetic, a1c, insulin, metformin, warfarin, ibuprofen, naproxen, apixaban, lisinopril, amiodarone, inr, x ray, xray, fracture, fractured, ssri, ssris, snri, snris, hypertension, vaccine, vaccines, immune system, blood test, heart rate, side effects, deficiency, kidney disease, atrial fibrillation, arthritis, infection, antibiotic, antibiotics, clinical, chest pain, cholesterol, allergy, pregnancy, nausea, surgery, disorder, titration, nurse, hospital, medical'],
  ['healthcare', 1, 'pain, blood, kidney, liver, heart, enzyme, treatment, therapy, anxiety, depression, vitamin, bruising, sweating, shortness of breath, chest, wrist, recovery, disease, injury, health'],
  ['legal', 2, 'legal, legally, illegal, law, lawyer, attorney, attorneys, court, lawsuit, sue, contract, clause, clauses, lease, landlord, tenant, liability, indemnify, indemnification, nda, non compete, statute, statutes, case law, jurisdiction, plaintiff, defendant, habeas corpus, living trust, gdpr, ccpa, copyright, trademark, retaliation, enforceable, governing law, choice of law, security deposit, injunctive relief, sublet, workers compensation, consent'],
  ['legal', 1, 'agreement, rights, fired, employer, confidential, compliance, regulation, disclosures, obligations, negotiate, sign, claim'],
  ['finance', 2, 'finance, financial, invest, investing, investment, investor, portfolio, stocks, stock, bonds, etf, etfs, ira, roth, 401 k, 401k, retirement, mortgage, compound interest, interest rate, apr, credit card, tax, taxes, dividend, dividends, hedge, hedging, protective puts, collars, dcf, wacc, valuation, ebitda, cash flow, free cash flow, balance sheet, income statement, capex, isos, nsos, amt, stock options, revenue, net income, shareholders, equity, debt, loans, student loans, savings, salary, inflation, options strike'],
  ['finance', 1, 'interest, money, pay off, paying off, price, fees, income, loan, bank, financials, ratios, liquidity, solvency, profitability, quarterly, costs, budget'],
  ['tech', 2, 'code, coding, programming, bug, debug, api, database, sql, query, python, javascript, typescript, java, rust, golang, react, css, html, div, git, commit, npm, node js, nodejs, kubernetes, docker, pods, redis, postgres, postgresql, mysql, cassandra, http, tcp, udp, regex, bash, json, compiler, parser, tokenizer, algorithm, microservices, monolith, backend, frontend, server, servers, cache, lru, thread safe, lock free, memory ordering, ring buffer, machine learning, attention mechanism, transformers, transformer, rnn, rnns, bloom filter, schema, url shortener, rate limiter, api gateway, multi tenant, saas, message queue, data model, container, oomkilled, vitest, junit, unit tests, typescript interface, cli, borrow checker, vec, keyboard shortcut, source code, stack trace, software, mutex, semaphore, cpu, gpu, operating system, kernel, debounce, containers, devops, database index'],
  ['tech', 1, 'function, error, deployment, latency, architecture, redux, zustand, state management, script, files, terminal, branch, shortcut, mac, windows, linux, app, tenant isolation, queue, streaming, fan out, endpoint, service, services, mobile, web'],
  ['math', 2, 'math, prove, proof, theorem, lemma, integral, derivative, equation, equations, eigenvalues, eigenvalue, differential, polynomial, probability, statistics, statistical, p value, sample size, square root, sqrt, prime, primes, irrational, induction, calculus, algebra, geometry, converges, sequence, monotone, halting problem, incompleteness, euler s theorem, solve for, percent, integer, integers, fibonacci, closed form, generating functions, factorial, trigonometry, matrix, matrices, vector, vectors, logarithm, arithmetic'],
  ['math', 1, 'solve, formula, sum, times, odd numbers, real numbers, solutions, compute, calculate, die, dice, power analysis, alpha, equilibrium'],
];

/** Openers of short factual lookups, greetings and small rewrites: they pull the score down. */
const GREETINGS = new Set(['hi', 'hello', 'hey', 'hiya', 'yo', 'thanks', 'thank', 'thx', 'ty', 'ok', 'okay', 'cool', 'great', 'bye', 'goodbye', 'morning', 'good', 'evening', 'cheers', 'hola', 'bonjour', 'sup']);
const LOOKUP_OPENERS = [
  'what is', 'what s', 'what are', 'what does', 'what year', 'what time', 'who is', 'who was', 'who wrote', 'who invented', 'when did', 'when was', 'where is',
  'how many', 'how much', 'how do you say', 'how do you spell', 'how old', 'define', 'definition of', 'translate', 'is a', 'is it', 'is the', 'is there',
  'are there', 'does', 'do you', 'can you tell', 'name', 'give me a synonym', 'convert', 'spell', 'tell me a joke',
].map((s) => s.split(' '));
const LOOKUP_WORDS = new Set(['translate', 'translation', 'synonym', 'antonym', 'opposite', 'plural', 'spell', 'spelling', 'capital', 'define', 'meaning', 'stand', 'acronym']);

// ---------------------------------------------------------------------------------------------
// Table compilation (once, at module load).
// ---------------------------------------------------------------------------------------------

interface PhraseTable<K extends string> {
  /** phrase → (key → weight) */
  map: Map<string, Partial<Record<K, number>>>;
  /** Proper prefixes of multi-word phrases ("step", "step by"): only these are extended, so most tokens cost one lookup. */
  prefixes: Set<string>;
}

function compile<K extends string>(rows: [K, number, string][]): PhraseTable<K> {
  const map = new Map<string, Partial<Record<K, number>>>();
  const prefixes = new Set<string>();
  for (const [key, weight, list] of rows) {
    for (const raw of list.split(',')) {
      const phrase = raw.trim();
      if (!phrase) continue;
      const entry: Partial<Record<K, number>> = map.get(phrase) ?? {};
      // A phrase listed twice for the same key keeps its larger weight.
      entry[key] = Math.max(entry[key] ?? 0, weight);
      map.set(phrase, entry);
      const parts = phrase.split(' ');
      for (let i = 1; i < parts.length; i++) prefixes.add(parts.slice(0, i).join(' '));
    }
  }
  return { map, prefixes };
}

const CUES = compile(CUE_TABLE);
const DOMAINS = compile(DOMAIN_TABLE);
const DOMAIN_ORDER: Domain[] = ['healthcare', 'legal', 'finance', 'tech', 'math'];
const HIGH_STAKES: ReadonlySet<Domain> = new Set<Domain>(['healthcare', 'legal']);

/**
 * Scans tokens for table phrases of 1-3 words, longest match first (so "multi tenant" is tech and its
 * "tenant" does not also count as legal), summing weights per key into `into`, and into `head` for
 * phrases starting within the first `headWords` tokens. Each phrase counts once: a prompt repeating
 * "sql" ten times is not ten times more technical.
 */
function matchPhrases<K extends string>(
  tokens: string[],
  table: PhraseTable<K>,
  scale: number,
  into: Partial<Record<K, number>>,
  seen: Set<string>,
  head?: Partial<Record<K, number>>,
  headWords = 0,
): void {
  const n = tokens.length;
  for (let i = 0; i < n; ) {
    // Longest phrase starting here; phrases are only extended along known prefixes, so most tokens cost one lookup.
    let key = tokens[i]!;
    let hit = table.map.get(key);
    let used = 1;
    if (!hit && key.length > 4 && key.endsWith('s')) {
      // Cheap plural folding for single words: "symptoms" → "symptom" when only the singular is listed.
      const singular = key.slice(0, -1);
      hit = table.map.get(singular);
      if (hit) key = singular;
    }
    let phrase = tokens[i]!;
    for (let len = 2; len <= 3 && i + len <= n && table.prefixes.has(phrase); len++) {
      phrase += ' ' + tokens[i + len - 1]!;
      const longer = table.map.get(phrase);
      if (longer) {
        hit = longer;
        key = phrase;
        used = len;
      }
    }
    if (hit && !seen.has(key)) {
      seen.add(key);
      for (const k in hit) {
        const w = hit[k]! * scale;
        into[k] = (into[k] ?? 0) + w;
        if (head && i < headWords) head[k] = (head[k] ?? 0) + w;
      }
    }
    i += used;
  }
}

// ---------------------------------------------------------------------------------------------
// Text helpers.
// ---------------------------------------------------------------------------------------------

/** Linear tokenizer: lowercase alphanumeric runs ("what's" → "what", "s"; "trade-offs" → "trade", "offs"). */
const WORD_RE = /[a-z0-9]+/g;

function tokenize(lower: string): string[] {
  return lower.match(WORD_RE) ?? [];
}

function textOf(m: ChatMessage): string {
  const c = m.content;
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) return '';
  let out = '';
  for (const part of c) if (part && part.type === 'text' && typeof part.text === 'string') out += (out ? '\n' : '') + part.text;
  return out;
}

/** Length of a message's text without building it. */
function textLength(m: ChatMessage): number {
  const c = m.content;
  if (typeof c === 'string') return c.length;
  let n = 0;
  if (Array.isArray(c)) for (const part of c) if (part && part.type === 'text' && typeof part.text === 'string') n += part.text.length;
  return n;
}

function hasImage(m: ChatMessage): boolean {
  return Array.isArray(m.content) && m.content.some((p) => p && p.type === 'image_url');
}

function countOf(s: string, needle: string): number {
  let n = 0;
  for (let i = s.indexOf(needle); i !== -1; i = s.indexOf(needle, i + needle.length)) n++;
  return n;
}

const LIST_ITEM_RE = /^\s{0,8}(?:\d{1,2}[.)]|[-*\u2022])\s/;
// "at fn (file.js:12:5)" / "File "x.py", line 3" style frames.
const STACK_FRAME_RE = /^\s{0,12}(?:at\s\S.{0,300}:\d+|File\s"[^"]{1,300}",\sline\s\d+)/;
const CODE_SYMBOL_RE = /=>|===?|!==?|::|->|\+\+|&&|\|\||[{};]|\w\(\)/g;
const IDENT_RE = /\b[a-z]{2,}_[a-z0-9_]{2,}\b|\b[a-z]{2,}[A-Z][A-Za-z0-9]{2,}\b/g;
// Arithmetic and formulas: "3x^2", "12 * 4", "2x + 5 = 17", "x = 5", "15% of 80", "7 times 8", LaTeX commands, math symbols.
// A bare "-" is left out on purpose: dates and phone numbers are full of them.
const MATH_SYMBOL_RE = /\^|\\(?:int|frac|sum|sqrt|prod|lim|infty|partial)|[\u222b\u221a\u2211\u03c0\u2264\u2265\u00d7]|\d\s?[+*/=]\s?-?\d|\d[a-z]\s?[-+*/=]\s?\d|\b[a-z]\s?=\s?-?\d|\d%\sof\s\d|\d\stimes\s\d/g;
// Text handed over to work on: "...: <text>", quoted text, or a second line.
const SUPPLIED_TEXT_RE = /:\s|["\u201c\u2018]|\s'|\n/;
// "a 2000-word story", "in 500 words": an explicitly long answer.
const LONG_OUTPUT_RE = /\b\d{3,5}[- ]words?\b/;

/**
 * One pass over the lines: separates prose from fenced code and counts list items and stack frames.
 * Walks line boundaries with indexOf instead of split/join, so a wall of newlines stays cheap.
 */
function lineStats(text: string) {
  let listItems = 0;
  let stackFrames = 0;
  let codeLines = 0;
  let inFence = false;
  const hasFence = text.includes('```');
  const prose: string[] = [];
  for (let start = 0; start <= text.length; ) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (end - start >= 3) {
      const line = text.slice(start, end);
      if (hasFence && line.trimStart().startsWith('```')) inFence = !inFence;
      else {
        if (inFence) codeLines++;
        else {
          if (hasFence) prose.push(line);
          if (LIST_ITEM_RE.test(line)) listItems++;
        }
        if (STACK_FRAME_RE.test(line)) stackFrames++;
      }
    } else if (inFence) codeLines++;
    start = end + 1;
  }
  // Without fences the whole text is prose (no copy).
  return { prose: hasFence ? prose.join('\n') : text, listItems, stackFrames, codeLines };
}

function startsWithPhrase(tokens: string[], phrase: string[]): boolean {
  for (let i = 0; i < phrase.length; i++) if (tokens[i] !== phrase[i]) return false;
  return true;
}

const round = (x: number, digits = 2) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

// ---------------------------------------------------------------------------------------------
// The classifier.
// ---------------------------------------------------------------------------------------------

export function classifyRequest(messages: ChatMessage[]): RouteDecision {
  const list = Array.isArray(messages) ? messages : [];

  // The latest user message drives complexity; everything else is context.
  let latestIdx = -1;
  for (let i = list.length - 1; i >= 0; i--) {
    if (list[i]?.role === 'user') {
      latestIdx = i;
      break;
    }
  }
  if (latestIdx === -1) latestIdx = list.length - 1;

  let needsVision = false;
  let convChars = 0;
  let turns = 0;
  for (const m of list) {
    if (!m) continue;
    if (m.role === 'user') turns++;
    if (!needsVision && hasImage(m)) needsVision = true;
    convChars += textLength(m);
  }

  const latestMsg = latestIdx >= 0 ? list[latestIdx] : undefined;
  const latestFull = latestMsg ? textOf(latestMsg) : '';
  const latest = latestFull.length > MAX_SCAN_CHARS ? latestFull.slice(0, MAX_SCAN_CHARS) : latestFull;
  // Prose (outside code fences) carries the instructions; code is scored by its size instead, so a
  // pasted 40-line snippet does not read as a 400-word essay question.
  const { prose, listItems, stackFrames, codeLines } = lineStats(latest);
  const proseTokens = tokenize(prose.toLowerCase());
  const tokens = codeLines > 0 ? tokenize(latest.toLowerCase()) : proseTokens; // code words still tell the domain
  const words = proseTokens.length;

  // --- complexity cues --------------------------------------------------------------------
  const cues: Partial<Record<Cue, number>> = {};
  // The instruction usually leads ("Summarize the following: <pasted text>"), so cues in the head are kept apart.
  const head: Partial<Record<Cue, number>> = {};
  matchPhrases(proseTokens, CUES, 1, cues, new Set(), head, HEAD_WORDS);
  const codeBlocks = Math.floor(countOf(latest, '```') / 2);
  const codeTokens = Math.min(50, (latest.match(CODE_SYMBOL_RE)?.length ?? 0) + (latest.match(IDENT_RE)?.length ?? 0));
  const mathSymbols = Math.min(20, prose.match(MATH_SYMBOL_RE)?.length ?? 0); // prose only: code is full of ^ and =
  const questions = countOf(prose, '?');
  const mathCues = (cues.math ?? 0) + mathSymbols;
  // "Prove" only means a proof next to math ("prove to my landlord that I paid" is no proof).
  const proof = (cues.proof ?? 0) > 0 && mathCues > 0;
  // What the head asks for decides whether this is a routine transformation of supplied text, whatever
  // words the pasted text contains. It only counts when text is actually supplied (after a colon, in
  // quotes, on new lines): "Summarize the plot of Hamlet" is a knowledge task, "Summarize this: ..." is not.
  const transform = (head.transform ?? 0) > 0 && !head.reason && !head.proof && SUPPLIED_TEXT_RE.test(prose);
  const reasoning = transform ? 0 : (cues.reason ?? 0);
  const longOutput = LONG_OUTPUT_RE.test(prose);
  // Comma-separated requirements ("cover the data model, caching, sharding, and ...") mean more parts to get right.
  const commas = countOf(prose, ',');

  // Simple cues: a greeting-only message, or a short lookup/translation question (not a formula or code).
  const greeting = words > 0 && words <= 6 && GREETINGS.has(proseTokens[0]!) && codeBlocks === 0;
  const lookup =
    !greeting && words <= 16 && mathSymbols === 0 && codeBlocks === 0 &&
    (LOOKUP_OPENERS.some((p) => startsWithPhrase(proseTokens, p)) || proseTokens.some((t) => LOOKUP_WORDS.has(t)));

  // --- score: each term is small, bounded and named, so the total is explainable --------------
  // Summarize/rewrite/translate work scales with the text given, not with its difficulty: cap its length term.
  const lenScore = Math.min(transform ? 2 : 4, 1.6 * Math.log2(1 + words / 20)); // 10 words ≈ 0.9, 40 ≈ 2.5, 80 ≈ 3.7
  const contextScore = Math.min(0.6, Math.max(0, convChars - latest.length) / 4000) + Math.min(0.75, Math.max(0, turns - 1) * 0.25);
  const codeScore =
    (codeBlocks > 0 ? 1 : codeTokens >= 6 ? 0.5 : 0) + Math.min(1, codeLines / 20) + (stackFrames > 0 ? 0.75 : 0) + Math.min(0.5, cues.code ?? 0);
  // A mathematical proof needs the strongest model, however short; "prove to my landlord..." is no proof.
  const mathScore = Math.min(1.5, mathCues * 0.5) + (proof ? 3.5 : 0);
  const reasonScore = Math.min(3.5, reasoning);
  const questionScore = Math.min(1.5, Math.max(0, questions - 1) * 0.5);
  const listScore = listItems >= 3 ? Math.min(2, 1 + (listItems - 3) * 0.25) : 0;
  const requirementScore = transform ? 0 : Math.min(1, Math.max(0, commas - 2) * 0.2);
  const taskScore = transform ? 0.5 : (cues.task ?? 0) > 0 ? 1 : 0;
  const outputScore = longOutput ? 1 : 0;
  const simpleScore = greeting ? -2 : lookup ? -1 : 0;

  const score = round(
    lenScore + contextScore + codeScore + mathScore + reasonScore + questionScore + listScore + requirementScore + taskScore + outputScore + simpleScore,
  );

  // --- domain ------------------------------------------------------------------------------
  const domainScores: Partial<Record<Domain, number>> = {};
  const seen = new Set<string>();
  matchPhrases(tokens, DOMAINS, 1, domainScores, seen);
  // Recent context counts half, within what is left of the scan budget (most recent first).
  let budget = MAX_SCAN_CHARS - latest.length;
  for (let i = list.length - 1; i >= 0 && budget > 0; i--) {
    const m = list[i];
    if (!m || i === latestIdx) continue;
    const t = textOf(m);
    const chunk = t.length > budget ? t.slice(0, budget) : t;
    budget -= chunk.length;
    matchPhrases(tokenize(chunk.toLowerCase()), DOMAINS, 0.5, domainScores, seen);
  }
  // Code and formulas are domain evidence in their own right.
  if (codeBlocks > 0 || stackFrames > 0) domainScores.tech = (domainScores.tech ?? 0) + 2;
  else if (codeTokens >= 6) domainScores.tech = (domainScores.tech ?? 0) + 1;
  if (mathSymbols > 0 && codeBlocks === 0) domainScores.math = (domainScores.math ?? 0) + Math.min(3, 2 * mathSymbols);

  let domain: Domain | null = null;
  let best = 1.5; // one strong term, or two weak ones, is the bar for naming a domain
  for (const d of DOMAIN_ORDER) {
    const s = domainScores[d] ?? 0;
    if (s > best) {
      best = s;
      domain = d;
    }
  }

  // --- complexity, nudge, tier, confidence ---------------------------------------------------
  const base: Complexity = score < SIMPLE_MAX ? 'simple' : score < COMPLEX_MIN ? 'moderate' : 'complex';
  // High-stakes domains get one step more model unless the message is trivially short.
  const nudged = domain !== null && HIGH_STAKES.has(domain) && words >= TRIVIAL_WORDS && base !== 'complex';
  const complexity: Complexity = nudged ? (base === 'simple' ? 'moderate' : 'complex') : base;
  let tier: Tier = complexity === 'simple' ? 'flash-lite' : complexity === 'moderate' ? 'flash' : 'pro';
  if (needsVision && tier === 'flash-lite') tier = 'flash';

  const distance = Math.min(Math.abs(score - SIMPLE_MAX), Math.abs(score - COMPLEX_MIN));
  const confidence = round(1 - Math.exp(-distance)); // 0 on a boundary, ~0.63 one point away, ~0.86 two

  const signals: Record<string, number | boolean> = {
    chars: latestFull.length,
    words,
    convChars,
    turns,
    codeBlocks,
    codeLines,
    codeTokens,
    stackTrace: stackFrames > 0,
    mathCues: round(mathCues),
    proof,
    reasoningCues: round(reasoning),
    questions,
    listItems,
    commas,
    longOutput,
    transform,
    task: taskScore > 0,
    greeting,
    lookup,
    images: needsVision,
    nudged,
  };

  return { tier, complexity, domain, needsVision, confidence, score, signals };
}

// ---------------------------------------------------------------------------------------------
// Explanation.
// ---------------------------------------------------------------------------------------------

/** The signal tags worth showing, in a stable order, derived from the signals only. */
function tagsOf(s: Record<string, number | boolean>): string[] {
  const num = (k: string) => (typeof s[k] === 'number' ? (s[k] as number) : 0);
  const tags: string[] = [];
  if (s.greeting) tags.push('greeting');
  if (s.lookup) tags.push('lookup');
  if (num('codeBlocks') > 0 || num('codeTokens') >= 6) tags.push('code');
  if (s.stackTrace) tags.push('trace');
  if (s.proof) tags.push('proof');
  else if (num('mathCues') > 0) tags.push('math');
  if (num('reasoningCues') > 0) tags.push('multi_step');
  if (num('questions') > 1) tags.push('multi_q');
  if (num('listItems') >= 3) tags.push('list');
  if (num('commas') > 4) tags.push('many_parts');
  if (s.transform) tags.push('transform');
  else if (s.task) tags.push('task');
  if (s.longOutput || num('words') > 60) tags.push('long');
  else if (num('words') <= 8) tags.push('short');
  if (num('turns') > 2) tags.push('deep');
  if (s.images) tags.push('vision');
  if (s.nudged) tags.push('high_stakes');
  return tags;
}

/**
 * One short header-safe line (ASCII, no newlines, < 200 chars) explaining the decision, e.g.
 * "smart:complex score=7.5 conf=0.82 domain=tech signals=code,multi_step,long".
 */
export function explainDecision(d: RouteDecision): string {
  const tags = tagsOf(d.signals ?? {});
  const line = `smart:${d.complexity} tier=${d.tier} score=${round(d.score, 1)} conf=${round(d.confidence)} domain=${d.domain ?? 'none'} signals=${tags.join(',') || 'none'}`;
  // ASCII by construction; the filter guards against odd domain strings from hand-built decisions.
  const safe = line.replace(/[^\x20-\x7e]/g, '');
  if (safe.length < 200) return safe;
  const cut = safe.slice(0, 199);
  const lastComma = cut.lastIndexOf(',');
  return lastComma > 0 ? cut.slice(0, lastComma) : cut;
}
