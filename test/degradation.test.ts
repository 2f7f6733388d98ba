import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../local/stack';
import { stack } from './helpers';

/**
 * Graceful degradation, on a stack of its own: it stops its own private redis-server and its own
 * Supabase stand-in (what a Worker sees when Postgres is down), never anything shared.
 */
const INTERNAL_SK = 'sk_test_demoInternalAssist00000000000000';
const PUBLIC_SK = 'sk_test_demoPublicWidget0000000000000000';
let own: Stack;

beforeAll(async () => {
  own = await startStack({
    port: 0,
    databaseUrl: stack.externalDatabaseUrl ?? undefined,
    freshDatabase: Boolean(stack.externalDatabaseUrl),
    quiet: true,
  });
}, 60_000);
afterAll(async () => {
  await own?.stop();
});

const chat = (body: object = {}, key = INTERNAL_SK) =>
  fetch(`${own.functionUrl('inference-proxy')}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'flash', messages: [{ role: 'user', content: 'hi' }], ...body }),
  });

describe('when Postgres is unreachable', () => {
  it('cached config keeps serving, the admin API says the database is unavailable, readiness names postgres', async () => {
    expect((await chat()).status).toBe(200); // warms the isolate and Redis caches
    expect((await chat({ model: 'flash-lite' }, PUBLIC_SK)).status).toBe(200);
    await own.supabase.stop();
    const r = await chat();
    expect(r.status).toBe(200);
    expect((await chat({ stream: true })).status).toBe(200);
    const adminRes = await fetch(`${own.functionUrl('feature-toggle')}/deployments`, { headers: { authorization: `Bearer ${own.adminKey}` } });
    expect(adminRes.status).toBe(503);
    expect((await adminRes.json()).error.code).toBe('database_unavailable');
    const ready = await fetch(`${own.functionUrl('inference-proxy')}/health/ready`);
    expect(ready.status).toBe(503);
    expect((await ready.json()).down).toEqual(['postgres']);
    const deps = await (await fetch(`${own.functionUrl('inference-proxy')}/health/dependencies`)).json();
    expect(deps.status).toBe('degraded');
  });
});

describe('when Redis is unreachable', () => {
  it('a warm key keeps serving with per-isolate state, and the response says so', async () => {
    await own.redis.stop();
    const r = await chat();
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-degraded')).toBe('redis');
    const body = await r.json();
    expect(body.choices[0].message.content).toMatch(/deterministic/);
  });

  it('limits: an internal deployment fails open (with an emergency cap), a public one fails closed', async () => {
    const internal = await chat();
    expect(internal.status).toBe(200);
    expect(internal.headers.get('x-inference-edge-limiter')).toBe('degraded');
    const pub = await chat({ model: 'flash-lite' }, PUBLIC_SK);
    expect(pub.status).toBe(503);
    expect(pub.headers.get('x-inference-edge-limiter')).toBe('degraded');
    expect((await pub.json()).error.code).toBe('limiter_unavailable');
    // The emergency limiter still caps bursts at the deployment's requests per minute (60, per isolate).
    const burst = await Promise.all(Array.from({ length: 70 }, () => chat().then((r) => r.status)));
    expect(burst.filter((s) => s === 429).length).toBeGreaterThan(0);
  });
});
