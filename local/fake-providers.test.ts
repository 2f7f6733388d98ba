import OpenAI from 'openai';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fake-providers';

const fake = await startFakeProviders();
afterAll(() => fake.stop());
beforeEach(() => fake.reset());

const client = (name = 'openai') => new OpenAI({ apiKey: 'sk-fake', baseURL: fake.baseUrl(name), maxRetries: 0 });
const messages = [{ role: 'user' as const, content: 'Hello there' }];

describe('fake OpenAI provider, through the official openai client', () => {
  it('answers a chat completion with usage, honouring max_tokens', async () => {
    const full = await client().chat.completions.create({ model: 'gpt-test', messages });
    expect(full.choices[0]!.finish_reason).toBe('stop');
    expect(full.choices[0]!.message.content).toMatch(/^The quick answer/);
    expect(full.usage!.completion_tokens).toBeGreaterThan(3);
    const short = await client().chat.completions.create({ model: 'gpt-test', messages, max_tokens: 3 });
    expect(short.choices[0]!.finish_reason).toBe('length');
    expect(short.usage!.completion_tokens).toBe(3);
    expect(fake.requests.map((r) => r.provider)).toEqual(['openai', 'openai']);
  });

  it('streams chunks, a usage chunk when asked, and [DONE]', async () => {
    const stream = await client().chat.completions.create({ model: 'gpt-test', messages, stream: true, stream_options: { include_usage: true }, max_tokens: 4 });
    let text = '';
    let usage;
    let finish;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish ??= chunk.choices[0]?.finish_reason ?? undefined;
      usage ??= chunk.usage ?? undefined;
    }
    expect(text.split(' ').filter(Boolean)).toHaveLength(4);
    expect(finish).toBe('length');
    expect(usage).toMatchObject({ completion_tokens: 4 });
  });

  it('applies a fault for as many requests as told, per provider', async () => {
    fake.configure('primary', { fault: { kind: 'status', status: 500 }, faultTimes: 2 });
    await expect(client('primary').chat.completions.create({ model: 'm', messages })).rejects.toMatchObject({ status: 500 });
    await expect(client('primary').chat.completions.create({ model: 'm', messages })).rejects.toMatchObject({ status: 500 });
    await expect(client('primary').chat.completions.create({ model: 'm', messages })).resolves.toBeTruthy();
    await expect(client('fallback').chat.completions.create({ model: 'm', messages })).resolves.toBeTruthy();
  });

  it('sends Retry-After with a 429', async () => {
    fake.configure('openai', { fault: { kind: 'status', status: 429, retryAfter: '7' } });
    const res = await fetch(`${fake.baseUrl('openai')}/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer x', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages }) });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
  });

  it('cuts a stream after N chunks (the client sees an error, not a clean end)', async () => {
    fake.configure('openai', { fault: { kind: 'cut-after-chunks', chunks: 2 } });
    const stream = await client().chat.completions.create({ model: 'm', messages, stream: true });
    const read = async () => {
      for await (const _ of stream) void _;
    };
    await expect(read()).rejects.toThrow();
  });

  it('refuses requests without a key, in the provider error shape', async () => {
    const res = await fetch(`${fake.baseUrl('openai')}/chat/completions`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(401);
    expect((await res.json()).error.message).toBe('missing API key');
  });
});

describe('fake Anthropic provider', () => {
  const post = (body: object, name = 'anthropic') =>
    fetch(`${fake.baseUrl(name)}/messages`, { method: 'POST', headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('answers the Messages format with usage and stop reasons', async () => {
    const res = await post({ model: 'claude-test', max_tokens: 2, system: 'Be brief.', messages });
    const body = await res.json();
    expect(body).toMatchObject({ type: 'message', role: 'assistant', stop_reason: 'max_tokens', usage: { output_tokens: 2 } });
    expect(body.content[0].type).toBe('text');
  });

  it('streams the Messages event sequence', async () => {
    const res = await post({ model: 'claude-test', max_tokens: 100, stream: true, messages });
    const text = await res.text();
    const events = [...text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
    expect(events[0]).toBe('message_start');
    expect(events.at(-1)).toBe('message_stop');
    expect(events).toContain('content_block_delta');
    expect(text).toContain('"stop_reason":"end_turn"');
  });

  it('answers overloaded_error with 529', async () => {
    fake.configure('anthropic', { fault: { kind: 'overloaded' } });
    const res = await post({ model: 'claude-test', max_tokens: 10, messages });
    expect(res.status).toBe(529);
    expect((await res.json()).error.type).toBe('overloaded_error');
  });

  it('requires max_tokens, as Anthropic does', async () => {
    expect((await post({ model: 'claude-test', messages })).status).toBe(400);
  });
});
