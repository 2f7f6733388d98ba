import { Redis as Upstash } from '@upstash/redis';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { CounterBatch } from '../shared/counters';
import { stack } from './helpers';

/** The post-response batch script against the real Redis of this run, through the Upstash client. */
const upstash = new Upstash({ url: stack.upstashUrl, token: stack.upstashToken, automaticDeserialization: false, enableTelemetry: false });
const redis = new Redis(stack.redisUrl);
afterAll(() => redis.quit());
const k = (name: string) => `${stack.keyPrefix}_cnt:${name}:${Math.random().toString(36).slice(2, 8)}`;

describe('CounterBatch (one script call)', () => {
  it('applies every kind of write, in order, with keys used several times', async () => {
    const [h, c, s, x, w] = [k('h'), k('c'), k('s'), k('x'), k('w')];
    await new CounterBatch()
      .hincrby(h, 'req|mock|m|200', 1)
      .hincrby(h, 'req|mock|m|200', 2)
      .hincrby(h, 'lat_sum_ms', 41.6) // rounded: HINCRBY takes integers
      .incrby(c, 5)
      .incrby(c, -2)
      .expire(c, 90)
      .incrInWindow(w, 60_000)
      .incrInWindow(w, 60_000)
      .sadd(s, 'dep-1')
      .sadd(s, 'dep-1')
      .xadd(x, 1000, 'e', '{"request_id":"r1"}')
      .xadd(x, 1000, 'e', '{"request_id":"r2"}')
      .exec(upstash);
    expect(await redis.hgetall(h)).toEqual({ 'req|mock|m|200': '3', lat_sum_ms: '42' });
    expect(await redis.get(c)).toBe('3');
    const ttl = await redis.ttl(c);
    expect(ttl).toBeGreaterThan(80);
    expect(ttl).toBeLessThanOrEqual(90);
    expect(await redis.smembers(s)).toEqual(['dep-1']);
    expect(await redis.get(w)).toBe('2');
    const pttl = await redis.pttl(w); // set once, by the first increment
    expect(pttl).toBeGreaterThan(50_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect((await redis.xrange(x, '-', '+')).map(([, f]) => f)).toEqual([['e', '{"request_id":"r1"}'], ['e', '{"request_id":"r2"}']]);
  });

  it('is one script call however many writes it carries, and nothing at all when empty', async () => {
    const scriptCalls = async () => {
      const stats = await redis.info('commandstats');
      return ['evalsha', 'eval'].reduce((sum, cmd) => sum + Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0), 0);
    };
    const hincrbyCalls = async () => Number(/cmdstat_hincrby:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
    const key = k('many');
    const [scriptsBefore, hincrbyBefore] = [await scriptCalls(), await hincrbyCalls()];
    const batch = new CounterBatch();
    for (let i = 0; i < 25; i++) batch.hincrby(key, 'n', 1);
    await batch.exec(upstash);
    await new CounterBatch().exec(upstash); // empty: sends nothing
    expect(await redis.hget(key, 'n')).toBe('25');
    // The 25 HINCRBYs ran inside one script call. (A Redis shared with other runs may see their calls too.)
    if (!process.env.REDIS_URL) {
      expect(await scriptCalls()).toBe(scriptsBefore + 1);
      expect(await hincrbyCalls()).toBe(hincrbyBefore + 25);
    } else expect(await scriptCalls()).toBeGreaterThanOrEqual(scriptsBefore + 1);
  });
});
