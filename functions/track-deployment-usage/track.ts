import { Hono } from 'hono';
import * as z from 'zod/mini';
import { adminAuth } from '../../shared/admin-auth';
import { evaluateAlertPolicies } from '../../shared/alert-policies';
import { raiseAlert } from '../../shared/alerts';
import type { AppEnv } from '../../shared/context';
import { rpc } from '../../shared/db';
import { loadConfig, type Bindings } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { authenticate } from '../../shared/key-auth';
import { effectiveLimits, limitHeaders, planChecks, reserve } from '../../shared/limiter';
import { log } from '../../shared/log';
import { redisClient, redisKeys } from '../../shared/redis';
import { drainUsage, metricBucket } from '../../shared/usage';
import { parseJson } from '../../shared/validate';

const count = z.int().check(z.gte(0), z.lte(100_000_000));
const names = z.array(z.string().check(z.maxLength(200))).check(z.maxLength(100));

/** seed 004 §10.3's metrics, as apps that call providers themselves report them. */
const bodySchema = z.strictObject({
  deploymentId: z.uuid({ message: 'must be the deployment id (a UUID)' }),
  metrics: z.strictObject({
    requests: count,
    tokens: count,
    models: z._default(names, []),
    /** Average latency of the reported calls, in ms. */
    latency: z.optional(z.number().check(z.gte(0), z.lte(3_600_000))),
    errors: z._default(count, 0),
    features: z._default(names, []),
  }),
});

export const trackRoutes = new Hono<AppEnv>()
  /**
   * POST / — records reported usage, counts it against the deployment's windows, answers 429 with
   * retryAfter when the deployment is over a limit, and checks its alert thresholds.
   */
  .post('/', async (c) => {
    const now = Date.now();
    const { deploymentId, metrics } = await parseJson(c, bodySchema);
    const { deployment } = await authenticate(c, { kinds: ['secret'] });
    if (deployment.id !== deploymentId) throw new ApiError(403, 'deployment_mismatch', 'The key belongs to another deployment than deploymentId.', 'deploymentId');
    const config = loadConfig(c.env);
    if (metrics.errors > metrics.requests) throw new ApiError(400, 'invalid_request', 'metrics.errors: cannot exceed metrics.requests', 'metrics.errors');
    const recorded = await rpc<{ id: number; reportedAt: string }>(config, 'record_deployment_usage_metrics', { p_deployment_id: deployment.id, p_metrics: metrics });

    // Reported usage counts against the same windows the proxy enforces (counted, never refused here).
    const redis = redisClient(config);
    const keys = redisKeys(config.REDIS_KEY_PREFIX);
    const checks = planChecks(deployment, effectiveLimits(deployment), { requests: metrics.requests, tokens: metrics.tokens, costUsd: 0 }, keys, now, { skipBudgets: true })
      .map((ch) => ({ ...ch, enforce: false }));
    const { decision } = await reserve(redis, checks, now, 'reserve');
    for (const [k, v] of Object.entries(limitHeaders(decision.windows, now))) c.header(k, v);

    // Alert thresholds (seed 004 §10.3 checkAlerts), once per deployment, type and 5-minute window.
    const thresholds = (deployment.monitoring as { alertThresholds?: { errorRate?: number; avgLatencyMs?: number } }).alertThresholds ?? {};
    const windowKey = new Date(metricBucket(now) * 300_000).toISOString();
    const alerts: Promise<void>[] = [];
    if (metrics.requests > 0 && metrics.errors / metrics.requests > (thresholds.errorRate ?? 0.05)) {
      alerts.push(raiseAlert(config, deployment, { deploymentId: deployment.id, type: 'reported_error_rate', severity: 'critical', windowKey, message: `Reported error rate ${Math.round((metrics.errors / metrics.requests) * 100)}%.`, data: { requests: metrics.requests, errors: metrics.errors } }));
    }
    if (metrics.latency !== undefined && metrics.latency > (thresholds.avgLatencyMs ?? 3000)) {
      alerts.push(raiseAlert(config, deployment, { deploymentId: deployment.id, type: 'reported_latency', severity: 'warning', windowKey, message: `Reported average latency ${Math.round(metrics.latency)} ms.`, data: { latency: metrics.latency } }));
    }
    c.executionCtx.waitUntil(Promise.allSettled(alerts));

    const over = decision.windows.filter((w) => w.used >= w.limit).sort((a, b) => b.resetAt - a.resetAt)[0];
    if (over) {
      const retryAfter = Math.max(1, Math.ceil((over.resetAt - now) / 1000));
      c.header('retry-after', String(retryAfter));
      return c.json({ error: { message: `Rate limit exceeded (${over.name})`, type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null }, retryAfter, recorded }, 429);
    }
    return c.json({ success: true, recorded });
  })
  /** POST /alerts/evaluate (admin) — runs the alert policies for the last complete 5-minute window now. */
  .post('/alerts/evaluate', adminAuth(), async (c) => {
    const config = loadConfig(c.env);
    return c.json({ fired: await evaluateAlertPolicies(config, redisClient(config), redisKeys(config.REDIS_KEY_PREFIX)) });
  })
  /** POST /drain (admin) — moves buffered usage events into Postgres now; answers how many. */
  .post('/drain', adminAuth(), async (c) => {
    const config = loadConfig(c.env);
    return c.json(await drainUsage(config, redisClient(config), redisKeys(config.REDIS_KEY_PREFIX)));
  });

/** Every minute: drain the usage buffer, then evaluate the alert policies of the last 5 minutes. */
export async function runMinuteJobs(env: Bindings, now = Date.now()): Promise<void> {
  const config = loadConfig(env);
  const redis = redisClient(config);
  const keys = redisKeys(config.REDIS_KEY_PREFIX);
  try {
    const drained = await drainUsage(config, redis, keys);
    if (drained.moved) log('info', 'usage.drained', { ...drained });
  } catch (err) {
    // Postgres down: the events stay buffered in Redis and the next run tries again.
    log('warn', 'usage.drain_failed', { error: (err as Error).message });
  }
  try {
    const fired = await evaluateAlertPolicies(config, redis, keys, now);
    if (fired) log('info', 'alerts.evaluated', { fired });
  } catch (err) {
    log('warn', 'alerts.evaluation_failed', { error: (err as Error).message });
  }
}
