import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { LATENCY_BUCKETS } from '../shared/metrics';
import { fakeScope } from './fakes';
import { createDeployment, drainAll, fn, proxyChat, sql, stack } from './helpers';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of Prometheus' text format 0.0.4: every family declares HELP and TYPE before its
 * samples, every sample line parses, label values are properly escaped. Throws on anything else.
 */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  expect(text.endsWith('\n')).toBe(true);
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (m) {
      helps.add(m[1]!);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const labelText = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
    let pos = 0;
    while (pos < labelText.length) {
      re.lastIndex = pos;
      const l = re.exec(labelText);
      if (!l) throw new Error(`bad labels in: ${line}`);
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, ch: string) => (ch === 'n' ? '\n' : ch));
      pos = re.lastIndex;
    }
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    const base = types.has(m[1]!) ? m[1]! : family;
    if (!types.has(base) || !helps.has(base)) throw new Error(`sample before its HELP/TYPE: ${line}`);
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

async function scrape(token: string) {
  const res = await fetch(fn('feature-toggle', '/metrics'), { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

const sum = (samples: Sample[], name: string, where: Record<string, string>) =>
  samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

const chat = (key: string, body: object = {}) => proxyChat(key, { model: 'flash', messages: [{ role: 'user', content: 'Say hello to the metrics.' }], ...body });

describe('GET /metrics (feature-toggle)', () => {
  it('refuses a missing, wrong or deployment key; takes the metrics key and the admin key', async () => {
    const { keys } = await createDeployment({ type: 'internal' });
    expect((await fetch(fn('feature-toggle', '/metrics'))).status).toBe(401);
    for (const bad of ['not-the-metrics-key-at-all', keys.secret, keys.publishable]) {
      const r = await scrape(bad);
      expect(r.status).toBe(401);
      expect(JSON.parse(r.text).error.code).toBe('invalid_metrics_key');
    }
    for (const good of [stack.metricsKey, stack.adminKey]) {
      const r = await scrape(good);
      expect(r.status).toBe(200);
      expect(r.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    }
  });

  it('counts every call cluster-wide: statuses, tokens, cost, latency histogram, flags, refusals', async () => {
    const { deployment, keys } = await createDeployment({ type: 'internal', rateLimits: { requestsPerMinute: 3 } });
    const answers = [await chat(keys.secret), await chat(keys.secret, { model: 'pro' }), await chat(keys.secret, { stream: true, stream_options: { include_usage: true } })];
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect((await chat(keys.secret)).status).toBe(429);

    // The counters are added after each answer; wait until all four calls are in.
    let samples: Sample[] = [];
    let types = new Map<string, string>();
    for (let i = 0; i < 50; i++) {
      ({ samples, types } = parseExposition((await scrape(stack.metricsKey)).text));
      if (sum(samples, 'inference_edge_requests_total', { deployment: deployment.id }) >= 4) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const mine = { deployment: deployment.id };
    expect(sum(samples, 'inference_edge_requests_total', { ...mine, code: '200' })).toBe(3);
    expect(sum(samples, 'inference_edge_requests_total', { ...mine, code: '429', provider: 'none', model: 'none' })).toBe(1);
    expect(sum(samples, 'inference_edge_requests_total', { ...mine, provider: 'mock', model: 'mock-pro', code: '200' })).toBe(1);
    expect(types.get('inference_edge_requests_total')).toBe('counter');
    expect(types.get('inference_edge_request_duration_seconds')).toBe('histogram');

    // Histogram: cumulative buckets in order, +Inf equal to _count, which counts every call.
    const buckets = samples.filter((s) => s.name === 'inference_edge_request_duration_seconds_bucket' && s.labels.deployment === deployment.id);
    expect(buckets.map((b) => b.labels.le)).toEqual([...LATENCY_BUCKETS.map(String), '+Inf']);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(buckets.at(-1)!.value).toBe(4);
    expect(sum(samples, 'inference_edge_request_duration_seconds_count', mine)).toBe(4);
    expect(sum(samples, 'inference_edge_request_duration_seconds_sum', mine)).toBeGreaterThan(0);

    // Flag evaluations of the proxy (internal deployments have smartRouting on).
    expect(sum(samples, 'feature_flag_usage_total', { ...mine, flag: 'smartRouting', enabled: 'true' })).toBe(3);
    expect(sum(samples, 'inference_edge_inference_enabled', {})).toBe(1);
    expect(samples.some((s) => s.name === 'inference_edge_usage_buffer_events')).toBe(true);

    // Tokens and cost agree with the usage events once they are drained into Postgres.
    await drainAll();
    const db = await sql();
    const { rows } = await db.query(
      "select sum(tokens_in)::int as tin, sum(tokens_out)::int as tout, sum(cost_usd)::float8 as cost, count(*)::int as n from usage_events where deployment_id = $1 and status = 200",
      [deployment.id],
    );
    expect(rows[0].n).toBe(3);
    expect(sum(samples, 'inference_edge_tokens_total', { ...mine, direction: 'input' })).toBe(rows[0].tin);
    expect(sum(samples, 'inference_edge_tokens_total', { ...mine, direction: 'output' })).toBe(rows[0].tout);
    expect(rows[0].cost).toBeGreaterThan(0);
    expect(sum(samples, 'inference_edge_cost_usd_total', mine)).toBeCloseTo(rows[0].cost, 5);
  });

  it('counts refusals of a known deployment by status: a feature kill switch (503), a bad request (400)', async () => {
    const { deployment, keys } = await createDeployment({ type: 'public', features: { summary: false } }); // public: streaming on, vision off
    const mine = { deployment: deployment.id, provider: 'none', model: 'none' };
    expect((await proxyChat(keys.secret, { model: 'flash', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-inference-edge-feature': 'summary' } })).status).toBe(503);
    const image = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/x.png' } }] }];
    expect((await proxyChat(keys.secret, { model: 'flash', messages: image })).status).toBe(400);
    let samples: Sample[] = [];
    for (let i = 0; i < 50; i++) {
      ({ samples } = parseExposition((await scrape(stack.metricsKey)).text));
      if (sum(samples, 'inference_edge_requests_total', { deployment: deployment.id }) >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sum(samples, 'inference_edge_requests_total', { ...mine, code: '503' })).toBe(1);
    expect(sum(samples, 'inference_edge_requests_total', { ...mine, code: '400' })).toBe(1);
  });

  it('shows a breaker that opened as a gauge, and the fallbacks around it', async () => {
    const f = fakeScope();
    const target = (provider: string, model: string) => ({ provider, model, priceInputPerMTok: 1, priceOutputPerMTok: 2 });
    const { deployment, keys } = await createDeployment({
      type: 'internal',
      routing: {
        tiers: { main: { mode: 'fallback', targets: [target('groq', f.model('p')), target('openai', f.model('f'))] } },
        breaker: { failureThreshold: 2, cooldownMs: 60_000, windowMs: 60_000 },
        retry: { attempts: 0, baseDelayMs: 10, maxDelayMs: 100, budgetMs: 1_000 },
      },
    });
    await f.control('groq', 'p', { fault: { kind: 'status', status: 500 } });
    for (let i = 0; i < 3; i++) expect((await chat(keys.secret, { model: 'main' })).status).toBe(200);
    const mine = { deployment: deployment.id };
    let samples: Sample[] = [];
    for (let i = 0; i < 50; i++) {
      ({ samples } = parseExposition((await scrape(stack.metricsKey)).text));
      if (sum(samples, 'inference_edge_requests_total', mine) >= 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const gauge = samples.find((s) => s.name === 'inference_edge_circuit_breaker_state' && s.labels.breaker === `groq:${f.model('p')}`);
    expect(gauge?.value).toBe(2);
    expect(sum(samples, 'inference_edge_fallbacks_total', mine)).toBe(3);
    expect(sum(samples, 'inference_edge_requests_total', { ...mine, provider: 'openai', code: '200' })).toBe(3);
  });

  it('the Prometheus rules and the Grafana dashboard in observability/ use only metrics and labels we expose', async () => {
    const { types, samples } = parseExposition((await scrape(stack.metricsKey)).text);
    const labelNames = new Set(samples.flatMap((x) => Object.keys(x.labels)));
    const rules = parseYaml(readFileSync('observability/prometheus/alerts.yml', 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const dashboard = JSON.parse(readFileSync('observability/grafana/inference-edge.json', 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const exprs = [...rules.groups.flatMap((g) => g.rules.map((r) => r.expr)), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))];
    expect(rules.groups[0]!.rules.length).toBeGreaterThanOrEqual(8);
    for (const expr of exprs) {
      const names = expr.match(/\b(?:inference_edge|feature_flag)_[a-z_]+/g) ?? [];
      expect(names.length, expr).toBeGreaterThan(0);
      for (const name of names) expect(types.has(name) || types.get(name.replace(/_(bucket|sum|count)$/, '')) === 'histogram', `${name} in ${expr}`).toBe(true);
      for (const [, by] of expr.matchAll(/by \(([^)]*)\)/g)) for (const label of by!.split(',').map((l) => l.trim())) expect(labelNames.has(label), `label ${label} in ${expr}`).toBe(true);
    }
  });
});
