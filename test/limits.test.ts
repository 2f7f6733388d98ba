import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { fakeProviderBindings, startStack, type Stack } from '../local/stack';
import { fakeScope } from './fakes';
import { createDeployment, eventually, fn, proxyChat, sql, stack, type ProxyCallOptions } from './helpers';

const hello = [{ role: 'user' as const, content: 'Say hello.' }];

const chat = (key: string, body: object = {}, opts?: ProxyCallOptions) => proxyChat(key, { model: 'flash', messages: hello, ...body }, opts);

async function check(key: string, deploymentId: string, body: object = {}) {
  const res = await fetch(fn('check-rate-limit', '/'), {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ deploymentId, ...body }),
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

/** Minute windows reset on the minute: start a minute-bounded test well inside one. */
async function awayFromMinuteBoundary() {
  const s = new Date().getUTCSeconds();
  if (s >= 35) await new Promise((r) => setTimeout(r, (61 - s) * 1000));
}

describe('acceptance: requestsPerMinute 5 under 8 concurrent calls', () => {
  it('answers exactly 5 successes and 3 × 429 with Retry-After ≥ 1, and headers that agree with check-rate-limit', async () => {
    const { deployment, keys } = await createDeployment({ type: 'public', rateLimits: { requestsPerMinute: 5 } });
    await awayFromMinuteBoundary();
    const results = await Promise.all(Array.from({ length: 8 }, () => chat(keys.secret)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(5);
    const refused = results.filter((r) => r.status === 429);
    expect(refused).toHaveLength(3);
    for (const r of refused) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(r.json.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'rate_limit_error' });
      expect(r.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    }
    const ok = results.find((r) => r.status === 200)!;
    expect(ok.headers.get('x-ratelimit-limit-requests')).toBe('5');
    expect(ok.headers.get('ratelimit-policy')).toContain('"requests-minute";q=5;w=60');
    expect(ok.headers.get('x-ratelimit-limit-tokens')).toBe('50000');
    const dry = await check(keys.secret, deployment.id, { dryRun: true });
    expect(dry.json).toMatchObject({ allowed: false, reason: 'minute_limit' });
    expect(dry.json.limits['requests-minute']).toMatchObject({ limit: 5, used: 5, remaining: 0 });
    expect(dry.headers.get('x-ratelimit-remaining-requests')).toBe('0');
  });
});

describe('exactness across two Miniflare instances', () => {
  let second: Stack | undefined;
  afterAll(async () => {
    await second?.stop();
  });

  it('64 concurrent calls spread over two instances against a limit of 20 give exactly 20 successes', async () => {
    second = await startStack({
      port: 0, databaseUrl: stack.databaseUrl, redisUrl: stack.redisUrl, keyPrefix: stack.keyPrefix, adminKey: stack.adminKey, quiet: true,
      bindings: fakeProviderBindings(stack.fakeProvidersUrl),
    });
    const { keys } = await createDeployment({ type: 'internal', rateLimits: { requestsPerMinute: 20 } });
    // Warm each instance's key cache (GET /v1/models takes nothing from the limits), so all 64 calls
    // race on the limiter and none waits on Postgres.
    for (const base of [stack.url, second.url]) {
      expect((await fetch(`${base}/functions/v1/inference-proxy/v1/models`, { headers: { authorization: `Bearer ${keys.secret}` } })).status).toBe(200);
    }
    await awayFromMinuteBoundary();
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) => chat(keys.secret, {}, { base: i % 2 ? second!.url : stack.url })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(20);
    expect(results.filter((r) => r.status === 429)).toHaveLength(44);
  }, 60_000);
});

describe('budgets', () => {
  it('402 budget_exhausted when the daily token budget is spent', async () => {
    const { keys } = await createDeployment({ type: 'internal', rateLimits: { tokensPerDay: 120, tokensPerRequest: 100 } });
    let r = await chat(keys.secret, { max_tokens: 10 });
    let calls = 0;
    while (r.status === 200 && calls++ < 20) r = await chat(keys.secret, { max_tokens: 10 });
    expect(r.status).toBe(402);
    expect(r.json.error).toMatchObject({ code: 'budget_exhausted' });
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('serves on the cheapest tier instead when onBudgetExhausted is "downgrade"', async () => {
    const { keys } = await createDeployment({ type: 'internal', rateLimits: { tokensPerDay: 100, tokensPerRequest: 90 }, budgets: { onBudgetExhausted: 'downgrade' } });
    let r = await chat(keys.secret, { model: 'pro', max_tokens: 20 });
    let calls = 0;
    while (!r.headers.get('x-inference-edge-budget') && calls++ < 20) r = await chat(keys.secret, { model: 'pro', max_tokens: 20 });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-budget')).toBe('downgraded');
    expect(r.headers.get('x-inference-edge-model')).toBe('mock-lite');
  });

  it('a daily cost budget holds: 402 once the estimated cost would pass it', async () => {
    // mock-pro costs 1.25 + 10 USD per million tokens: ~60 tokens out is ~0.0006 USD.
    const { keys } = await createDeployment({ type: 'internal', budgets: { costPerDayUsd: 0.002 } });
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await chat(keys.secret, { model: 'pro', max_tokens: 60 })).status);
    expect(statuses).toContain(402);
    expect(statuses.indexOf(402)).toBeGreaterThan(0);
  });

  it('a failed provider call gives its reservation back; settle replaces the estimate with real usage', async () => {
    const f = fakeScope();
    const { deployment, keys } = await createDeployment({
      type: 'internal',
      rateLimits: { tokensPerDay: 100000 },
      routing: { tiers: { main: { targets: [{ provider: 'openai', model: f.model('m') }] } }, retry: { attempts: 0 }, downgradeOnFailure: false },
    });
    const tokensUsed = async () => (await check(keys.secret, deployment.id, { dryRun: true })).json.limits['tokens-day'].used as number;
    await f.control('openai', 'm', { fault: { kind: 'status', status: 500 } });
    expect((await chat(keys.secret, { model: 'main', max_tokens: 500 })).status).toBe(502);
    await eventually(async () => expect(await tokensUsed()).toBe(0)); // the release runs after the response
    await f.control('openai', 'm', {});
    const ok = await chat(keys.secret, { model: 'main', max_tokens: 500 });
    expect(ok.status).toBe(200);
    await eventually(async () => expect(await tokensUsed()).toBe(ok.json.usage.total_tokens)); // settle replaces the estimate
  });
});

describe('per-user, per-session and hybrid roles', () => {
  it('caps one end user without affecting another', async () => {
    const { keys } = await createDeployment({ type: 'internal', rateLimits: { userRequestsPerMinute: 2 } });
    await awayFromMinuteBoundary();
    const alice = [await chat(keys.secret, { user: 'alice' }), await chat(keys.secret, { user: 'alice' }), await chat(keys.secret, { user: 'alice' })];
    expect(alice.map((r) => r.status)).toEqual([200, 200, 429]);
    expect(alice[2]!.json.error.message).toMatch(/user limit/);
    expect((await chat(keys.secret, { user: 'bob' })).status).toBe(200);
  });

  it('caps a session per day', async () => {
    const { keys } = await createDeployment({ type: 'internal', rateLimits: { sessionRequestsPerDay: 1 } });
    expect((await chat(keys.secret, {}, { headers: { 'x-session-id': 's-1' } })).status).toBe(200);
    const r = await chat(keys.secret, {}, { headers: { 'x-session-id': 's-1' } });
    expect(r.status).toBe(429);
    expect(r.json.error.message).toMatch(/session limit/);
  });

  it('a hybrid deployment takes its tier from a secret-key caller\'s role', async () => {
    const { keys } = await createDeployment({ type: 'hybrid', allowedOrigins: ['https://app.example.com'] });
    const asPublic = await chat(keys.secret);
    expect(asPublic.headers.get('x-ratelimit-limit-requests')).toBe('10');
    const asInternal = await chat(keys.secret, {}, { headers: { 'x-inference-edge-role': 'internal' } });
    expect(asInternal.headers.get('x-ratelimit-limit-requests')).toBe('60');
    const browser = await chat(keys.publishable, {}, { headers: { 'x-inference-edge-role': 'internal', origin: 'https://app.example.com' } });
    expect(browser.status).toBe(403);
  });
});

describe('check-rate-limit', () => {
  it('consumes one request per allowed check, none with dryRun, and refuses other deployments\' keys', async () => {
    const { deployment, keys } = await createDeployment({ type: 'internal', rateLimits: { requestsPerMinute: 2 } });
    await awayFromMinuteBoundary();
    expect((await check(keys.secret, deployment.id, { dryRun: true })).json.allowed).toBe(true);
    expect((await check(keys.secret, deployment.id)).json).toMatchObject({ allowed: true, limits: { 'requests-minute': { used: 1, remaining: 1 } } });
    expect((await check(keys.secret, deployment.id)).json.allowed).toBe(true);
    const third = await check(keys.secret, deployment.id);
    expect(third.json).toMatchObject({ allowed: false, reason: 'minute_limit' });
    expect(third.json.retryAfter).toBeGreaterThanOrEqual(1);
    expect(third.headers.get('retry-after')).toBe(String(third.json.retryAfter));
    expect((await check(keys.secret, deployment.id, { tokens: 999999 })).json).toMatchObject({ allowed: false, reason: 'tokens_per_request' });
    const other = await createDeployment({ type: 'internal' });
    expect((await check(other.keys.secret, deployment.id)).status).toBe(403);
    expect((await check(keys.publishable, deployment.id)).status).toBe(403);
    const bad = await fetch(fn('check-rate-limit', '/'), { method: 'POST', headers: { authorization: `Bearer ${keys.secret}`, 'content-type': 'application/json' }, body: '{"deploymentId":"nope"}' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.param).toBe('deploymentId');
  });
});

describe('budget warnings', () => {
  it('fire once per window and threshold: an alerts row and a webhook POST', async () => {
    const received: unknown[] = [];
    const hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push(JSON.parse(body));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
      const { deployment, keys } = await createDeployment({ type: 'internal', rateLimits: { tokensPerDay: 400, tokensPerRequest: 200 }, monitoring: { webhookUrl: url } });
      for (let i = 0; i < 12; i++) await chat(keys.secret, { max_tokens: 30 });
      const db = await sql();
      const alerts = async () => (await db.query('select type, severity from alerts where deployment_id = $1 order by id', [deployment.id])).rows;
      await eventually(async () => expect((await alerts()).map((r) => r.type)).toContain('budget_tokens_day_80'));
      await eventually(async () => expect(received.length).toBe((await alerts()).length)); // every alert delivered
      const rows = await alerts();
      const types = rows.map((r) => r.type);
      expect(new Set(types).size).toBe(types.length); // once each
      expect(received.length).toBe(rows.length);
      expect(JSON.stringify(received[0])).toMatch(/token budget/);
    } finally {
      hook.close();
    }
  });
});
