import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { fakeScope } from './fakes';
import { createDeployment, drainAll, eventually, fn, proxyChat, sql } from './helpers';

/** Multi-model comparison: X-Inference-Edge-Compare, honoured when the multiModelComparison flag is on. */
const hello = [{ role: 'user' as const, content: 'Say hello.' }];
const compare = (key: string, models: string, body: object = {}) => proxyChat(key, { model: 'auto', messages: hello, ...body }, { headers: { 'x-inference-edge-compare': models } });
const target = (provider: string, model: string) => ({ provider, model, priceInputPerMTok: 1, priceOutputPerMTok: 2 });

describe('multi-model comparison', () => {
  it('answers with one choice per model through the official openai client, usage summed and recorded once', async () => {
    const { deployment, keys } = await createDeployment({ type: 'internal' }); // internal: multiModelComparison on by default
    const client = new OpenAI({ apiKey: keys.secret, baseURL: fn('inference-proxy', '/v1'), maxRetries: 0 });
    const { data, response } = await client.chat.completions
      .create({ model: 'auto', messages: hello, max_tokens: 20 }, { headers: { 'x-inference-edge-compare': 'flash, pro' } })
      .withResponse();
    expect(data.choices.map((c) => c.index)).toEqual([0, 1]);
    const choices = data.choices as unknown as { requested: string; model: string; provider: string; message: { content: string } }[];
    expect(choices.map((c) => [c.requested, c.provider, c.model])).toEqual([['flash', 'mock', 'mock-flash'], ['pro', 'mock', 'mock-pro']]);
    expect(choices.every((c) => c.message.content.length > 0)).toBe(true);
    expect(response.headers.get('x-inference-edge-compare')).toBe('flash=mock/mock-flash, pro=mock/mock-pro');
    expect(data.usage!.total_tokens).toBe(data.usage!.prompt_tokens + data.usage!.completion_tokens);

    // One usage event for the call, with both models' tokens and cost.
    const db = await sql();
    const events = async () => {
      await drainAll();
      return (await db.query('select model, provider, tokens_in, tokens_out, cost_usd::float8 as cost from usage_events where deployment_id = $1', [deployment.id])).rows;
    };
    await eventually(async () => expect(await events()).toHaveLength(1));
    const rows = await events();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ model: 'mock-flash,mock-pro', provider: 'compare', tokens_in: data.usage!.prompt_tokens, tokens_out: data.usage!.completion_tokens });
    expect(rows[0].cost).toBeGreaterThan(0);
  });

  it('is refused when the flag is off for the caller, for a stream, and for a malformed or unknown model list', async () => {
    const pub = await createDeployment({ type: 'public' }); // public: multiModelComparison off by default
    const off = await compare(pub.keys.secret, 'flash,pro');
    expect(off.status).toBe(403);
    expect(off.json.error).toMatchObject({ code: 'comparison_disabled', param: 'x-inference-edge-compare' });

    const { keys } = await createDeployment({ type: 'internal' });
    expect((await compare(keys.secret, 'flash,pro', { stream: true })).json.error.code).toBe('comparison_stream_unsupported');
    for (const bad of ['flash', 'flash,flash', 'a,b,c,d,e', ',']) {
      const r = await compare(keys.secret, bad);
      expect(r.status, bad).toBe(400);
      expect(r.json.error.param).toBe('x-inference-edge-compare');
    }
    const unknown = await compare(keys.secret, 'flash,nonesuch');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.param).toBe('x-inference-edge-compare');
  });

  it('counts one request per model against the limits, and a spent budget refuses instead of downgrading', async () => {
    const { keys } = await createDeployment({ type: 'internal', rateLimits: { requestsPerMinute: 3 } });
    expect((await compare(keys.secret, 'flash,pro')).status).toBe(200); // 2 of 3
    const second = await compare(keys.secret, 'flash,pro'); // would be 4 of 3
    expect(second.status).toBe(429);
    expect((await proxyChat(keys.secret, { model: 'flash', messages: hello })).status).toBe(200); // the one left

    const budget = await createDeployment({ type: 'internal', rateLimits: { tokensPerDay: 1 }, budgets: { onBudgetExhausted: 'downgrade' } });
    expect((await compare(budget.keys.secret, 'flash,pro')).status).toBe(402);
  });

  it('gives a failing model an error choice while the other answers; fails as a whole only when every model fails', async () => {
    const f = fakeScope();
    const { keys } = await createDeployment({
      type: 'internal',
      routing: {
        tiers: { a: { targets: [target('openai', f.model('a'))] }, b: { targets: [target('groq', f.model('b'))] } },
        retry: { attempts: 0, baseDelayMs: 10, maxDelayMs: 50, budgetMs: 500 },
      },
    });
    await f.control('groq', 'b', { fault: { kind: 'status', status: 500 } });
    const partial = await compare(keys.secret, 'a,b');
    expect(partial.status).toBe(200);
    expect(partial.json.choices[0]).toMatchObject({ requested: 'a', provider: 'openai', finish_reason: 'stop' });
    expect(partial.json.choices[1]).toMatchObject({ requested: 'b', provider: null, finish_reason: 'error', message: { content: null } });
    expect(partial.json.choices[1].error.code).toBeTruthy();
    expect(partial.headers.get('x-inference-edge-compare')).toBe(`a=openai/${f.model('a')}, b=failed/b`);

    await f.control('openai', 'a', { fault: { kind: 'status', status: 500 } });
    const none = await compare(keys.secret, 'a,b');
    expect(none.status).toBeGreaterThanOrEqual(500);
    expect(none.json.error).toBeTruthy();
  });
});
