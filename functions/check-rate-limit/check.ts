import { Hono } from 'hono';
import * as z from 'zod/mini';
import type { AppEnv } from '../../shared/context';
import { loadConfig } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { authenticate } from '../../shared/key-auth';
import { effectiveLimits, hashId, limitHeaders, planChecks, reserve, type WindowState } from '../../shared/limiter';
import { log } from '../../shared/log';
import { redisClient, redisKeys } from '../../shared/redis';
import { parseJson } from '../../shared/validate';

const bodySchema = z.strictObject({
  deploymentId: z.uuid({ message: 'must be the deployment id (a UUID)' }),
  userId: z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
  sessionId: z.optional(z.string().check(z.minLength(1), z.maxLength(256))),
  /** Tokens the call is expected to use (prompt + answer); counted against token budgets. */
  tokens: z.optional(z.int().check(z.gte(0), z.lte(10_000_000))),
  /** Check without consuming anything. */
  dryRun: z.optional(z.boolean()),
  /** A hybrid deployment's tier for this caller. */
  role: z.optional(z.enum(['public', 'internal'])),
});

const summary = (windows: WindowState[]) =>
  Object.fromEntries(windows.map((w) => [w.name, { limit: w.limit, used: w.used, remaining: w.remaining, reset: new Date(w.resetAt).toISOString(), resetInSeconds: Math.max(0, Math.ceil((w.resetAt - Date.now()) / 1000)) }]));

/**
 * POST / — the proxy's limiter for apps that call providers themselves (seed 004 §10.4). Without
 * dryRun an allowed check consumes one request (and `tokens`), with it nothing is consumed.
 * Always 200 with `allowed`; a refusal also carries Retry-After.
 */
export const checkRoutes = new Hono<AppEnv>().post('/', async (c) => {
  const now = Date.now();
  const body = await parseJson(c, bodySchema);
  const { deployment } = await authenticate(c, { kinds: ['secret'] });
  if (deployment.id !== body.deploymentId) {
    throw new ApiError(403, 'deployment_mismatch', 'The key belongs to another deployment than deploymentId.', 'deploymentId');
  }
  const config = loadConfig(c.env);
  const limits = effectiveLimits(deployment, body.role);
  const tokens = body.tokens ?? 0;
  if (limits.tokensPerRequest !== undefined && tokens > limits.tokensPerRequest) {
    return c.json({ allowed: false, reason: 'tokens_per_request', retryAfter: 0, limits: { tokensPerRequest: { limit: limits.tokensPerRequest, requested: tokens } } });
  }
  const checks = planChecks(deployment, limits, {
    requests: 1,
    tokens,
    costUsd: 0,
    userId: body.userId ? hashId(body.userId) : undefined,
    sessionId: body.sessionId ? hashId(body.sessionId) : undefined,
  }, redisKeys(config.REDIS_KEY_PREFIX), now);
  let decision;
  try {
    decision = (await reserve(redisClient(config), checks, now, body.dryRun ? 'check' : 'reserve')).decision;
  } catch (err) {
    log('warn', 'limiter.degraded', { deploymentId: deployment.id, error: (err as Error).message });
    throw new ApiError(503, 'limiter_unavailable', 'Usage limits cannot be checked right now; try again shortly.', null, { 'retry-after': '5' });
  }
  for (const [k, v] of Object.entries(limitHeaders(decision.windows, now))) c.header(k, v);
  if (!decision.allowed) {
    c.header('retry-after', String(decision.retryAfter));
    return c.json({ allowed: false, reason: decision.reason, retryAfter: decision.retryAfter, limits: summary(decision.windows) });
  }
  return c.json({ allowed: true, dryRun: Boolean(body.dryRun), limits: summary(decision.windows) });
});
