import { describe, expect, it } from 'vitest';
import { FUNCTION_NAMES } from '../local/functions';
import { startStack } from '../local/stack';
import { fn, stack } from './helpers';

describe('health on all five functions', () => {
  it.each(FUNCTION_NAMES)('%s: /health, /health/ready and /health/dependencies', async (name) => {
    const live = await fetch(fn(name, '/health'));
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: 'ok', function: name, version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(live.headers.get('x-request-id')).toBeTruthy();

    const ready = await fetch(fn(name, '/health/ready'));
    expect(ready.status).toBe(200);
    expect((await ready.json()).status).toBe('ready');

    const deps = await (await fetch(fn(name, '/health/dependencies'))).json();
    expect(deps.status).toBe('ok');
    for (const d of ['postgres', 'redis']) {
      expect(deps.dependencies[d]).toEqual({ status: 'ok', latencyMs: expect.any(Number) });
    }
    // The proxy also says which providers it can use (the test stack gives every one a fake key).
    if (name === 'inference-proxy') expect(deps.providers).toMatchObject({ mock: 'available', openai: 'available', anthropic: 'available', gemini: 'available' });
    else expect(deps.providers).toBeUndefined();
  });

  it('keeps a caller-sent request id and answers unknown routes and functions in the error shape', async () => {
    const r = await fetch(fn('inference-proxy', '/health'), { headers: { 'x-request-id': 'trace-abc-123' } });
    expect(r.headers.get('x-request-id')).toBe('trace-abc-123');
    const missing = await fetch(fn('check-rate-limit', '/nope'));
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('route_not_found');
    const nofn = await fetch(`${stack.url}/functions/v1/no-such-function/health`);
    expect(nofn.status).toBe(404);
    expect((await nofn.json()).error.code).toBe('function_not_found');
  });
});

describe('readiness when Redis goes away', () => {
  it('turns 503 naming redis when the private redis-server this test started is stopped', async () => {
    // A stack of its own with a private redis-server (no redisUrl): stopping it touches nothing shared.
    const own = await startStack({
      port: 0,
      databaseUrl: stack.externalDatabaseUrl ?? undefined,
      freshDatabase: Boolean(stack.externalDatabaseUrl),
      quiet: true,
    });
    try {
      expect(own.redis.process).not.toBeNull();
      expect((await fetch(`${own.functionUrl('feature-toggle')}/health/ready`)).status).toBe(200);
      await own.redis.stop();
      for (const name of FUNCTION_NAMES) {
        const res = await fetch(`${own.functionUrl(name)}/health/ready`);
        expect(res.status, name).toBe(503);
        const body = await res.json();
        expect(body.down).toEqual(['redis']);
        expect(body.error.message).toContain('redis');
      }
      const deps = await (await fetch(`${own.functionUrl('inference-proxy')}/health/dependencies`)).json();
      expect(deps.status).toBe('degraded');
      expect(deps.dependencies.redis.status).toBe('down');
      expect(deps.dependencies.postgres.status).toBe('ok');
      // Liveness is about the function, not its dependencies.
      expect((await fetch(`${own.functionUrl('inference-proxy')}/health`)).status).toBe(200);
    } finally {
      await own.stop();
    }
  }, 60_000);
});
