import { Hono } from 'hono';
import * as z from 'zod/mini';
import type { AppEnv } from '../../shared/context';
import { rpc } from '../../shared/db';
import { loadConfig } from '../../shared/env';
import { envSwitchOff, globalSwitchOff } from '../../shared/kill-switch';
import { redisClient, redisKeys } from '../../shared/redis';
import { parseJson } from '../../shared/validate';

const bodySchema = z.strictObject({
  enabled: z.boolean(),
  reason: z.optional(z.string().check(z.maxLength(500))),
});

/**
 * The global kill switch (seed 000 `inference.enabled`): a Redis key every proxy request reads in its
 * one round trip, so flipping it takes effect on the next request everywhere. Audited in Postgres.
 */
export const killSwitchRoutes = new Hono<AppEnv>()
  .get('/kill-switch', async (c) => {
    const config = loadConfig(c.env);
    const value = await redisClient(config).get<string>(redisKeys(config.REDIS_KEY_PREFIX).globalKillSwitch());
    return c.json({ enabled: !globalSwitchOff(c.env, value), redis: value === 'off' ? 'off' : 'on', env: envSwitchOff(c.env) ? 'off' : 'on' });
  })
  .post('/kill-switch', async (c) => {
    const config = loadConfig(c.env);
    const { enabled, reason } = await parseJson(c, bodySchema);
    const redis = redisClient(config);
    const key = redisKeys(config.REDIS_KEY_PREFIX).globalKillSwitch();
    const before = (await redis.get<string>(key)) !== 'off';
    if (enabled) await redis.del(key);
    else await redis.set(key, 'off');
    const audit = await rpc(config, 'record_audit_event', {
      p_action: 'kill_switch.global',
      p_actor: c.get('actor'),
      p_diff: { 'inference.enabled': { old: before, new: enabled }, ...(reason ? { reason } : {}) },
    });
    return c.json({ enabled, audit });
  });
