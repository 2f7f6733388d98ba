import { Redis } from '@upstash/redis';
import { describe, expect, it } from 'vitest';
import type { Deployment } from '../shared/deployment';
import { effectiveLimits, planChecks, reserve, settle } from '../shared/limiter';
import { redisKeys } from '../shared/redis';
import { stack } from './helpers';

/**
 * The limiter's Lua script against the real Redis of this run (through the Upstash REST stand-in
 * and the real @upstash/redis client), with an injected clock.
 */
const redis = new Redis({ url: stack.upstashUrl, token: stack.upstashToken, automaticDeserialization: false, enableTelemetry: false });
const keys = redisKeys(`${stack.keyPrefix}_lim`);
let n = 0;
const deployment = (rateLimits: Deployment['rateLimits'], over: Partial<Deployment> = {}): Deployment => ({
  id: `dep-${Date.now()}-${n++}`, name: 'x', type: 'internal', environment: 'sandbox', features: {}, rateLimits, budgets: {}, routing: {},
  allowedOrigins: [], monitoring: {}, timezone: 'UTC', configVersion: 1, createdBy: 'a', createdAt: '', updatedAt: '', ...over,
});
const NOW = Date.parse('2026-11-25T10:00:10Z');

describe('reserve (Lua, real Redis)', () => {
  it('admits exactly the limit under 40 concurrent reservations', async () => {
    const d = deployment({ requestsPerMinute: 7 });
    const checks = () => planChecks(d, effectiveLimits(d), { requests: 1, tokens: 10, costUsd: 0 }, keys, NOW);
    const results = await Promise.all(Array.from({ length: 40 }, () => reserve(redis, checks(), NOW)));
    expect(results.filter((r) => r.decision.allowed)).toHaveLength(7);
    const refused = results.find((r) => !r.decision.allowed)!.decision;
    expect(refused).toMatchObject({ reason: 'minute_limit', retryAfter: 50 });
  });

  it('resets at the window boundary (injected clock)', async () => {
    const d = deployment({ requestsPerMinute: 1 });
    const at = (t: number) => reserve(redis, planChecks(d, effectiveLimits(d), { requests: 1, tokens: 0, costUsd: 0 }, keys, t), t);
    expect((await at(NOW)).decision.allowed).toBe(true);
    expect((await at(NOW + 49_000)).decision.allowed).toBe(false);
    expect((await at(Date.parse('2026-11-25T10:01:00Z'))).decision.allowed).toBe(true);
  });

  it('resets the daily budget at midnight in the deployment\'s time zone', async () => {
    const d = deployment({ tokensPerDay: 100 }, { timezone: 'Asia/Kolkata' }); // UTC+5:30: midnight is 18:30 UTC
    const at = (t: string) => reserve(redis, planChecks(d, effectiveLimits(d), { requests: 1, tokens: 80, costUsd: 0 }, keys, Date.parse(t)), Date.parse(t));
    expect((await at('2026-11-25T18:00:00Z')).decision.allowed).toBe(true);
    const refused = (await at('2026-11-25T18:29:00Z')).decision;
    expect(refused).toMatchObject({ allowed: false, reason: 'daily_token_budget', budget: true, retryAfter: 60 });
    expect((await at('2026-11-25T18:30:00Z')).decision.allowed).toBe(true);
  });

  it('a dry run checks without consuming', async () => {
    const d = deployment({ requestsPerMinute: 1 });
    const checks = planChecks(d, effectiveLimits(d), { requests: 1, tokens: 0, costUsd: 0 }, keys, NOW);
    for (let i = 0; i < 3; i++) expect((await reserve(redis, checks, NOW, 'check')).decision.allowed).toBe(true);
    expect((await reserve(redis, checks, NOW)).decision.allowed).toBe(true);
    expect((await reserve(redis, checks, NOW, 'check')).decision.allowed).toBe(false);
  });

  it('refusing one window reserves nothing in the others', async () => {
    const d = deployment({ requestsPerMinute: 100, tokensPerDay: 50 });
    const big = planChecks(d, effectiveLimits(d), { requests: 1, tokens: 60, costUsd: 0 }, keys, NOW);
    expect((await reserve(redis, big, NOW)).decision).toMatchObject({ allowed: false, reason: 'daily_token_budget' });
    const probe = await reserve(redis, big, NOW, 'check');
    expect(probe.decision.windows.find((w) => w.name === 'requests-minute')!.used).toBe(0);
  });

  it('settle corrects an over-estimate; release gives tokens and cost back but keeps the request', async () => {
    const d = deployment({ requestsPerMinute: 100, tokensPerDay: 1000 }, { budgets: { costPerDayUsd: 1 } });
    const checks = planChecks(d, effectiveLimits(d), { requests: 1, tokens: 600, costUsd: 0.5 }, keys, NOW);
    const first = await reserve(redis, checks, NOW);
    expect(first.decision.allowed).toBe(true);
    await settle(redis, first.decision.reserved, { tokens: 42, costUsd: 0.01 });
    const after = (await reserve(redis, checks, NOW, 'check')).decision.windows;
    expect(after.find((w) => w.name === 'tokens-day')!.used).toBe(42);
    expect(after.find((w) => w.name === 'cost-day')!.used).toBe(10_000);
    const second = await reserve(redis, checks, NOW);
    await settle(redis, second.decision.reserved, null);
    const released = (await reserve(redis, checks, NOW, 'check')).decision.windows;
    expect(released.find((w) => w.name === 'tokens-day')!.used).toBe(42);
    expect(released.find((w) => w.name === 'requests-minute')!.used).toBe(2);
  });

  it('reads extra keys in the same call', async () => {
    const d = deployment({ requestsPerMinute: 5 });
    await redis.set(`${stack.keyPrefix}_lim:probe`, 'v1');
    const r = await reserve(redis, planChecks(d, effectiveLimits(d), { requests: 1, tokens: 0, costUsd: 0 }, keys, NOW), NOW, 'reserve', [`${stack.keyPrefix}_lim:probe`, `${stack.keyPrefix}_lim:missing`]);
    expect(r.reads).toEqual(['v1', null]);
  });
});
