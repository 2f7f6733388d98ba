import type { Redis } from '@upstash/redis/cloudflare';

/** A Lua script with its SHA-1 pinned (a unit test checks the pin), run as EVALSHA with EVAL fallback. */
export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha1: string;
}

export async function runScript<T>(redis: Redis, script: LuaScript, keys: string[], args: (string | number)[]): Promise<T> {
  const argv = args.map(String);
  try {
    return (await redis.evalsha(script.sha1, keys, argv)) as T;
  } catch (err) {
    if (!String((err as Error).message).includes('NOSCRIPT')) throw err;
    return (await redis.eval(script.source, keys, argv)) as T;
  }
}

/** SET key to ARGV[1] only if it is greater than the stored number: versions never go back. */
export const SET_IF_GREATER: LuaScript = {
  name: 'set_if_greater',
  source: `local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[1])
if new > cur then redis.call('SET', KEYS[1], ARGV[1]) return new end
return cur`,
  sha1: '2bd4adc99a7897d3883ded11b10ec663c935f487',
};
