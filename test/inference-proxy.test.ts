import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../local/stack';
import { fakeScope } from './fakes';
import { createDeployment, fn, stack } from './helpers';

const INTERNAL_SK = 'sk_test_demoInternalAssist00000000000000';
const PUBLIC_PK = 'pk_test_demoPublicWidget0000000000000000';
const baseURL = fn('inference-proxy', '/v1');
const client = (apiKey = INTERNAL_SK, opts: Partial<ConstructorParameters<typeof OpenAI>[0]> = {}) => new OpenAI({ apiKey, baseURL, maxRetries: 0, ...opts });
const hello = [{ role: 'user' as const, content: 'Say hello.' }];


async function post(path: string, body: unknown, key = INTERNAL_SK, headers: Record<string, string> = {}) {
  const res = await fetch(fn('inference-proxy', path), {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // a stream
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** A sandbox deployment routed at the fake providers. */
async function routedDeployment(routing: object, overrides: Record<string, unknown> = {}) {
  return createDeployment({ type: 'internal', routing, ...overrides });
}
const target = (provider: string, model: string, extra: object = {}) => ({ provider, model, priceInputPerMTok: 1, priceOutputPerMTok: 2, capabilities: ['tools', 'json', 'vision'], ...extra });


describe('the official openai client against the proxy (mock provider)', () => {
  it('gets a completion, with usage and the gateway headers', async () => {
    const { data, response } = await client().chat.completions.create({ model: 'flash', messages: hello }).withResponse();
    expect(data.object).toBe('chat.completion');
    expect(data.choices[0]!.message.content).toMatch(/deterministic answer/);
    expect(data.usage!.completion_tokens).toBeGreaterThan(0);
    expect(response.headers.get('x-request-id')).toBeTruthy();
    expect(response.headers.get('x-inference-edge-provider')).toBe('mock');
    expect(response.headers.get('x-inference-edge-model')).toBe('mock-flash');
    expect(response.headers.get('x-inference-edge-route-reason')).toBe('tier:flash');
    expect(Number(response.headers.get('x-inference-edge-overhead-ms'))).toBeGreaterThanOrEqual(0);
  });

  it('streams, with a usage chunk when asked, honouring max_tokens', async () => {
    const stream = await client().chat.completions.create({ model: 'flash', messages: hello, stream: true, stream_options: { include_usage: true }, max_tokens: 5 });
    let text = '';
    let usage;
    let finish;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish ??= chunk.choices[0]?.finish_reason ?? undefined;
      usage ??= chunk.usage ?? undefined;
    }
    expect(text.trim().split(/\s+/)).toHaveLength(5);
    expect(finish).toBe('length');
    expect(usage).toMatchObject({ completion_tokens: 5 });
  });

  it('ends a stream with [DONE] and sends no usage chunk unless asked', async () => {
    const r = await post('/v1/chat/completions', { model: 'flash', messages: hello, stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/text\/event-stream/);
    expect(r.text.trim().endsWith('data: [DONE]')).toBe(true);
    expect(r.text).not.toContain('"usage"');
  });

  it('returns tool calls', async () => {
    const res = await client().chat.completions.create({
      model: 'flash',
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }],
      tool_choice: 'required',
    });
    expect(res.choices[0]!.finish_reason).toBe('tool_calls');
    expect((res.choices[0]!.message.tool_calls![0] as { function: unknown }).function).toEqual({ name: 'get_weather', arguments: '{"city":"mock"}' });
  });

  it('answers json_schema requests with JSON that matches', async () => {
    const res = await client().chat.completions.create({
      model: 'flash',
      messages: hello,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { n: { type: 'integer', minimum: 3 } }, required: ['n'] } } },
    });
    expect(JSON.parse(res.choices[0]!.message.content!)).toEqual({ n: 3 });
  });

  it('surfaces errors as the client\'s typed errors', async () => {
    const err = await client().chat.completions.create({ model: 'no-such-model', messages: hello }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.code).toBe('model_not_found');
    const auth = await client('sk_test_' + 'x'.repeat(32)).chat.completions.create({ model: 'flash', messages: hello }).catch((e) => e);
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('lists the deployment\'s models', async () => {
    const models = await client().models.list();
    const ids = models.data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['auto', 'flash-lite', 'flash', 'pro', 'mock/mock-flash']));
  });
});

describe('routing', () => {
  it('sends an image to a vision-capable tier', async () => {
    const { response } = await client()
      .chat.completions.create({ model: 'flash-lite', messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] })
      .withResponse();
    expect(response.headers.get('x-inference-edge-model')).toBe('mock-flash');
    expect(response.headers.get('x-inference-edge-route-reason')).toContain('needs=vision->flash');
  });

  it('picks a tier with smart routing for model "auto", and explains it', async () => {
    const simple = await client().chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hi!' }] }).withResponse();
    expect(simple.response.headers.get('x-inference-edge-route-reason')).toMatch(/^smart:simple/);
    expect(simple.response.headers.get('x-inference-edge-model')).toBe('mock-lite');
    const hard = await client()
      .chat.completions.create({
        model: 'auto',
        messages: [{ role: 'user', content: 'Design a multi-region event-sourced architecture for payments. Compare the trade-offs of sagas versus two-phase commit step by step, analyze failure modes, and explain why each choice matters:\n```ts\nfunction settle(tx: Tx) { /* ... */ }\n```' }],
      })
      .withResponse();
    expect(hard.response.headers.get('x-inference-edge-route-reason')).toMatch(/^smart:complex/);
    expect(hard.response.headers.get('x-inference-edge-model')).toBe('mock-pro');
  });

  it('falls back to the next target when the first fails, and says so', async () => {
    const f = fakeScope();
    const { keys } = await routedDeployment({ tiers: { main: { mode: 'fallback', targets: [target('groq', f.model('llama-fast')), target('openai', f.model('gpt-test'))] } } });
    await f.control('groq', 'llama-fast', { fault: { kind: 'status', status: 500 } });
    const { data, response } = await client(keys.secret).chat.completions.create({ model: 'main', messages: hello }).withResponse();
    expect(data.choices[0]!.message.content).toMatch(/fake provider/);
    expect(response.headers.get('x-inference-edge-provider')).toBe('openai');
    expect(response.headers.get('x-inference-edge-fallbacks')).toBe('1');
    // One retry of the failing target (the default), then the next target.
    expect((await f.providers())).toEqual(['groq', 'groq', 'openai']);
  });

  it('keeps an upstream 400 as a 400 (no fallback on the caller\'s own error)', async () => {
    const f = fakeScope();
    const { keys } = await routedDeployment({ tiers: { main: { mode: 'fallback', targets: [target('groq', f.model('llama-fast')), target('openai', f.model('gpt-test'))] } } });
    await f.control('groq', 'llama-fast', { fault: { kind: 'status', status: 400 } });
    const err = await client(keys.secret).chat.completions.create({ model: 'main', messages: hello }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((await f.providers())).toEqual(['groq']);
  });

  it('takes a provider out of routing when it has no key, and answers 503 when none is left', async () => {
    const { keys } = await routedDeployment({ tiers: { main: { targets: [target('deepseek', 'x')] } } });
    // deepseek has a fake key in tests; a provider name outside the registry has none.
    const r = await post('/v1/chat/completions', { model: 'main', messages: hello }, keys.secret);
    expect(r.status).toBe(200);
    const bad = await createDeployment({ type: 'internal', routing: { tiers: { main: { targets: [target('nonexistent', 'x')] } } } });
    const r2 = await post('/v1/chat/completions', { model: 'main', messages: hello }, bad.keys.secret);
    expect(r2.status).toBe(503);
    expect(r2.json.error.code).toBe('no_provider_available');
  });
});

describe('conditional routing on user attributes', () => {
  it('routes by a cohort only a secret key may assert', async () => {
    const f = fakeScope();
    const { keys } = await routedDeployment(
      { tiers: { main: { mode: 'conditional', targets: [target('groq', f.model('beta-model'), { when: { field: 'user.cohort', op: 'eq', value: 'qa' } }), target('openai', f.model('ga-model'))] } } },
      { allowedOrigins: ['https://app.example.com'] },
    );
    const qa = await post('/v1/chat/completions', { model: 'main', messages: hello }, keys.secret, { 'x-inference-edge-user': '{"cohort":"qa"}' });
    expect(qa.headers.get('x-inference-edge-model')).toBe(f.model('beta-model'));
    const ga = await post('/v1/chat/completions', { model: 'main', messages: hello }, keys.secret);
    expect(ga.headers.get('x-inference-edge-model')).toBe(f.model('ga-model'));
    const browser = await post('/v1/chat/completions', { model: 'main', messages: hello }, keys.publishable, { origin: 'https://app.example.com', 'x-inference-edge-user': '{"cohort":"qa"}' });
    expect(browser.status).toBe(403);
    expect(browser.json.error.code).toBe('caller_headers_forbidden');
    const bad = await post('/v1/chat/completions', { model: 'main', messages: hello }, keys.secret, { 'x-inference-edge-user': '["qa"]' });
    expect(bad.status).toBe(400);
  });
});

describe('JSON answers', () => {
  const schemaFormat = { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } } };

  it('retries once when a json_schema answer does not validate, and keeps the good one', async () => {
    const f = fakeScope();
    const { keys } = await routedDeployment({ tiers: { main: { targets: [target('openai', f.model('gpt-test'))] } } });
    await f.control('openai', 'gpt-test', { texts: ['{"n": "seven"}', '{"n": 7}'] });
    const r = await post('/v1/chat/completions', { model: 'main', messages: hello, response_format: schemaFormat }, keys.secret);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.json.choices[0].message.content)).toEqual({ n: 7 });
    expect(r.headers.get('x-inference-edge-json-retry')).toBe('ok');
    expect((await f.requests()).length).toBe(2);
  });

  it('retries only once, and says when the retry failed too', async () => {
    const f = fakeScope();
    const { keys } = await routedDeployment({ tiers: { main: { targets: [target('openai', f.model('gpt-test'))] } } });
    await f.control('openai', 'gpt-test', { texts: ['not json', 'still not json', '{"n": 1}'] });
    const r = await post('/v1/chat/completions', { model: 'main', messages: hello, response_format: schemaFormat }, keys.secret);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-json-retry')).toBe('failed');
    expect((await f.requests()).length).toBe(2);
  });

  it('flags an empty completion', async () => {
    const f = fakeScope();
    const { keys } = await routedDeployment({ tiers: { main: { targets: [target('openai', f.model('gpt-test'))] } } });
    await f.control('openai', 'gpt-test', { text: '' });
    const r = await post('/v1/chat/completions', { model: 'main', messages: hello }, keys.secret);
    expect(r.headers.get('x-inference-edge-empty-completion')).toBe('true');
  });
});

describe('providers through their wire formats (fake servers on loopback)', () => {
  it.each([
    ['openai', 'gpt-test'],
    ['anthropic', 'claude-test'],
    ['gemini', 'gemini-test'],
    ['groq', 'llama-test'],
  ])('%s: JSON and streaming come back in OpenAI format', async (provider, model) => {
    const f = fakeScope();
    const { keys } = await routedDeployment({ tiers: { main: { targets: [target(provider, f.model(model))] } } });
    const c = client(keys.secret);
    const json = await c.chat.completions.create({ model: 'main', messages: [{ role: 'system', content: 'Be brief.' }, ...hello], max_tokens: 4 });
    expect(json.choices[0]!.message.content!.trim().split(/\s+/)).toHaveLength(4);
    expect(json.choices[0]!.finish_reason).toBe('length');
    expect(json.usage!.completion_tokens).toBe(4);
    const stream = await c.chat.completions.create({ model: 'main', messages: hello, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage ??= chunk.usage ?? undefined;
    }
    expect(text).toMatch(/^The quick answer from a fake provider/);
    expect(usage).toMatchObject({ completion_tokens: expect.any(Number) });
    const seen = await f.requests();
    expect(seen.map((r) => [r.provider, r.model, r.stream])).toEqual([[provider, f.model(model), false], [provider, f.model(model), true]]);
  });
});

describe('guards', () => {
  it('answers 413 for a 2 MB body and 400 for a bad one, in the OpenAI error shape', async () => {
    const big = await post('/v1/chat/completions', JSON.stringify({ model: 'flash', messages: [{ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }] }));
    expect(big.status).toBe(413);
    expect(big.json.error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });
    const bad = await post('/v1/chat/completions', { model: 'flash' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ type: 'invalid_request_error', param: 'messages' });
    const role = await post('/v1/chat/completions', { model: 'flash', messages: [{ role: 'wizard', content: 'x' }] });
    expect(role.json.error.param).toBe('messages.0.role');
    const broken = await post('/v1/chat/completions', '{"model":');
    expect(broken.status).toBe(400);
    expect(broken.json.error.code).toBe('invalid_json');
  });

  it('clamps max_tokens to tokensPerRequest and refuses a prompt that alone is over', async () => {
    const { keys } = await createDeployment({ type: 'internal', rateLimits: { tokensPerRequest: 60 } });
    const r = await post('/v1/chat/completions', { model: 'flash', messages: hello, max_tokens: 1000 }, keys.secret);
    expect(r.status).toBe(200);
    expect(Number(r.headers.get('x-inference-edge-max-tokens'))).toBeLessThan(60);
    const over = await post('/v1/chat/completions', { model: 'flash', messages: [{ role: 'user', content: 'word '.repeat(400) }] }, keys.secret);
    expect(over.status).toBe(400);
    expect(over.json.error.code).toBe('context_length_exceeded');
  });

  it('truncates a long conversation, keeping the system prompt, and flags it', async () => {
    const { keys } = await createDeployment({ type: 'internal', rateLimits: { tokensPerRequest: 400 } });
    const messages = [{ role: 'system', content: 'Be brief.' }, ...Array.from({ length: 12 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i} ${'word '.repeat(40)}` }))];
    const r = await post('/v1/chat/completions', { model: 'flash', messages }, keys.secret);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-truncated')).toMatch(/^dropped=\d+$/);
  });

  it('redacts PII before the provider sees the prompt when piiRedaction is on', async () => {
    const f = fakeScope();
    const { keys } = await routedDeployment({ tiers: { main: { targets: [target('openai', f.model('gpt-test'))] } } }, { features: { piiRedaction: true } });
    const r = await post('/v1/chat/completions', { model: 'main', messages: [{ role: 'user', content: 'Mail jane.doe@example.com or call +1 415 555 0100, card 4111 1111 1111 1111.' }] }, keys.secret);
    expect(r.status).toBe(200);
    expect(Number(r.headers.get('x-inference-edge-pii-redacted'))).toBeGreaterThanOrEqual(3);
    const [seen] = await f.requests();
    expect(seen!.text).not.toContain('jane.doe@example.com');
    expect(seen!.text).not.toContain('4111 1111 1111 1111');
    expect(seen!.text).toContain('[EMAIL]');
  });

  it('removes URLs outside the deployment\'s allowlist before the provider sees them', async () => {
    const f = fakeScope();
    const { keys } = await routedDeployment({ tiers: { main: { targets: [target('openai', f.model('gpt-test'))] } }, urlAllowlist: ['example.com'] });
    const r = await post('/v1/chat/completions', { model: 'main', messages: [{ role: 'user', content: 'See https://docs.example.com/a and https://example.com.evil.io/x' }] }, keys.secret);
    expect(r.status).toBe(200);
    const [seen] = await f.requests();
    expect(seen!.text).toContain('https://docs.example.com/a');
    expect(seen!.text).not.toContain('evil.io');
  });

  it('accepts a publishable key only from an allowed origin', async () => {
    const ok = await post('/v1/chat/completions', { model: 'flash-lite', messages: hello }, PUBLIC_PK, { origin: 'http://localhost:5173' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    const no = await post('/v1/chat/completions', { model: 'flash-lite', messages: hello }, PUBLIC_PK, { origin: 'https://evil.example' });
    expect(no.status).toBe(403);
  });
});

describe('kill switches', () => {
  const redis = new Redis(stack.redisUrl);
  afterAll(() => redis.quit());

  it('per deployment: 503 with a user-facing message on the next request', async () => {
    const { deployment, keys } = await createDeployment({ type: 'internal' });
    expect((await post('/v1/chat/completions', { model: 'flash', messages: hello }, keys.secret)).status).toBe(200);
    const { admin } = await import('./helpers');
    await admin('PATCH', `/deployments/${deployment.id}`, { features: { inference: false } });
    const r = await post('/v1/chat/completions', { model: 'flash', messages: hello }, keys.secret);
    expect(r.status).toBe(503);
    expect(r.json.error).toMatchObject({ code: 'inference_disabled', message: expect.stringMatching(/temporarily unavailable/) });
    expect(r.headers.get('x-inference-edge-kill-switch')).toBe('deployment');
  });

});

describe('the global kill switch (a stack of its own: the switch is global to its Redis prefix)', () => {
  let own: Stack | undefined;
  const redis = new Redis(stack.redisUrl);
  beforeAll(async () => {
    own = await startStack({ port: 0, databaseUrl: stack.databaseUrl, redisUrl: stack.redisUrl, keyPrefix: `${stack.keyPrefix}_ks`, adminKey: stack.adminKey, quiet: true });
  }, 60_000);
  afterAll(async () => {
    await own?.stop();
    redis.disconnect();
  });
  const ownPost = () =>
    fetch(`${own!.functionUrl('inference-proxy')}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${INTERNAL_SK}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'flash', messages: hello }),
    }).then(async (res) => ({ status: res.status, headers: res.headers, json: await res.json() }));
  const ownAdmin = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${own!.functionUrl('feature-toggle')}${path}`, {
      method,
      headers: { authorization: `Bearer ${stack.adminKey}`, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };

  it('global, through the admin API: audited, and effective on the next request', async () => {
    try {
      const off = await ownAdmin('POST', '/kill-switch', { enabled: false, reason: 'provider outage' }, { 'x-inference-edge-actor': 'oncall' });
      expect(off.status).toBe(200);
      expect(off.body.audit).toMatchObject({ action: 'kill_switch.global', actor: 'admin:oncall', diff: { 'inference.enabled': { old: true, new: false } } });
      expect((await ownAdmin('GET', '/kill-switch')).body.enabled).toBe(false);
      expect((await ownPost()).status).toBe(503);
    } finally {
      await ownAdmin('POST', '/kill-switch', { enabled: true });
    }
    expect((await ownPost()).status).toBe(200);
  });

  it('global (Redis): every deployment gets 503 until it is lifted', async () => {
    const key = `${own!.keyPrefix}:kill:global`;
    try {
      await redis.set(key, 'off');
      const r = await ownPost();
      expect(r.status).toBe(503);
      expect(r.headers.get('x-inference-edge-kill-switch')).toBe('global');
    } finally {
      await redis.del(key);
    }
    expect((await ownPost()).status).toBe(200);
  });
});
