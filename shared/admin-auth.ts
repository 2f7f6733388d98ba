import type { Context, MiddlewareHandler } from 'hono';
import { bearerToken, constantTimeEqual } from './api-keys';
import type { AppEnv } from './context';
import { loadConfig, type Config } from './env';
import { ApiError } from './errors';
import { hashId } from './limiter';
import { log } from './log';
import { redisClient, redisKeys } from './redis';

const ACTOR_PATTERN = /^[\w.@+:-]{1,100}$/;

/** Failed admin-secret checks a client address may make per minute before it is refused outright. */
export const MAX_FAILED_ATTEMPTS_PER_MINUTE = 20;

/**
 * Guessing the admin (or metrics) key is throttled per client address (`CF-Connecting-IP`, set by
 * Cloudflare) and minute, in Redis so every isolate shares the count. While throttled even the right
 * key is refused, or the throttle would be an oracle. Redis unreachable: no throttle (the key is
 * still checked), and it is logged.
 */
export function failedSecretThrottle(c: Context<AppEnv>, config: Config) {
  const redis = redisClient(config);
  const minute = Math.floor(Date.now() / 60_000);
  const key = redisKeys(config.REDIS_KEY_PREFIX).adminFailures(hashId(c.req.header('cf-connecting-ip') ?? 'unknown'), minute);
  return {
    async assertAllowed() {
      const count = Number((await redis.get<string>(key).catch((err: Error) => log('warn', 'admin_throttle.unavailable', { error: err.message }))) ?? 0);
      if (count >= MAX_FAILED_ATTEMPTS_PER_MINUTE) {
        const retryAfter = String(Math.max(1, Math.ceil(((minute + 1) * 60_000 - Date.now()) / 1000)));
        throw new ApiError(429, 'too_many_failed_attempts', 'Too many failed key checks from this address; try again in a minute.', null, { 'retry-after': retryAfter });
      }
    },
    async recordFailure() {
      const p = redis.pipeline();
      p.incr(key);
      p.expire(key, 120);
      await p.exec().catch((err: Error) => log('warn', 'admin_throttle.unavailable', { error: err.message }));
    },
  };
}

/**
 * `Authorization: Bearer <secret>` against the secrets a route accepts, each compared in constant
 * time, with failed guesses throttled. `name` words the errors: `missing_<name>_key` with `hint`,
 * `invalid_<name>_key`.
 */
export async function assertBearerSecret(c: Context<AppEnv>, config: Config, name: string, accepted: (string | undefined)[], hint: string): Promise<void> {
  const token = bearerToken(c.req.header('authorization'));
  if (!token) throw new ApiError(401, `missing_${name}_key`, hint);
  const throttle = failedSecretThrottle(c, config);
  await throttle.assertAllowed();
  const matches = await Promise.all(accepted.filter((s): s is string => Boolean(s)).map((s) => constantTimeEqual(token, s)));
  if (!matches.includes(true)) {
    await throttle.recordFailure();
    throw new ApiError(401, `invalid_${name}_key`, `The ${name} key is not valid.`);
  }
}

/**
 * `Authorization: Bearer <ADMIN_API_KEY>` (see assertBearerSecret). The optional
 * `X-Inference-Edge-Actor` header (say, the dashboard user's email) names who acts in the audit log.
 */
export const adminAuth = (): MiddlewareHandler<AppEnv> =>
  async function adminAuth(c, next) {
    const config = loadConfig(c.env);
    await assertBearerSecret(c, config, 'admin', [config.ADMIN_API_KEY], 'Send the admin key as "Authorization: Bearer <ADMIN_API_KEY>".');
    const actor = c.req.header('x-inference-edge-actor');
    if (actor !== undefined && !ACTOR_PATTERN.test(actor)) {
      throw new ApiError(400, 'invalid_actor', 'X-Inference-Edge-Actor must be 1-100 characters of letters, digits and ._@+:-', 'X-Inference-Edge-Actor');
    }
    c.set('actor', actor ? `admin:${actor}` : 'admin');
    await next();
  };
