import type { Redis } from '@upstash/redis/cloudflare';
import { DEFAULT_RATE_LIMITS, type Deployment, type DeploymentType, type RateLimits } from './deployment';
import { CounterBatch } from './counters';
import { runScript, type LuaScript } from './lua';
import type { RedisKeys } from './redis';

/**
 * The one limiter: request windows, token and cost budgets, per deployment, end user and session.
 * Every window is a Redis counter on a calendar boundary (minute, hour; day and month in the
 * deployment's time zone). One Lua script checks every window and reserves the request, its
 * estimated tokens and cost atomically, so concurrent calls in any number of isolates never take a
 * window past its limit. After the call the reservation is settled with actual usage, or released.
 */
export type LimitReason =
  | 'minute_limit'
  | 'hour_limit'
  | 'day_limit'
  | 'tokens_per_request'
  | 'daily_token_budget'
  | 'daily_cost_budget'
  | 'monthly_cost_budget'
  | 'user_limit'
  | 'session_limit';

export type Window = 'minute' | 'hour' | 'day' | 'month';
export type Measure = 'requests' | 'tokens' | 'cost';

/** Effective limits: type defaults, the deployment's own values, budgets from `budgets`. */
export interface EffectiveLimits extends RateLimits {
  costPerDayUsd?: number;
  costPerMonthUsd?: number;
}

export interface LimitCheck {
  name: string;
  reason: LimitReason;
  measure: Measure;
  window: Window;
  /** Budgets answer 402 (or downgrade); request windows 429. */
  budget: boolean;
  /** Counted but not enforced (a budget while serving a downgraded call). */
  enforce: boolean;
  key: string;
  limit: number;
  amount: number;
  resetAt: number;
  ttlMs: number;
}

export interface WindowState {
  name: string;
  measure: Measure;
  window: Window;
  limit: number;
  used: number;
  remaining: number;
  resetAt: number;
}

export interface LimitDecision {
  allowed: boolean;
  reason?: LimitReason;
  budget?: boolean;
  /** Seconds until the window that refused the call resets (at least 1). */
  retryAfter?: number;
  windows: WindowState[];
  /** What was reserved, to settle or release later (empty when nothing was reserved). */
  reserved: LimitCheck[];
}

/** Cost is counted in micro-dollars so that counters stay integers (no float drift across isolates). */
export const MICRO = 1_000_000;

/** Limits for a deployment; a hybrid deployment takes the tier of the caller's role. */
export function effectiveLimits(deployment: Deployment, role?: DeploymentType): EffectiveLimits {
  const tier: DeploymentType = deployment.type === 'hybrid' ? (role === 'internal' ? 'internal' : 'public') : deployment.type;
  const budgets = deployment.budgets as { costPerDayUsd?: unknown; costPerMonthUsd?: unknown };
  const num = (v: unknown) => (typeof v === 'number' && v > 0 ? v : undefined);
  return {
    ...DEFAULT_RATE_LIMITS[tier],
    ...stripNonLimits(deployment.rateLimits),
    costPerDayUsd: num(budgets.costPerDayUsd),
    costPerMonthUsd: num(budgets.costPerMonthUsd),
  };
}

function stripNonLimits(r: RateLimits): RateLimits {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) if (typeof v === 'number') out[k] = v;
  return out as RateLimits;
}

interface Parts {
  y: number;
  m: number;
  d: number;
}

const partsFormatters = new Map<string, Intl.DateTimeFormat>();
function zonedParts(epochMs: number, timeZone: string): Parts & { offsetMs: number } {
  let f = partsFormatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    partsFormatters.set(timeZone, f);
  }
  const p: Record<string, number> = {};
  for (const { type, value } of f.formatToParts(new Date(epochMs))) if (type !== 'literal') p[type] = Number(value);
  const asUtc = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
  return { y: p.year!, m: p.month!, d: p.day!, offsetMs: asUtc - Math.floor(epochMs / 1000) * 1000 };
}

/**
 * The first instant of local date y-m-d in `timeZone`: its wall-clock midnight, exact across DST
 * changes. Where midnight is skipped (a zone that springs forward at 00:00) the day starts at the
 * transition; where it is repeated, at the first instant that reads the new date.
 */
function localMidnight(y: number, m: number, d: number, timeZone: string): number {
  const guess = Date.UTC(y, m - 1, d);
  const a = guess - zonedParts(guess, timeZone).offsetMs;
  const b = guess - zonedParts(a, timeZone).offsetMs;
  const isTheDay = (t: number) => {
    const p = zonedParts(t, timeZone);
    return p.y === y && p.m === m && p.d === d;
  };
  const valid = [a, b].filter(isTheDay);
  return valid.length ? Math.min(...valid) : Math.max(a, b);
}

export interface WindowInfo {
  id: string;
  resetAt: number;
}

/** Day and month windows of one time zone, valid for every instant in [from, until): one local day. */
interface CalendarWindows {
  from: number;
  until: number;
  day: WindowInfo;
  month: WindowInfo;
}
const calendarCache = new Map<string, CalendarWindows>();
const pad2 = (n: number) => String(n).padStart(2, '0');

/**
 * The day and month windows at `now` in `timeZone`. Computing them takes five time-zone
 * conversions (Intl, tens of microseconds), so each isolate computes them once per local day and
 * zone and reuses them until the next local midnight. A day whose bounds do not check out (a zone
 * that skips midnight) is simply not cached.
 */
function calendarWindows(now: number, timeZone: string): CalendarWindows {
  const cached = calendarCache.get(timeZone);
  if (cached && now >= cached.from && now < cached.until) return cached;
  const local = zonedParts(now, timeZone);
  const nextDay = new Date(Date.UTC(local.y, local.m - 1, local.d + 1));
  const nextMonth = new Date(Date.UTC(local.y, local.m, 1));
  const day = { id: `d${local.y}-${pad2(local.m)}-${pad2(local.d)}`, resetAt: localMidnight(nextDay.getUTCFullYear(), nextDay.getUTCMonth() + 1, nextDay.getUTCDate(), timeZone) };
  const month = { id: `M${local.y}-${pad2(local.m)}`, resetAt: localMidnight(nextMonth.getUTCFullYear(), nextMonth.getUTCMonth() + 1, 1, timeZone) };
  const from = localMidnight(local.y, local.m, local.d, timeZone);
  const entry = { from, until: day.resetAt, day, month };
  const sameDay = (p: Parts) => p.y === local.y && p.m === local.m && p.d === local.d;
  if (from <= now && sameDay(zonedParts(from, timeZone)) && sameDay(zonedParts(day.resetAt - 1000, timeZone))) {
    if (calendarCache.size > 1000) calendarCache.clear();
    calendarCache.set(timeZone, entry);
  }
  return entry;
}

/** Calendar windows at `now`: minute and hour in UTC, day and month in the deployment's time zone. */
export function windowsAt(now: number, timeZone = 'UTC'): Record<Window, WindowInfo> {
  const minute = Math.floor(now / 60_000);
  const hour = Math.floor(now / 3_600_000);
  const { day, month } = calendarWindows(now, timeZone);
  return {
    minute: { id: `m${minute}`, resetAt: (minute + 1) * 60_000 },
    hour: { id: `h${hour}`, resetAt: (hour + 1) * 3_600_000 },
    day,
    month,
  };
}

/** A small, fast, stable hash of an end-user or session id for Redis keys (ids are never stored as sent). */
export function hashId(id: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < id.length; i++) {
    const ch = id.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h2 >>> 0).toString(36) + (h1 >>> 0).toString(36);
}

export interface Usage {
  requests: number;
  tokens: number;
  costUsd: number;
  userId?: string;
  sessionId?: string;
}

/** The checks one call is subject to, with what it would take from each window. */
export function planChecks(deployment: Deployment, limits: EffectiveLimits, usage: Usage, keys: RedisKeys, now: number, opts: { skipBudgets?: boolean } = {}): LimitCheck[] {
  const w = windowsAt(now, deployment.timezone);
  const checks: LimitCheck[] = [];
  const add = (name: string, reason: LimitReason, measure: Measure, window: Window, limit: number | undefined, amount: number, scope: string, budget = false) => {
    if (limit === undefined) return;
    const info = w[window];
    checks.push({
      name, reason, measure, window, budget, limit, amount,
      enforce: !(budget && opts.skipBudgets),
      key: keys.limitCounter(deployment.id, `${scope}:${measure}:${info.id}`),
      resetAt: info.resetAt,
      // Kept a little past the reset so a late settle still finds its counter.
      ttlMs: info.resetAt - now + 120_000,
    });
  };
  add('requests-minute', 'minute_limit', 'requests', 'minute', limits.requestsPerMinute, usage.requests, 'dep');
  add('requests-hour', 'hour_limit', 'requests', 'hour', limits.requestsPerHour, usage.requests, 'dep');
  add('requests-day', 'day_limit', 'requests', 'day', limits.requestsPerDay, usage.requests, 'dep');
  add('tokens-day', 'daily_token_budget', 'tokens', 'day', limits.tokensPerDay, usage.tokens, 'dep', true);
  add('cost-day', 'daily_cost_budget', 'cost', 'day', limits.costPerDayUsd === undefined ? undefined : Math.round(limits.costPerDayUsd * MICRO), Math.ceil(usage.costUsd * MICRO), 'dep', true);
  add('cost-month', 'monthly_cost_budget', 'cost', 'month', limits.costPerMonthUsd === undefined ? undefined : Math.round(limits.costPerMonthUsd * MICRO), Math.ceil(usage.costUsd * MICRO), 'dep', true);
  if (usage.userId) {
    add('user-requests-minute', 'user_limit', 'requests', 'minute', limits.userRequestsPerMinute, usage.requests, `user:${usage.userId}`);
    add('user-tokens-day', 'user_limit', 'tokens', 'day', limits.userTokensPerDay, usage.tokens, `user:${usage.userId}`);
  }
  if (usage.sessionId) add('session-requests-day', 'session_limit', 'requests', 'day', limits.sessionRequestsPerDay, usage.requests, `session:${usage.sessionId}`);
  return checks;
}

/**
 * KEYS: `nRead` keys to read (config version, kill switch, breakers: the hot path's other reads),
 * then the counters. ARGV: mode ("reserve" | "check"), nRead, then limit, amount, ttl-ms per counter.
 * Refuses at the first window that `amount` would take past its limit; otherwise (reserve) adds every
 * amount. Answers {allowed, refused index, value per counter..., value per read key...}: the whole
 * hot path in one Redis round trip.
 */
export const RESERVE: LuaScript = {
  name: 'limiter_reserve',
  source: `local nRead = tonumber(ARGV[2])
local n = #KEYS - nRead
local values = {}
for i = 1, n do
  values[i] = tonumber(redis.call('GET', KEYS[nRead + i]) or '0')
end
local allowed, refused = 1, 0
for i = 1, n do
  local limit = tonumber(ARGV[3 * i])
  local amount = tonumber(ARGV[3 * i + 1])
  if amount > 0 and limit >= 0 and values[i] + amount > limit then
    allowed, refused = 0, i
    break
  end
end
if allowed == 1 and ARGV[1] == 'reserve' then
  for i = 1, n do
    local amount = tonumber(ARGV[3 * i + 1])
    if amount ~= 0 then
      values[i] = redis.call('INCRBY', KEYS[nRead + i], amount)
      if redis.call('PTTL', KEYS[nRead + i]) < 0 then redis.call('PEXPIRE', KEYS[nRead + i], ARGV[3 * i + 2]) end
    end
  end
end
local out = {allowed, refused}
for i = 1, n do out[#out + 1] = values[i] end
for i = 1, nRead do out[#out + 1] = redis.call('GET', KEYS[i]) end
return out`,
  sha1: 'ec6ff7c3f551fbea76ca9f17624ff48d184b2bfb',
};

/**
 * Runs the reserve script (or only checks, for dry runs), reading `readKeys` in the same call.
 * The Redis call is issued synchronously, before any await.
 */
export async function reserve(redis: Redis, checks: LimitCheck[], now: number, mode: 'reserve' | 'check' = 'reserve', readKeys: string[] = []): Promise<{ decision: LimitDecision; reads: (string | null)[] }> {
  const args: (string | number)[] = [mode, readKeys.length];
  for (const c of checks) args.push(c.enforce ? c.limit : -1, c.amount, Math.max(1000, c.ttlMs));
  const out = await runScript<(number | string | null)[]>(redis, RESERVE, [...readKeys, ...checks.map((c) => c.key)], args);
  const counters = out.slice(0, 2 + checks.length).map(Number);
  const reads = out.slice(2 + checks.length).map((v) => (v === null || v === undefined ? null : String(v)));
  return { decision: decide(checks, counters, now, mode), reads };
}

export function decide(checks: LimitCheck[], out: number[], now: number, mode: 'reserve' | 'check'): LimitDecision {
  if (!checks.length) return { allowed: true, windows: [], reserved: [] };
  const [allowed, refused, ...values] = out;
  // `used` is the counter as it stands: after this call's reservation, or untouched (dry run, refusal).
  const windows = checks.map((c, i): WindowState => {
    const used = values[i] ?? 0;
    return { name: c.name, measure: c.measure, window: c.window, limit: c.limit, used, remaining: Math.max(0, c.limit - used), resetAt: c.resetAt };
  });
  if (allowed === 1) return { allowed: true, windows, reserved: mode === 'reserve' ? checks : [] };
  const c = checks[(refused ?? 1) - 1]!;
  return { allowed: false, reason: c.reason, budget: c.budget, retryAfter: Math.max(1, Math.ceil((c.resetAt - now) / 1000)), windows, reserved: [] };
}

/**
 * Settles a reservation with what the call really used (tokens and cost; the request stays
 * counted), or releases it (`actual` null: a failed call gives its tokens and cost back).
 */
export async function settle(redis: Redis, reserved: LimitCheck[], actual: { tokens: number; costUsd: number } | null): Promise<void> {
  await settleInto(new CounterBatch(), reserved, actual).exec(redis);
}

/** The settle writes, added to the batch that carries the rest of the post-response work. */
export function settleInto(batch: CounterBatch, reserved: LimitCheck[], actual: { tokens: number; costUsd: number } | null): CounterBatch {
  for (const c of reserved) {
    if (c.measure === 'requests') continue;
    const real = actual === null ? 0 : c.measure === 'tokens' ? actual.tokens : Math.ceil(actual.costUsd * MICRO);
    const delta = real - c.amount;
    if (delta !== 0) batch.incrby(c.key, delta);
  }
  return batch;
}

/** A short summary of windows for answers and headers. */
export function primaryWindow(windows: WindowState[], measure: Measure): WindowState | undefined {
  const order: Window[] = ['minute', 'hour', 'day', 'month'];
  return windows.filter((w) => w.measure === measure && !w.name.startsWith('user') && !w.name.startsWith('session')).sort((a, b) => order.indexOf(a.window) - order.indexOf(b.window))[0];
}

const WINDOW_SECONDS: Record<Window, number> = { minute: 60, hour: 3600, day: 86_400, month: 2_592_000 };

/** OpenAI-style duration ("1s", "6m0s", "2h3m"). */
function duration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

/**
 * Rate-limit headers: OpenAI's x-ratelimit-* trio for requests and tokens, and the IETF
 * RateLimit-Policy / RateLimit pair (draft-ietf-httpapi-ratelimit-headers) for every window.
 */
export function limitHeaders(windows: WindowState[], now: number): Record<string, string> {
  const h: Record<string, string> = {};
  const secs = (w: WindowState) => Math.max(0, Math.ceil((w.resetAt - now) / 1000));
  const req = primaryWindow(windows, 'requests');
  if (req) {
    h['x-ratelimit-limit-requests'] = String(req.limit);
    h['x-ratelimit-remaining-requests'] = String(req.remaining);
    h['x-ratelimit-reset-requests'] = duration(secs(req));
  }
  const tok = primaryWindow(windows, 'tokens');
  if (tok) {
    h['x-ratelimit-limit-tokens'] = String(tok.limit);
    h['x-ratelimit-remaining-tokens'] = String(tok.remaining);
    h['x-ratelimit-reset-tokens'] = duration(secs(tok));
  }
  if (windows.length) {
    h['ratelimit-policy'] = windows.map((w) => `"${w.name}";q=${w.limit};w=${WINDOW_SECONDS[w.window]}`).join(', ');
    h['ratelimit'] = windows.map((w) => `"${w.name}";r=${w.remaining};t=${secs(w)}`).join(', ');
  }
  return h;
}

/** Per-isolate emergency limiter for fail-open while Redis is unreachable: caps bursts per minute. */
const emergency = new Map<string, { minute: number; count: number }>();
export function emergencyAllow(deploymentId: string, perMinute: number, now: number): boolean {
  const minute = Math.floor(now / 60_000);
  const e = emergency.get(deploymentId);
  if (!e || e.minute !== minute) {
    emergency.set(deploymentId, { minute, count: 1 });
    return true;
  }
  e.count++;
  return e.count <= perMinute;
}
