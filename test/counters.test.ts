import { Redis as Upstash } from '@upstash/redis';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { startUpstashStandIn } from '../local/upstash-standin';
import { CounterBatch } from '../shared/counters';
import { eventually, stack } from './helpers';

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

  it('is one command in one round trip however many writes it carries, and nothing at all when empty', async () => {
    // A stand-in of this test's own (on the run's Redis), so its counts are this test's alone.
    const own = await startUpstashStandIn(stack.redisUrl, 'counters-test-token');
    try {
      const client = new Upstash({ url: own.url, token: own.token, automaticDeserialization: false, enableTelemetry: false });
      const stats = async () => (await (await fetch(`${own.url}/_stats`, { headers: { authorization: `Bearer ${own.token}` } })).json()) as { requests: number; commands: number; byCommand: Record<string, number> };
      await eventually(async () => expect(await client.ping()).toBe('PONG')); // its Redis connection is up
      const key = k('many');
      const batch = new CounterBatch();
      for (let i = 0; i < 25; i++) batch.hincrby(key, 'n', 1);
      await batch.exec(client); // a Redis that may not know the script yet: EVALSHA, then EVAL
      const beforeEmpty = await stats();
      await new CounterBatch().exec(client);
      const first = await stats();
      expect(first).toEqual(beforeEmpty); // an empty batch sends nothing
      const again = new CounterBatch();
      for (let i = 0; i < 25; i++) again.hincrby(key, 'n', 1);
      await again.exec(client);
      const second = await stats();
      expect(second.requests - first.requests).toBe(1);
      expect(second.commands - first.commands).toBe(1);
      expect(second.byCommand.EVALSHA! - (first.byCommand.EVALSHA ?? 0)).toBe(1);
      expect(await redis.hget(key, 'n')).toBe('50');
    } finally {
      await own.stop();
    }
  });
});
