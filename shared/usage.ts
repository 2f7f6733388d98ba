import type { Redis } from '@upstash/redis/cloudflare';
import type { CounterBatch } from './counters';
import { rpc } from './db';
import type { Config } from './env';
import { log } from './log';
import type { RedisKeys } from './redis';

/**
 * The usage pipeline: one event per proxied call, appended to a Redis stream after the response (in
 * the same pipeline as the rest of the post-response work), drained into Postgres in batches.
 * Exactly once: an event keeps its request id and timestamp, the table's key is (request_id,
 * created_at), and the insert skips rows already there, so drains may be retried or race.
 * While Postgres is down the events simply wait in the stream.
 */
export interface UsageEvent {
  request_id: string;
  created_at: string;
  deployment_id: string;
  user_hash: string | null;
  session_id: string | null;
  feature: string | null;
  model: string | null;
  provider: string | null;
  route_reason: string | null;
  tokens_in: number;
  tokens_out: number;
  cost_usd: number;
  latency_ms: number | null;
  ttfb_ms: number | null;
  status: number;
  error_category: string | null;
  fallbacks: number;
  retries: number;
  downgraded_to: string | null;
  truncated: boolean;
  stream: boolean;
  stalled: boolean;
  empty: boolean;
}

/** The stream keeps at most about this many events (a bound, should draining stop for days). */
const STREAM_MAX = 2_000_000;
export const DRAIN_BATCH = 500;

/** Adds the event to the post-response batch (no round trip of its own). */
export function bufferUsage(batch: CounterBatch, keys: RedisKeys, event: UsageEvent): void {
  batch.xadd(keys.usageStream(), STREAM_MAX, 'e', JSON.stringify(event));
}

/** The 5-minute metric bucket an instant falls in (alert policies read these). */
export const metricBucket = (now: number) => Math.floor(now / 300_000);

/** Counts a call in its deployment's 5-minute bucket (same batch). */
export function countCall(p: CounterBatch, keys: RedisKeys, deploymentId: string, now: number, m: { status: number; latencyMs: number; error: boolean }): void {
  const bucket = metricBucket(now);
  const key = keys.metrics(deploymentId, bucket);
  p.hincrby(key, 'requests', 1);
  if (m.error) p.hincrby(key, 'errors', 1);
  if (m.status === 429) p.hincrby(key, 'r429', 1);
  p.hincrby(key, 'latency_ms', Math.round(m.latencyMs));
  p.expire(key, 2 * 3600);
  p.sadd(keys.activeDeployments(bucket), deploymentId);
  p.expire(keys.activeDeployments(bucket), 2 * 3600);
}

/**
 * [id, event field] pairs from XRANGE, whichever shape the client hands back: the raw reply
 * ([[id, [field, value, ...]], ...], with automatic deserialization off) or an object by id.
 */
function streamEntries(reply: unknown): [string, unknown][] {
  if (Array.isArray(reply)) {
    return reply.map((entry) => {
      const [id, fields] = entry as [string, unknown[]];
      const i = fields.indexOf('e');
      return [id, i >= 0 ? fields[i + 1] : undefined];
    });
  }
  return Object.entries((reply ?? {}) as Record<string, Record<string, unknown>>).map(([id, f]) => [id, f?.e]);
}

export interface DrainResult {
  /** Events read from the buffer and acknowledged. */
  moved: number;
  /** Of those, rows new to Postgres (the rest were already there: a retried drain). */
  inserted: number;
  /** Events still waiting (0 unless a batch failed or the limit was reached). */
  remaining: number;
}

/**
 * Moves buffered events into Postgres, `DRAIN_BATCH` at a time: read, insert (idempotent), then
 * delete from the stream. If Postgres refuses, nothing is deleted and the error is thrown after
 * counting what did move.
 */
export async function drainUsage(config: Config, redis: Redis, keys: RedisKeys, maxBatches = 100): Promise<DrainResult> {
  const stream = keys.usageStream();
  let moved = 0;
  let inserted = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const entries = streamEntries(await redis.xrange(stream, '-', '+', DRAIN_BATCH));
    const ids = entries.map(([id]) => id);
    if (!ids.length) break;
    const events: unknown[] = [];
    for (const [id, raw] of entries) {
      try {
        const event = typeof raw === 'string' ? JSON.parse(raw) : raw;
        if (event && typeof event === 'object' && !Array.isArray(event)) events.push(event);
        else throw new Error('not an object');
      } catch {
        log('error', 'usage.unreadable_event', { id }); // kept out of the batch, removed below
      }
    }
    inserted += await rpc<number>(config, 'insert_usage_events', { p_events: events });
    await redis.xdel(stream, ids);
    moved += ids.length;
    if (ids.length < DRAIN_BATCH) break;
  }
  const remaining = Number(await redis.xlen(stream));
  return { moved, inserted, remaining };
}
