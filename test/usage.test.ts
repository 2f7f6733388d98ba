import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createDeployment, drainAll, eventually, fn, proxyChat, sql, stack } from './helpers';

const admin = { authorization: `Bearer ${stack.adminKey}` };
const redis = new Redis(stack.redisUrl);
afterAll(() => redis.quit());

const chat = (key: string, body: object = {}, headers: Record<string, string> = {}) => proxyChat(key, { model: 'flash', messages: [{ role: 'user', content: 'Say hello.' }], ...body }, { headers });
const drain = async () => {
  const res = await fetch(fn("track-deployment-usage", "/drain"), { method: "POST", headers: admin });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`drain: ${res.status} ${JSON.stringify(body)}`);
  return body;
};
/** Post-response work runs after the answer: wait until the deployment's events are in the usage buffer. */
const buffered = (deploymentId: string, n: number) =>
  eventually(async () => expect((await redis.xrange(`${stack.keyPrefix}:usage`, '-', '+')).filter(([, f]) => String(f[1]).includes(deploymentId))).toHaveLength(n));

describe('usage pipeline', () => {
  it('acceptance: N calls, a drain, and today\'s report show exactly N requests with matching token and cost sums', async () => {
    const db = await sql();
    const { deployment, keys } = await createDeployment({ type: 'internal', name: 'usage acceptance' });
    const N = 7;
    for (let i = 0; i < N; i++) {
      expect((await chat(keys.secret, { model: i % 2 ? 'pro' : 'flash', stream: i === 3 }, { 'x-inference-edge-feature': i < 4 ? 'chat' : 'summary' })).status).toBe(200);
    }
    await buffered(deployment.id, N);
    const d = await drainAll();
    expect(d.moved).toBeGreaterThanOrEqual(N);
    const { rows } = await db.query('select count(*)::int as n, sum(tokens_in + tokens_out)::int as tokens, sum(cost_usd)::float8 as cost from usage_events where deployment_id = $1', [deployment.id]);
    expect(rows[0].n).toBe(N);
    const today = new Date().toISOString().slice(0, 10);
    expect((await fetch(fn('daily-report', `/run?date=${today}`), { method: 'POST', headers: admin })).status).toBe(200);
    const report = await (await fetch(fn('daily-report', `/reports/${today}`), { headers: admin })).json();
    const mine = report.summary.deployments.find((x: { deploymentId: string }) => x.deploymentId === deployment.id);
    expect(mine.requests).toBe(N);
    expect(mine.tokensUsed).toBe(rows[0].tokens);
    expect(mine.costEstimate).toBeCloseTo(rows[0].cost, 6);
    expect(mine.topFeatures).toEqual([{ feature: 'chat', usage: 4 }, { feature: 'summary', usage: 3 }]);
    expect(mine.topModels.map((m: { model: string }) => m.model).sort()).toEqual(['mock-flash', 'mock-pro']);
    // The CSV parses: a header, one row per deployment and model, a totals row.
    const csv = await (await fetch(fn('daily-report', `/reports/${today}?format=csv`), { headers: admin })).text();
    const lines = csv.trim().split('\r\n').map((l) => l.split(','));
    expect(lines[0]).toEqual(['date', 'deployment_id', 'deployment_name', 'model', 'requests', 'tokens_used', 'cost_usd', 'avg_latency_ms', 'p95_latency_ms', 'error_rate']);
    const row = lines.find((l) => l[1] === deployment.id && l[3] === '*')!;
    expect(Number(row[4])).toBe(N);
    expect(lines.at(-1)![2]).toBe('TOTAL');
    expect(lines.every((l) => l.length === 10)).toBe(true);
  });

  it('exactly once: racing drains and a duplicate delivery still leave one row per call', async () => {
    const db = await sql();
    const { deployment, keys } = await createDeployment({ type: 'internal' });
    for (let i = 0; i < 5; i++) await chat(keys.secret);
    await buffered(deployment.id, 5);
    // A duplicate delivery of the last buffered event.
    const stream = `${stack.keyPrefix}:usage`;
    const last = await redis.xrevrange(stream, '+', '-', 'COUNT', 1);
    expect(last.length).toBe(1);
    await redis.xadd(stream, '*', ...last[0]![1]);
    const results = await Promise.all([drain(), drain(), drain()]);
    expect(results.every((r) => typeof r.moved === 'number')).toBe(true);
    await drainAll();
    const { rows } = await db.query('select count(*)::int as n, count(distinct request_id)::int as ids from usage_events where deployment_id = $1', [deployment.id]);
    expect(rows[0]).toEqual({ n: 5, ids: 5 });
  });

  it('records usage metadata only: no prompt or completion text anywhere in the event', async () => {
    const db = await sql();
    const { deployment, keys } = await createDeployment({ type: 'internal' });
    await chat(keys.secret, { messages: [{ role: 'user', content: 'my secret plan is BLUEBIRD' }] });
    await buffered(deployment.id, 1);
    await drainAll();
    const { rows } = await db.query('select * from usage_events where deployment_id = $1', [deployment.id]);
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows[0])).not.toMatch(/BLUEBIRD|deterministic answer/);
    expect(rows[0]).toMatchObject({ provider: 'mock', model: 'mock-flash', status: 200, stream: false, route_reason: 'tier:flash' });
  });
});

describe('track-deployment-usage', () => {
  const post = (key: string, body: unknown) =>
    fetch(fn('track-deployment-usage', '/'), { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('records reported metrics, counts them against the limits, and answers 429 when over', async () => {
    const db = await sql();
    const { deployment, keys } = await createDeployment({ type: 'internal', rateLimits: { tokensPerDay: 1000 } });
    const ok = await post(keys.secret, { deploymentId: deployment.id, metrics: { requests: 3, tokens: 600, models: ['gpt-4o-mini'], latency: 420, errors: 0, features: ['chat'] } });
    expect(ok.status).toBe(200);
    expect((await ok.json()).success).toBe(true);
    const over = await post(keys.secret, { deploymentId: deployment.id, metrics: { requests: 1, tokens: 500 } });
    expect(over.status).toBe(429);
    const body = await over.json();
    expect(body.retryAfter).toBeGreaterThanOrEqual(1);
    expect(body.error.code).toBe('rate_limit_exceeded');
    const { rows } = await db.query('select requests_count, tokens_used, models_used from deployment_usage_metrics where deployment_id = $1 order by id', [deployment.id]);
    expect(rows).toEqual([
      { requests_count: 3, tokens_used: '600', models_used: ['gpt-4o-mini'] },
      { requests_count: 1, tokens_used: '500', models_used: [] },
    ]);
    // The proxy sees the reported tokens too.
    const proxied = await chat(keys.secret);
    expect(proxied.status).toBe(402);
  });

  it('raises an error-rate alert once per window, and refuses bad input and other deployments\' keys', async () => {
    const db = await sql();
    const { deployment, keys } = await createDeployment({ type: 'internal' });
    for (let i = 0; i < 2; i++) expect((await post(keys.secret, { deploymentId: deployment.id, metrics: { requests: 10, tokens: 10, errors: 4 } })).status).toBe(200);
    const alertTypes = async () => (await db.query(`select type from alerts where deployment_id = $1`, [deployment.id])).rows.map((r) => r.type);
    await eventually(async () => expect(await alertTypes()).toEqual(['reported_error_rate']));
    const bad = await post(keys.secret, { deploymentId: deployment.id, metrics: { requests: -1, tokens: 0 } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.param).toBe('metrics.requests');
    const other = await createDeployment({ type: 'internal' });
    expect((await post(other.keys.secret, { deploymentId: deployment.id, metrics: { requests: 1, tokens: 1 } })).status).toBe(403);
  });
});

describe('alert policies', () => {
  it('fire from the 5-minute counters once per window', async () => {
    const db = await sql();
    const { deployment } = await createDeployment({ type: 'internal' });
    const bucket = Math.floor(Date.now() / 300_000) - 1;
    const key = `${stack.keyPrefix}:mt:${deployment.id}:${bucket}`;
    await redis.hset(key, { requests: 20, errors: 5, r429: 2, latency_ms: 20 * 4000 });
    await redis.sadd(`${stack.keyPrefix}:mt-active:${bucket}`, deployment.id);
    const evaluate = () => fetch(fn('track-deployment-usage', '/alerts/evaluate'), { method: 'POST', headers: admin }).then((r) => r.json());
    await evaluate();
    await evaluate();
    const { rows } = await db.query('select type from alerts where deployment_id = $1 order by type', [deployment.id]);
    expect(rows.map((r) => r.type)).toEqual(['error_rate', 'internal_rate_limited', 'latency']);
  });
});

describe('alert policies: spikes and long-open breakers', () => {
  const evaluate = () => fetch(fn('track-deployment-usage', '/alerts/evaluate'), { method: 'POST', headers: admin }).then((r) => r.json());

  it('a 429 spike over 5× the previous hour raises rate_limit_spike', async () => {
    const db = await sql();
    const { deployment } = await createDeployment({ type: 'public' });
    const bucket = Math.floor(Date.now() / 300_000) - 1;
    await redis.hset(`${stack.keyPrefix}:mt:${deployment.id}:${bucket}`, { requests: 40, errors: 0, r429: 12, latency_ms: 40 * 100 });
    await redis.hset(`${stack.keyPrefix}:mt:${deployment.id}:${bucket - 1}`, { requests: 40, r429: 1, latency_ms: 4000 });
    await redis.sadd(`${stack.keyPrefix}:mt-active:${bucket}`, deployment.id);
    await evaluate();
    const { rows } = await db.query('select type from alerts where deployment_id = $1', [deployment.id]);
    expect(rows.map((r) => r.type)).toEqual(['rate_limit_spike']);
  });

  it('a breaker open for more than 5 minutes raises breaker_open once', async () => {
    const db = await sql();
    const id = `groq:long-open-${Date.now()}`;
    const state = `${stack.keyPrefix}:br:${id}`;
    await redis.set(state, `open:${Date.now() + 60_000}`);
    await redis.set(`${state}:since`, String(Date.now() - 6 * 60_000));
    await redis.sadd(`${stack.keyPrefix}:br-index`, id);
    await evaluate();
    await evaluate();
    const { rows } = await db.query(`select type, severity from alerts where deployment_id is null and data ->> 'breaker' = $1`, [id]);
    expect(rows).toEqual([{ type: 'breaker_open', severity: 'critical' }]);
    await redis.del(state, `${state}:since`);
  });
});

describe('alert policies from live traffic', () => {
  it('a limiter refusal is counted in the 5-minute counters the alert policies read', async () => {
    const { deployment, keys } = await createDeployment({ type: 'internal', rateLimits: { requestsPerMinute: 1 } });
    const s = new Date().getUTCSeconds();
    if (s >= 50) await new Promise((r) => setTimeout(r, (61 - s) * 1000));
    await chat(keys.secret);
    expect((await chat(keys.secret)).status).toBe(429);
    const bucket = Math.floor(Date.now() / 300_000);
    await eventually(async () => expect(await redis.hget(`${stack.keyPrefix}:mt:${deployment.id}:${bucket}`, 'r429')).toBe('1'));
  });
});
