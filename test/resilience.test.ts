import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { fakeProviderBindings, startStack, type Stack } from '../local/stack';
import { fakeScope } from './fakes';
import { createDeployment, fn, stack } from './helpers';

/**
 * The fault matrix: fake providers on loopback misbehave in one way each, and the proxy must answer
 * well. Deadlines are short (hundreds of ms) so the suite stays fast.
 */
const fast = {
  timeouts: { firstByteMs: 400, stallMs: 400, totalMs: 10_000 },
  retry: { attempts: 1, baseDelayMs: 10, maxDelayMs: 300, budgetMs: 2_000 },
};
const target = (provider: string, model: string) => ({ provider, model, priceInputPerMTok: 1, priceOutputPerMTok: 2, capabilities: ['tools', 'json', 'vision'] });
const hello = [{ role: 'user' as const, content: 'Say hello.' }];

type Scope = ReturnType<typeof fakeScope>;

/** A deployment whose tier `main` tries groq model `p`, then openai model `f` (fake OpenAI-format providers). */
async function deployment(f: Scope, extra: Record<string, unknown> = {}, targets = [target('groq', f.model('p')), target('openai', f.model('f'))]) {
  const { keys } = await createDeployment({ type: 'internal', routing: { tiers: { main: { mode: 'fallback', targets } }, ...fast, ...extra } });
  return { key: keys.secret, targets };
}

async function call(key: string, body: object, base = stack.url) {
  const res = await fetch(`${base}/functions/v1/inference-proxy/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'main', messages: hello, ...body }),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // a stream
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The data events of an SSE body. */
const events = (text: string) => text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));

describe('fault matrix', () => {
  it('500 burst: retried on the same target, which then answers', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'status', status: 500 }, faultTimes: 1 });
    const r = await call(key, {});
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-provider')).toBe('groq');
    expect(await f.providers()).toEqual(['groq', 'groq']);
  });

  it('429 with a short retry-after-ms: waits as told and retries the same target', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'status', status: 429, retryAfterMs: 50 }, faultTimes: 1 });
    const r = await call(key, {});
    expect(r.status).toBe(200);
    expect(await f.providers()).toEqual(['groq', 'groq']);
  });

  it('429 with a long Retry-After: no waiting, straight to the next target', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'status', status: 429, retryAfter: '30' } });
    const r = await call(key, {});
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-provider')).toBe('openai');
    expect(await f.providers()).toEqual(['groq', 'openai']);
  });

  it('429 everywhere: 429 to the client with the provider\'s Retry-After', async () => {
    const f = fakeScope();
    const { key } = await deployment(f, {}, [target('groq', f.model('p'))]);
    await f.control('groq', 'p', { fault: { kind: 'status', status: 429, retryAfter: '30' } });
    const r = await call(key, {});
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('30');
    expect(r.json.error.code).toBe('provider_rate_limited');
  });

  it('connection refused: retried, then the next target', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'refuse' } });
    const r = await call(key, {});
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-fallbacks')).toBe('1');
    expect(await f.providers()).toEqual(['groq', 'groq', 'openai']);
  });

  it('slow first byte: the first-byte deadline moves on instead of hanging', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'slow-first-byte', ms: 3_000 } });
    const r = await call(key, {});
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-provider')).toBe('openai');
  });

  it('stall before the first chunk: retried once, then the next target streams', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'stall-before-first-chunk', ms: 3_000 } });
    const r = await call(key, { stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-provider')).toBe('openai');
    expect(events(r.text).at(-1)).toBe('[DONE]');
    expect((await f.requests()).map((x) => [x.provider, x.stream])).toEqual([['groq', true], ['groq', true], ['openai', true]]);
  });

  it('every stream stalls before its first chunk: a non-streamed call, re-emitted as SSE', async () => {
    const f = fakeScope();
    const { key } = await deployment(f, {}, [target('groq', f.model('p'))]);
    await f.control('groq', 'p', { fault: { kind: 'stall-before-first-chunk', ms: 3_000 } });
    const r = await call(key, { stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-stream-fallback')).toBe('non-streamed');
    const data = events(r.text);
    expect(data.at(-1)).toBe('[DONE]');
    expect(data.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta.content ?? '').join('')).toMatch(/^The quick answer/);
  });

  it('stall after the first chunk: an in-band error event and no [DONE]', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'stall-after-chunks', chunks: 2, ms: 3_000 } });
    const r = await call(key, { stream: true });
    expect(r.status).toBe(200);
    const data = events(r.text);
    expect(data).not.toContain('[DONE]');
    expect(JSON.parse(data.at(-1)!).error).toMatchObject({ code: 'stream_stalled', type: 'api_error' });
  });

  it('cut mid-stream: an in-band error event and no [DONE]', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'cut-after-chunks', chunks: 2 } });
    const r = await call(key, { stream: true });
    const data = events(r.text);
    expect(data).not.toContain('[DONE]');
    expect(JSON.parse(data.at(-1)!).error.code).toBe('stream_interrupted');
  });

  it('the official client raises on a cut stream instead of ending quietly', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'cut-after-chunks', chunks: 2 } });
    const client = new OpenAI({ apiKey: key, baseURL: fn('inference-proxy', '/v1'), maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'main', messages: hello, stream: true });
    const read = async () => {
      for await (const _ of stream) void _;
    };
    await expect(read()).rejects.toThrow(/interrupted/);
  });

  it('malformed SSE lines are skipped and the stream completes', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'malformed-sse' } });
    const r = await call(key, { stream: true });
    const data = events(r.text);
    expect(data.at(-1)).toBe('[DONE]');
    expect(data.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta.content ?? '').join('')).toMatch(/^The quick answer from a fake provider/);
  });

  it('Anthropic overloaded_error (529): retried, then the next target', async () => {
    const f = fakeScope();
    const { key } = await deployment(f, {}, [target('anthropic', f.model('p')), target('openai', f.model('f'))]);
    await f.control('anthropic', 'p', { fault: { kind: 'overloaded' } });
    const r = await call(key, {});
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-provider')).toBe('openai');
    expect(await f.providers()).toEqual(['anthropic', 'anthropic', 'openai']);
  });

  it('a 400 from the provider is the request\'s fault: no retry, no fallback', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'status', status: 400 } });
    const r = await call(key, {});
    expect(r.status).toBe(400);
    expect(await f.providers()).toEqual(['groq']);
  });

  it('every target down: a clear 502, or the deployment\'s static answer when it has one', async () => {
    const f = fakeScope();
    const { key } = await deployment(f);
    await f.control('groq', 'p', { fault: { kind: 'status', status: 503 } });
    await f.control('openai', 'f', { fault: { kind: 'status', status: 500 } });
    const r = await call(key, {});
    expect(r.status).toBe(502);
    expect(r.json.error.message).toMatch(/provider failed/);
    const withStatic = await deployment(f, { staticFallback: { message: 'Our assistant is resting. Please try again in a few minutes.' } });
    const s = await call(withStatic.key, {});
    expect(s.status).toBe(200);
    expect(s.json.choices[0].message.content).toBe('Our assistant is resting. Please try again in a few minutes.');
    expect(s.headers.get('x-inference-edge-provider')).toBe('static');
  });

  it('downgrades to a cheaper tier when the tier\'s providers are down', async () => {
    const f = fakeScope();
    const { keys } = await createDeployment({
      type: 'internal',
      routing: {
        ...fast,
        tiers: {
          pro: { targets: [{ ...target('anthropic', f.model('p')), priceInputPerMTok: 3, priceOutputPerMTok: 15 }] },
          flash: { targets: [{ ...target('openai', f.model('f')), priceInputPerMTok: 0.1, priceOutputPerMTok: 0.4 }] },
        },
      },
    });
    await f.control('anthropic', 'p', { fault: { kind: 'status', status: 500 } });
    const r = await call(keys.secret, { model: 'pro' });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-inference-edge-downgraded')).toBe('flash');
    expect(r.headers.get('x-inference-edge-provider')).toBe('openai');
  });
});

describe('circuit breakers shared in Redis', () => {
  const breakerConfig = { breaker: { failureThreshold: 3, cooldownMs: 1_500, windowMs: 60_000 }, retry: { ...fast.retry, attempts: 0 } };
  let second: Stack | undefined;
  afterAll(async () => {
    await second?.stop();
  });

  async function breakersOf(base = stack.url) {
    const health = await (await fetch(`${base}/functions/v1/inference-proxy/health/dependencies`)).json();
    return health.breakers as { id: string; state: string }[];
  }

  it('opens after N failures seen by two Miniflare instances, skips the primary, closes after the cooldown', async () => {
    const f = fakeScope();
    second = await startStack({
      port: 0,
      databaseUrl: stack.databaseUrl,
      redisUrl: stack.redisUrl,
      keyPrefix: stack.keyPrefix,
      adminKey: stack.adminKey,
      quiet: true,
      bindings: fakeProviderBindings(stack.fakeProvidersUrl),
    });
    const { key, targets } = await deployment(f, breakerConfig);
    const primary = `groq:${targets[0]!.model}`;
    await f.control('groq', 'p', { fault: { kind: 'status', status: 500 } });
    // Failures 1 and 2 on instance A, 3 on instance B: only shared state can count to 3.
    expect((await call(key, {})).headers.get('x-inference-edge-provider')).toBe('openai');
    expect((await call(key, {})).headers.get('x-inference-edge-provider')).toBe('openai');
    expect((await call(key, {}, second.url)).headers.get('x-inference-edge-provider')).toBe('openai');
    expect(await f.providers()).toEqual(['groq', 'openai', 'groq', 'openai', 'groq', 'openai']);
    expect((await breakersOf()).find((b) => b.id === primary)?.state).toBe('open');

    // Open: both instances skip the primary without calling it.
    const before = (await f.providers()).length;
    const skipped = await call(key, {}, second.url);
    expect(skipped.headers.get('x-inference-edge-provider')).toBe('openai');
    expect(skipped.headers.get('x-inference-edge-fallbacks')).toBe('1');
    await call(key, {});
    expect((await f.providers()).slice(before)).toEqual(['openai', 'openai']);

    // The primary recovers; after the cooldown one probe closes the breaker.
    await f.control('groq', 'p', {});
    await new Promise((r) => setTimeout(r, 1_600));
    expect((await breakersOf(second.url)).find((b) => b.id === primary)?.state).toBe('half_open');
    expect((await call(key, {})).headers.get('x-inference-edge-provider')).toBe('groq');
    expect((await breakersOf()).find((b) => b.id === primary)?.state).toBe('closed');
    expect((await call(key, {}, second.url)).headers.get('x-inference-edge-provider')).toBe('groq');
  }, 60_000);

  it('half-open lets exactly one probe through under 20 concurrent calls; a failed probe re-opens', async () => {
    const f = fakeScope();
    const { key, targets } = await deployment(f, breakerConfig);
    const primary = `groq:${targets[0]!.model}`;
    await f.control('groq', 'p', { fault: { kind: 'status', status: 500 } });
    for (let i = 0; i < 3; i++) await call(key, {});
    expect((await breakersOf()).find((b) => b.id === primary)?.state).toBe('open');
    await new Promise((r) => setTimeout(r, 1_600));
    const before = (await f.providers()).length;
    // The probe is slow and fails, so all 20 calls overlap it.
    await f.control('groq', 'p', { latencyMs: 300, fault: { kind: 'status', status: 500 } });
    const results = await Promise.all(Array.from({ length: 20 }, () => call(key, {})));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect((await f.providers()).slice(before).filter((p) => p === 'groq')).toHaveLength(1);
    expect((await breakersOf()).find((b) => b.id === primary)?.state).toBe('open');
  }, 60_000);
});
