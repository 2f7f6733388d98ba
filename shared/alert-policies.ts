import type { Redis } from '@upstash/redis/cloudflare';
import { raiseAlert, type AlertInput } from './alerts';
import { Breakers } from './breaker';
import { rpc } from './db';
import type { Config } from './env';
import type { RedisKeys } from './redis';
import { metricBucket } from './usage';

/**
 * Alert policies (seed 004 §10.8, seed 001's alert tables), evaluated on a schedule from the
 * 5-minute Redis counters the proxy keeps: error rate, average latency, any 429 on an internal
 * deployment, a 429 spike over 5× the hour's baseline, and a breaker open for more than 5 minutes.
 * Each fires at most once per window (a unique alerts row), and goes to the deployment's webhook.
 */
interface Brief {
  id: string;
  name: string;
  type: 'public' | 'internal' | 'hybrid';
  monitoring: { alertThresholds?: { errorRate?: number; avgLatencyMs?: number }; webhookUrl?: string | null };
}

const MIN_CALLS_FOR_RATES = 5;
const BASELINE_BUCKETS = 12;
const BREAKER_OPEN_ALERT_MS = 5 * 60_000;

const n = (v: unknown) => Number(v ?? 0) || 0;

/** HGETALL as an object, whether the client answers the raw [field, value, ...] list or an object. */
function hash(reply: unknown): Record<string, unknown> | null {
  if (!reply) return null;
  if (!Array.isArray(reply)) return reply as Record<string, unknown>;
  if (!reply.length) return null;
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1];
  return out;
}

export async function evaluateAlertPolicies(config: Config, redis: Redis, keys: RedisKeys, now = Date.now()): Promise<number> {
  const bucket = metricBucket(now) - 1; // the last complete 5-minute window
  const windowKey = new Date(bucket * 300_000).toISOString();
  const ids = (await redis.smembers(keys.activeDeployments(bucket))) as string[];
  const alerts: { deployment: Pick<Brief, 'name' | 'monitoring'>; alert: AlertInput }[] = [];
  if (ids.length) {
    const briefs = await rpc<Brief[]>(config, 'get_deployments_brief', { p_ids: ids });
    for (const d of briefs) {
      const current = hash(await redis.hgetall(keys.metrics(d.id, bucket)));
      if (!current) continue;
      const requests = n(current.requests);
      const errors = n(current.errors);
      const r429 = n(current.r429);
      const t = d.monitoring.alertThresholds ?? {};
      const errorRate = t.errorRate ?? 0.05;
      const avgLatencyMs = t.avgLatencyMs ?? 3000;
      const push = (type: string, severity: AlertInput['severity'], message: string, data: Record<string, unknown>) =>
        alerts.push({ deployment: d, alert: { deploymentId: d.id, type, severity, windowKey, message, data } });
      if (requests >= MIN_CALLS_FOR_RATES && errors / requests > errorRate) {
        push('error_rate', 'critical', `Error rate ${Math.round((errors / requests) * 100)}% over 5 minutes (threshold ${Math.round(errorRate * 100)}%).`, { requests, errors });
      }
      if (requests >= MIN_CALLS_FOR_RATES && n(current.latency_ms) / requests > avgLatencyMs) {
        push('latency', 'warning', `Average latency ${Math.round(n(current.latency_ms) / requests)} ms over 5 minutes (threshold ${avgLatencyMs} ms).`, { requests });
      }
      if (r429 > 0 && d.type === 'internal') {
        push('internal_rate_limited', 'critical', `${r429} call(s) of an internal deployment were rate limited in 5 minutes.`, { r429 });
      }
      if (r429 >= 5) {
        const previous = await Promise.all(Array.from({ length: BASELINE_BUCKETS }, (_, i) => redis.hget(keys.metrics(d.id, bucket - 1 - i), 'r429')));
        const baseline = previous.reduce<number>((s, v) => s + n(v), 0) / BASELINE_BUCKETS;
        if (r429 > 5 * Math.max(baseline, 1)) {
          push('rate_limit_spike', 'warning', `429s spiked to ${r429} in 5 minutes (baseline ${baseline.toFixed(1)}).`, { r429, baseline });
        }
      }
    }
  }
  // Breakers open for more than 5 minutes (global, not per deployment).
  for (const b of await new Breakers(redis, keys, () => now).list()) {
    if (b.state !== 'closed' && b.openSince && now - Date.parse(b.openSince) > BREAKER_OPEN_ALERT_MS) {
      alerts.push({
        deployment: { name: 'all deployments', monitoring: {} },
        alert: { deploymentId: null, type: 'breaker_open', severity: 'critical', windowKey: `${b.id}:${b.openSince}`, message: `Circuit breaker ${b.id} has been open since ${b.openSince}.`, data: { breaker: b.id } },
      });
    }
  }
  await Promise.all(alerts.map(({ deployment, alert }) => raiseAlert(config, deployment, alert)));
  return alerts.length;
}
