import { Hono } from 'hono';
import { assertBearerSecret } from '../../shared/admin-auth';
import type { AppEnv } from '../../shared/context';
import { loadConfig } from '../../shared/env';
import { renderMetrics } from '../../shared/metrics';
import { redisClient, redisKeys } from '../../shared/redis';

/**
 * GET /metrics: the cluster's counters in Prometheus' text format. Scraped with
 * `Authorization: Bearer <METRICS_API_KEY>` (a read-only token, so Prometheus never holds the admin
 * key) or the admin key itself.
 */
export const metricsRoutes = new Hono<AppEnv>().get('/metrics', async (c) => {
  const config = loadConfig(c.env);
  await assertBearerSecret(c, config, 'metrics', [config.METRICS_API_KEY, config.ADMIN_API_KEY], 'Send "Authorization: Bearer <METRICS_API_KEY>" (or the admin key).');
  const body = await renderMetrics(c.env, redisClient(config), redisKeys(config.REDIS_KEY_PREFIX));
  return c.body(body, 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' });
});
