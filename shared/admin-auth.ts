import type { MiddlewareHandler } from 'hono';
import { constantTimeEqual } from './api-keys';
import type { AppEnv } from './context';
import { loadConfig } from './env';
import { ApiError } from './errors';

const ACTOR_PATTERN = /^[\w.@+:-]{1,100}$/;

/**
 * `Authorization: Bearer <ADMIN_API_KEY>`, compared in constant time. The optional
 * `X-Inference-Edge-Actor` header (say, the dashboard user's email) names who acts in the audit log.
 */
export const adminAuth = (): MiddlewareHandler<AppEnv> =>
  async function adminAuth(c, next) {
    const config = loadConfig(c.env);
    const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header('authorization') ?? '');
    if (!m) throw new ApiError(401, 'missing_admin_key', 'Send the admin key as "Authorization: Bearer <ADMIN_API_KEY>".');
    if (!(await constantTimeEqual(m[1]!, config.ADMIN_API_KEY))) {
      throw new ApiError(401, 'invalid_admin_key', 'The admin key is not valid.');
    }
    const actor = c.req.header('x-inference-edge-actor');
    if (actor !== undefined && !ACTOR_PATTERN.test(actor)) {
      throw new ApiError(400, 'invalid_actor', 'X-Inference-Edge-Actor must be 1-100 characters of letters, digits and ._@+:-', 'X-Inference-Edge-Actor');
    }
    c.set('actor', actor ? `admin:${actor}` : 'admin');
    await next();
  };
