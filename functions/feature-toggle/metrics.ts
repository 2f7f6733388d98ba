import { Hono } from 'hono';
import { failedSecretThrottle } from '../../shared/admin-auth';
import { constantTimeEqual } from '../../shared/api-keys';
import type { AppEnv } from '../../shared/context';
import { loadConfig } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { renderMetrics } from '../../shared/metrics';
import { redisClient, redisKeys } from '../../shared/redis';

/**
 * GET /metrics: the cluster's counters in Prometheus' text format. Scraped with
 * `Authorization: Bearer <METRICS_API_KEY>` (a read-only token, so Prometheus never holds the admin
 * key) or the admin key itself.
 */
export const metricsRoutes = new Hono<AppEnv>().get('/metrics', async (c) => {
  const config = loadConfig(c.env);
  const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
  if (!m) throw new ApiError(401, 'missing_metrics_key', 'Send "Authorization: Bearer <METRICS_API_KEY>" (or the admin key).');
  const throttle = failedSecretThrottle(c, config);
  await throttle.assertAllowed();
  const [metricsKey, adminKey] = await Promise.all([
    config.METRICS_API_KEY ? constantTimeEqual(m[1]!, config.METRICS_API_KEY) : false,
    constantTimeEqual(m[1]!, config.ADMIN_API_KEY),
  ]);
  if (!metricsKey && !adminKey) {
    await throttle.recordFailure();
    throw new ApiError(401, 'invalid_metrics_key', 'The metrics key is not valid.');
  }
  const body = await renderMetrics(c.env, redisClient(config), redisKeys(config.REDIS_KEY_PREFIX));
  return c.body(body, 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' });
});
