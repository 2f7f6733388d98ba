import { describe, expect, it } from 'vitest';
import type { Deployment } from './deployment';
import { decide, effectiveLimits, limitHeaders, planChecks, windowsAt } from './limiter';
import { redisKeys } from './redis';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const deployment = (over: Partial<Deployment> = {}): Deployment => ({
  id: 'd1', name: 'x', type: 'public', environment: 'sandbox', features: {}, rateLimits: {}, budgets: {}, routing: {}, allowedOrigins: [],
  monitoring: {}, timezone: 'UTC', configVersion: 1, createdBy: 'a', createdAt: '', updatedAt: '', ...over,
});

describe('calendar windows', () => {
  it('minute and hour windows reset on UTC boundaries', () => {
    const w = windowsAt(at('2026-11-25T10:59:59.500Z'));
    expect(iso(w.minute.resetAt)).toBe('2026-11-25T11:00:00.000Z');
    expect(iso(w.hour.resetAt)).toBe('2026-11-25T11:00:00.000Z');
    expect(windowsAt(at('2026-11-25T11:00:00.000Z')).minute.id).not.toBe(w.minute.id);
  });

  it('the day resets at local midnight in the deployment\'s time zone', () => {
    // Berlin is UTC+1 in November: local midnight is 23:00 UTC.
    const before = windowsAt(at('2026-11-25T22:59:59Z'), 'Europe/Berlin');
    const after = windowsAt(at('2026-11-25T23:00:00Z'), 'Europe/Berlin');
    expect(before.day.id).toBe('d2026-11-25');
    expect(iso(before.day.resetAt)).toBe('2026-11-25T23:00:00.000Z');
    expect(after.day.id).toBe('d2026-11-26');
    expect(windowsAt(at('2026-11-25T23:00:00Z')).day.id).toBe('d2026-11-25'); // UTC: not yet
  });

  it('handles days of 23 hours (DST) and the month boundary', () => {
    // New York springs forward on 2026-03-08: that day is 23 hours long.
    const w = windowsAt(at('2026-03-08T12:00:00Z'), 'America/New_York');
    expect(w.day.id).toBe('d2026-03-08');
    expect(iso(w.day.resetAt)).toBe('2026-03-09T04:00:00.000Z');
    expect(iso(windowsAt(at('2026-03-07T12:00:00Z'), 'America/New_York').day.resetAt)).toBe('2026-03-08T05:00:00.000Z');
    const m = windowsAt(at('2026-01-31T23:30:00Z'), 'Asia/Tokyo'); // already February 1st in Tokyo
    expect(m.month.id).toBe('M2026-02');
    expect(iso(m.month.resetAt)).toBe('2026-02-28T15:00:00.000Z');
  });
});

describe('calendar windows against an independent oracle (the per-isolate cache must not change any answer)', () => {
  /** The local date at an instant, straight from Intl. */
  const formats = new Map<string, Intl.DateTimeFormat>();
  const localDate = (ms: number, timeZone: string) => {
    if (!formats.has(timeZone)) formats.set(timeZone, new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }));
    return formats.get(timeZone)!.format(new Date(ms));
  };
  /** The first instant (to the second) after `ms` whose local date differs: the next local midnight. */
  const nextDayStart = (ms: number, timeZone: string) => {
    const today = localDate(ms, timeZone);
    let lo = Math.floor(ms / 1000) * 1000;
    let hi = lo + 1000;
    while (localDate(hi, timeZone) === today) hi += 6 * 3_600_000;
    while (hi - lo > 1000) {
      const mid = Math.floor((lo + hi) / 2000) * 1000;
      if (localDate(mid, timeZone) === today) lo = mid;
      else hi = mid;
    }
    return hi;
  };

  it('agrees at every instant of a sweep across DST changes, in time order and shuffled', () => {
    // Zones with 23- and 25-hour days, one that springs forward at midnight (Santiago), a half-hour
    // offset (Adelaide), and a zone west of UTC near the date line.
    const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'America/Santiago', 'Australia/Adelaide', 'Pacific/Pago_Pago'];
    const starts = ['2026-03-06T00:00:00Z', '2026-04-03T00:00:00Z', '2026-09-04T00:00:00Z', '2026-10-23T00:00:00Z'];
    const instants: number[] = [];
    for (const s of starts) for (let t = at(s); t < at(s) + 4 * 86_400_000; t += 37 * 60_000 + 13_000) instants.push(t);
    let seed = 7;
    const shuffled = [...instants].sort(() => ((seed = (seed * 16807) % 2147483647) % 3) - 1);
    for (const order of [instants, shuffled]) {
      for (const tz of zones) {
        for (const t of order) {
          const w = windowsAt(t, tz);
          expect(w.day.id, `${tz} ${iso(t)}`).toBe(`d${localDate(t, tz)}`);
          expect(w.day.resetAt, `${tz} ${iso(t)}`).toBe(nextDayStart(t, tz));
          expect(w.month.id).toBe(`M${localDate(t, tz).slice(0, 7)}`);
        }
      }
    }
  });
});

describe('limits', () => {
  it('takes seed 004 defaults by type; hybrid by the caller\'s role', () => {
    expect(effectiveLimits(deployment()).requestsPerMinute).toBe(10);
    expect(effectiveLimits(deployment({ type: 'internal' })).tokensPerDay).toBe(500000);
    expect(effectiveLimits(deployment({ type: 'hybrid' })).requestsPerMinute).toBe(10);
    expect(effectiveLimits(deployment({ type: 'hybrid' }), 'internal').requestsPerMinute).toBe(60);
    expect(effectiveLimits(deployment({ type: 'hybrid', rateLimits: { requestsPerMinute: 3 } }), 'internal').requestsPerMinute).toBe(3);
    expect(effectiveLimits(deployment({ budgets: { costPerDayUsd: 5 } })).costPerDayUsd).toBe(5);
  });

  it('plans one check per configured window, user and session included', () => {
    const keys = redisKeys('t');
    const d = deployment({ rateLimits: { userRequestsPerMinute: 2, sessionRequestsPerDay: 9 }, budgets: { costPerMonthUsd: 1 } });
    const checks = planChecks(d, effectiveLimits(d), { requests: 1, tokens: 100, costUsd: 0.002, userId: 'u', sessionId: 's' }, keys, at('2026-11-25T10:00:00Z'));
    expect(checks.map((c) => `${c.name}:${c.amount}`)).toEqual([
      'requests-minute:1', 'requests-hour:1', 'requests-day:1', 'tokens-day:100', 'cost-month:2000', 'user-requests-minute:1', 'session-requests-day:1',
    ]);
    expect(checks.find((c) => c.name === 'cost-month')!.reason).toBe('monthly_cost_budget');
    expect(new Set(checks.map((c) => c.key)).size).toBe(checks.length);
  });

  it('reports the refusing window with a Retry-After of at least one second', () => {
    const d = deployment();
    const now = at('2026-11-25T10:00:59.900Z');
    const checks = planChecks(d, effectiveLimits(d), { requests: 1, tokens: 10, costUsd: 0 }, redisKeys('t'), now);
    const refused = decide(checks, [0, 1, 10, 50, 500, 1000], now, 'reserve');
    expect(refused).toMatchObject({ allowed: false, reason: 'minute_limit', budget: false, retryAfter: 1 });
    const budget = decide(checks, [0, 4, 3, 3, 3, 50_000], now, 'reserve');
    expect(budget).toMatchObject({ allowed: false, reason: 'daily_token_budget', budget: true });
  });

  it('formats OpenAI and IETF rate-limit headers', () => {
    const now = at('2026-11-25T10:00:30Z');
    const h = limitHeaders([
      { name: 'requests-minute', measure: 'requests', window: 'minute', limit: 10, used: 4, remaining: 6, resetAt: at('2026-11-25T10:01:00Z') },
      { name: 'tokens-day', measure: 'tokens', window: 'day', limit: 50000, used: 100, remaining: 49900, resetAt: at('2026-11-26T00:00:00Z') },
    ], now);
    expect(h).toEqual({
      'x-ratelimit-limit-requests': '10',
      'x-ratelimit-remaining-requests': '6',
      'x-ratelimit-reset-requests': '30s',
      'x-ratelimit-limit-tokens': '50000',
      'x-ratelimit-remaining-tokens': '49900',
      'x-ratelimit-reset-tokens': '13h59m30s',
      'ratelimit-policy': '"requests-minute";q=10;w=60, "tokens-day";q=50000;w=86400',
      ratelimit: '"requests-minute";r=6;t=30, "tokens-day";r=49900;t=50370',
    });
  });
});
