import type { Redis } from '@upstash/redis/cloudflare';
import { checkBudgetWarnings } from '../../shared/alerts';
import type { CounterBatch } from '../../shared/counters';
import type { Deployment } from '../../shared/deployment';
import type { Config } from '../../shared/env';
import { MICRO, settleInto, type LimitCheck, type LimitDecision } from '../../shared/limiter';
import { countTotals } from '../../shared/metrics';
import type { RedisKeys } from '../../shared/redis';
import { bufferUsage, countCall, type UsageEvent } from '../../shared/usage';
import type { Caller, Prepared } from './prepare';

/** What one proxied call did: the usage record (metadata only, never content). */
export interface UsageRecord {
  requestId: string;
  deploymentId: string;
  model: string | null;
  provider: string | null;
  routeReason: string;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  latencyMs: number;
  ttfbMs: number | null;
  status: number;
  errorCategory: string | null;
  fallbacks: number;
  retries: number;
  downgradedTo: string | null;
  truncated: boolean;
  stream: boolean;
  stalled: boolean;
  empty: boolean;
  piiRedactions: number;
  urlsRemoved: number;
}

export interface AfterResponse {
  config: Config;
  redis: Redis;
  keys: RedisKeys;
  deployment: Deployment;
  caller: Caller;
  /** When the call started (the usage event's timestamp, part of its idempotency key). */
  now: number;
  flags: Record<string, boolean>;
  decision: LimitDecision | undefined;
  /** The request's post-response writes so far (a dispatch adds its breakers' successes). */
  batch: CounterBatch;
}

/** A call's usage record as it starts: what admission decided; the dispatch fills in the rest. */
export function newUsageRecord(requestId: string, deploymentId: string, prep: Pick<Prepared, 'req' | 'plan' | 'guard' | 'piiRedactions' | 'urlsRemoved'>): UsageRecord {
  return {
    requestId, deploymentId, model: null, provider: null, routeReason: prep.plan.reason,
    tokensIn: prep.guard.promptTokens, tokensOut: 0, costUsd: 0, latencyMs: 0, ttfbMs: null, status: 200, errorCategory: null,
    fallbacks: 0, retries: 0, downgradedTo: null, truncated: prep.guard.droppedMessages > 0, stream: Boolean(prep.req.stream),
    stalled: false, empty: false, piiRedactions: prep.piiRedactions, urlsRemoved: prep.urlsRemoved,
  };
}

export function usageEvent(a: AfterResponse, r: UsageRecord): UsageEvent {
  return {
    request_id: r.requestId, created_at: new Date(a.now).toISOString(), deployment_id: a.deployment.id,
    user_hash: a.caller.userKey ?? null, session_id: a.caller.sessionId ?? null, feature: a.caller.feature ?? null, model: r.model, provider: r.provider,
    route_reason: r.routeReason, tokens_in: r.tokensIn, tokens_out: r.tokensOut, cost_usd: r.costUsd,
    latency_ms: r.latencyMs, ttfb_ms: r.ttfbMs, status: r.status, error_category: r.errorCategory,
    fallbacks: r.fallbacks, retries: r.retries, downgraded_to: r.downgradedTo, truncated: r.truncated,
    stream: r.stream, stalled: r.stalled, empty: r.empty,
  };
}

/**
 * Everything after the answer, off the client's time, in one Redis command (the request's batch,
 * applied by one script): settle the limiter's reservation with real usage (or release it when
 * nothing was served), buffer the usage event, count the call for the alert policies and /metrics,
 * and the flags for feature_flag_usage_total. Then budget warnings, with the windows as settled.
 */
export async function afterResponse(a: AfterResponse, record: UsageRecord): Promise<void> {
  const { redis, keys, deployment, now } = a;
  const reserved: LimitCheck[] = a.decision?.reserved ?? [];
  const served = record.status < 400 || record.tokensOut > 0;
  const actual = served ? { tokens: record.tokensIn + record.tokensOut, costUsd: record.costUsd } : null;
  const p = a.batch;
  settleInto(p, reserved, actual);
  bufferUsage(p, keys, usageEvent(a, record));
  countCall(p, keys, deployment.id, now, { status: record.status, latencyMs: record.latencyMs, error: record.status >= 500 });
  countTotals(p, keys, deployment.id, record);
  for (const [flag, on] of Object.entries(a.flags)) p.hincrby(keys.flagUsage(deployment.id), `${flag}||${on}`, 1);
  if (record.empty) {
    const key = keys.dailyCounter('empty_completions', deployment.id, new Date(now).toISOString().slice(0, 10));
    p.incrby(key, 1);
    p.expire(key, 8 * 86_400);
  }
  await p.exec(redis);
  if (actual && a.decision) {
    const realAmount = (r: LimitCheck) => (r.measure === 'tokens' ? actual.tokens : r.measure === 'cost' ? Math.ceil(actual.costUsd * MICRO) : r.amount);
    const windows = a.decision.windows.map((w) => {
      const r = reserved.find((x) => x.name === w.name);
      return r ? { ...w, used: w.used + realAmount(r) - r.amount } : w;
    });
    await checkBudgetWarnings(a.config, redis, keys, deployment, windows, Date.now());
  }
}
