/**
 * Feature flags: one evaluation for the proxy, the admin API, OFREP and the dashboard.
 *
 * A flag in a deployment's `features` is a boolean, or
 * `{enabled, rolloutPercentage?, stickiness?, groupId?, cohorts?, constraints?, variants?}`.
 * Order: the master kill switch; env overrides (FEATURE_FLAG_<NAME>_ENABLED / _ROLLOUT, seed 003);
 * `enabled`; cohorts (internal → qa → ga, seed 004 §1); constraints; the sticky rollout bucket
 * (Unleash-compatible: murmurhash3_x86_32 of "<groupId>:<stickyId>", seed 0, % 100 + 1, enabled iff
 * rollout > 0 && bucket <= rollout, so raising the percentage never drops a user); then variants.
 * Time and randomness are injected.
 */
export interface FlagConstraint {
  contextName: string;
  operator: string;
  values?: string[];
  value?: string;
  inverted?: boolean;
  caseInsensitive?: boolean;
}

export interface FlagVariant {
  name: string;
  weight: number;
  payload?: { type: string; value: string };
  stickiness?: string;
  /** Context values that always get this variant (say, userId 42 for a demo). */
  overrides?: { contextName: string; values: string[] }[];
}

export interface FlagConfig {
  enabled: boolean;
  rolloutPercentage?: number;
  /** `default` (userId, then sessionId, then random), `userId`, `sessionId`, `random`, or a context property. */
  stickiness?: string;
  groupId?: string;
  /** Cohorts that get the flag (the caller's `cohort` attribute); absent means everyone. */
  cohorts?: string[];
  constraints?: FlagConstraint[];
  variants?: FlagVariant[];
}

export interface FlagContext {
  userId?: string;
  sessionId?: string;
  /** Attributes a secret-key caller asserted (cohort, plan, ...), and the OFREP context. */
  properties?: Record<string, string>;
  /** ISO time; defaults to now. */
  currentTime?: string;
}

export type FlagReason = 'STATIC' | 'DISABLED' | 'KILL_SWITCH' | 'ENV_OVERRIDE' | 'TARGETING_MATCH' | 'SPLIT' | 'DEFAULT';

export interface FlagResult {
  enabled: boolean;
  reason: FlagReason;
  variant?: string;
  payload?: { type: string; value: string };
}

export interface EvalOptions {
  /** The global kill switch: every flag evaluates off. */
  killSwitch?: boolean;
  env?: Record<string, unknown>;
  random?: () => number;
  now?: () => number;
}

// --- murmurhash3_x86_32 over UTF-8 bytes (what Unleash's clients use) --------------------------
export function murmur3(key: string, seed = 0): number {
  const data = new TextEncoder().encode(key);
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = data.length >> 2;
  for (let i = 0; i < blocks; i++) {
    let k = data[i * 4]! | (data[i * 4 + 1]! << 8) | (data[i * 4 + 2]! << 16) | (data[i * 4 + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  const rest = data.length & 3;
  if (rest) {
    let k = 0;
    if (rest === 3) k ^= data[tail + 2]! << 16;
    if (rest >= 2) k ^= data[tail + 1]! << 8;
    k ^= data[tail]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= data.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Unleash's normalizedValue: 1..normalizer. */
export const bucketOf = (id: string, groupId: string, normalizer = 100, seed = 0) => (murmur3(`${groupId}:${id}`, seed) % normalizer) + 1;
const VARIANT_SEED = 86028157;

function stickyId(stickiness: string, ctx: FlagContext, random: () => number): string | null {
  switch (stickiness) {
    case 'default':
      return ctx.userId ?? ctx.sessionId ?? String(Math.round(random() * 10_000) + 1);
    case 'userId':
      return ctx.userId ?? null;
    case 'sessionId':
      return ctx.sessionId ?? null;
    case 'random':
      return String(Math.round(random() * 10_000) + 1);
    default:
      return ctx.properties?.[stickiness] ?? null;
  }
}

// --- constraints: operators through one table; unknown ones are false --------------------------
const semver = (v: string) => {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(v.trim());
  return m ? { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4]?.split('.') ?? [] } : null;
};
function compareSemver(a: string, b: string): number | null {
  const x = semver(a);
  const y = semver(b);
  if (!x || !y) return null;
  for (let i = 0; i < 3; i++) if (x.core[i] !== y.core[i]) return x.core[i]! - y.core[i]!;
  if (!x.pre.length || !y.pre.length) return (y.pre.length ? 1 : 0) - (x.pre.length ? 1 : 0);
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn && Number(p) !== Number(q)) return Number(p) - Number(q);
    if (pn !== qn) return pn ? -1 : 1;
    if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}
const num = (v: string | undefined) => (v === undefined || v.trim() === '' ? NaN : Number(v));

type Operator = (value: string | undefined, c: FlagConstraint, ctx: FlagContext) => boolean;
const str = (fn: (v: string, target: string) => boolean): Operator => (value, c) => {
  if (value === undefined) return false;
  const v = c.caseInsensitive ? value.toLowerCase() : value;
  return (c.values ?? []).some((t) => fn(v, c.caseInsensitive ? t.toLowerCase() : t));
};
const numeric = (fn: (a: number, b: number) => boolean): Operator => (value, c) => {
  const a = num(value);
  const b = num(c.value);
  return !Number.isNaN(a) && !Number.isNaN(b) && fn(a, b);
};
const date = (fn: (a: number, b: number) => boolean): Operator => (value, c) => {
  const a = Date.parse(value ?? '');
  const b = Date.parse(c.value ?? '');
  return !Number.isNaN(a) && !Number.isNaN(b) && fn(a, b);
};
const sem = (fn: (cmp: number) => boolean): Operator => (value, c) => {
  const cmp = value === undefined || c.value === undefined ? null : compareSemver(value, c.value);
  return cmp !== null && fn(cmp);
};

const OPERATORS = new Map<string, Operator>([
  ['IN', (v, c) => v !== undefined && (c.values ?? []).includes(v)],
  ['NOT_IN', (v, c) => v === undefined || !(c.values ?? []).includes(v)],
  ['STR_CONTAINS', str((v, t) => v.includes(t))],
  ['STR_STARTS_WITH', str((v, t) => v.startsWith(t))],
  ['STR_ENDS_WITH', str((v, t) => v.endsWith(t))],
  ['NUM_EQ', numeric((a, b) => a === b)],
  ['NUM_GT', numeric((a, b) => a > b)],
  ['NUM_GTE', numeric((a, b) => a >= b)],
  ['NUM_LT', numeric((a, b) => a < b)],
  ['NUM_LTE', numeric((a, b) => a <= b)],
  ['DATE_AFTER', date((a, b) => a > b)],
  ['DATE_BEFORE', date((a, b) => a < b)],
  ['SEMVER_EQ', sem((c) => c === 0)],
  ['SEMVER_GT', sem((c) => c > 0)],
  ['SEMVER_LT', sem((c) => c < 0)],
  ['SEMVER_GTE', sem((c) => c >= 0)],
  ['SEMVER_LTE', sem((c) => c <= 0)],
]);

function contextValue(name: string, ctx: FlagContext, now: () => number): string | undefined {
  if (name === 'userId') return ctx.userId;
  if (name === 'sessionId') return ctx.sessionId;
  if (name === 'currentTime') return ctx.currentTime ?? new Date(now()).toISOString();
  return ctx.properties?.[name];
}

export function constraintHolds(c: FlagConstraint, ctx: FlagContext, now: () => number = Date.now): boolean {
  const op = OPERATORS.get(c.operator);
  if (!op) return false;
  const result = op(contextValue(c.contextName, ctx, now), c, ctx);
  return c.inverted ? !result : result;
}

const envName = (flag: string) => flag.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[^A-Za-z0-9]/g, '_').toUpperCase();

/** Normalizes a stored flag value; anything that is neither a boolean nor an object with `enabled` is off. */
export function flagConfig(value: unknown): FlagConfig | boolean {
  if (typeof value === 'boolean') return value;
  if (value && typeof value === 'object' && typeof (value as { enabled?: unknown }).enabled === 'boolean') return value as FlagConfig;
  return false;
}

export function evaluateFlag(name: string, stored: unknown, ctx: FlagContext = {}, opts: EvalOptions = {}): FlagResult {
  const random = opts.random ?? Math.random;
  const now = opts.now ?? Date.now;
  if (opts.killSwitch) return { enabled: false, reason: 'KILL_SWITCH' };
  const env = opts.env ?? {};
  const n = envName(name);
  const envEnabled = env[`FEATURE_FLAG_${n}_ENABLED`];
  const envRollout = env[`FEATURE_FLAG_${n}_ROLLOUT`];
  let flag = flagConfig(stored);
  let reason: FlagReason | null = null;
  if (typeof envEnabled === 'string' && /^(true|false)$/i.test(envEnabled)) {
    flag = typeof flag === 'boolean' ? { enabled: envEnabled.toLowerCase() === 'true' } : { ...flag, enabled: envEnabled.toLowerCase() === 'true' };
    reason = 'ENV_OVERRIDE';
  }
  if (typeof envRollout === 'string' && envRollout !== '' && Number(envRollout) >= 0 && Number(envRollout) <= 100) {
    flag = typeof flag === 'boolean' ? { enabled: flag, rolloutPercentage: Number(envRollout) } : { ...flag, rolloutPercentage: Number(envRollout) };
    reason = 'ENV_OVERRIDE';
  }
  if (typeof flag === 'boolean') return { enabled: flag, reason: reason ?? (flag ? 'STATIC' : 'DISABLED') };
  if (!flag.enabled) return { enabled: false, reason: reason ?? 'DISABLED' };

  let targeted = false;
  if (flag.cohorts?.length) {
    const cohort = ctx.properties?.cohort;
    if (!cohort || !flag.cohorts.includes(cohort)) return { enabled: false, reason: reason ?? 'DEFAULT' };
    targeted = true;
  }
  if (flag.constraints?.length) {
    if (!flag.constraints.every((c) => constraintHolds(c, ctx, now))) return { enabled: false, reason: reason ?? 'DEFAULT' };
    targeted = true;
  }
  const rollout = flag.rolloutPercentage ?? 100;
  const stickiness = flag.stickiness ?? 'default';
  // A rollout sticky on a named id needs that id, even at 100 % (as Unleash's gradual strategies).
  if (stickiness !== 'default' && stickiness !== 'random' && stickyId(stickiness, ctx, random) === null) {
    return { enabled: false, reason: reason ?? 'DEFAULT' };
  }
  let split = false;
  if (rollout < 100) {
    const id = stickyId(stickiness, ctx, random);
    if (id === null || !(rollout > 0 && bucketOf(id, flag.groupId ?? name) <= rollout)) return { enabled: false, reason: reason ?? 'DEFAULT' };
    split = true;
  }
  const result: FlagResult = { enabled: true, reason: reason ?? (split ? 'SPLIT' : targeted ? 'TARGETING_MATCH' : 'STATIC') };
  const variants = (flag.variants ?? []).filter((v) => v.weight > 0);
  if (variants.length) {
    const total = variants.reduce((s, v) => s + v.weight, 0);
    const id = stickyId(variants[0]!.stickiness ?? flag.stickiness ?? 'default', ctx, random) ?? String(Math.round(random() * 10_000));
    const target = bucketOf(id, flag.groupId ?? name, total, VARIANT_SEED);
    let acc = 0;
    const overridden = variants.find((v) => v.overrides?.some((o) => o.values.includes(contextValue(o.contextName, ctx, now) ?? '\u0000')));
    const chosen = overridden ?? variants.find((v) => (acc += v.weight) >= target) ?? variants.at(-1)!;
    result.variant = chosen.name;
    if (chosen.payload) result.payload = chosen.payload;
  }
  return result;
}

/** Every flag of a deployment, evaluated for one context. */
export function evaluateAll(features: Record<string, unknown>, ctx: FlagContext = {}, opts: EvalOptions = {}): Record<string, FlagResult> {
  return Object.fromEntries(Object.keys(features).map((name) => [name, evaluateFlag(name, features[name], ctx, opts)]));
}

/** Seed 004 §10.6 presets. */
export const PRESETS: Record<string, Record<string, boolean>> = {
  minimal: { smartRouting: false, ragEnabled: false, splitScreenEnabled: false, multiModelComparison: false, visionEnabled: false },
  standard: { smartRouting: true, ragEnabled: true, visionEnabled: true },
  premium: { smartRouting: true, ragEnabled: true, visionEnabled: true, multiModelComparison: true, streaming: true, knowledgeBaseEnabled: true, mcpEnabled: true, splitScreenEnabled: true, feedbackEnabled: true, analyticsEnabled: true },
  healthcare: { smartRouting: true, piiRedaction: true, visionEnabled: true, medicalImagingEnabled: true, ragEnabled: true, knowledgeBaseEnabled: true, multiModelComparison: false, imageGenerationEnabled: false },
};
