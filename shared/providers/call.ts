import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../openai-types';
import { parseSse } from '../sse';
import { anthropicErrorMessage, createAnthropicStreamTranslator, fromAnthropicResponse, toAnthropicRequest } from './anthropic';
import { createGeminiStreamTranslator, fromGeminiResponse, geminiErrorMessage, toGeminiRequest } from './gemini';
import { mockCompletion, mockStream, type MockOptions } from './mock';
import { ProviderError, type CallOptions, type ProviderResult, type ResolvedProvider } from './types';

const ANTHROPIC_VERSION = '2023-06-01';

/** Retry-After as milliseconds: `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | null {
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.has('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return ms;
  const ra = headers.get('retry-after');
  if (!ra) return null;
  const s = Number(ra);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const at = Date.parse(ra);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

async function post(provider: ResolvedProvider, url: string, headers: Record<string, string>, body: unknown, opts: Pick<CallOptions, 'signal' | 'onHeaders'>): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: opts.signal });
  } catch (err) {
    throw transportError(provider.name, err, opts.signal);
  }
  opts.onHeaders?.();
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    const message = provider.format === 'anthropic' ? anthropicErrorMessage(parsed)
      : provider.format === 'gemini' ? geminiErrorMessage(parsed)
      : ((parsed as { error?: { message?: string } })?.error?.message ?? (typeof parsed === 'string' ? parsed.slice(0, 300) : 'error'));
    throw new ProviderError(provider.name, res.status, `${provider.name} answered ${res.status}: ${message}`, retryAfterMs(res.headers));
  }
  return res;
}

/** A failed fetch or body read as a ProviderError: a deadline (our abort) or the network. */
export function transportError(provider: string, err: unknown, signal?: AbortSignal): ProviderError {
  if (err instanceof ProviderError) return err;
  if (signal?.aborted) {
    const reason = signal.reason as { message?: string } | undefined;
    return new ProviderError(provider, 504, `${provider} ${reason?.message ?? 'timed out'}`, null, 'timeout');
  }
  return new ProviderError(provider, 502, `${provider} unreachable: ${(err as Error).message}`, null, 'network');
}

async function* openAIChunks(res: Response, provider: string, signal?: AbortSignal): AsyncGenerator<ChatCompletionChunk> {
  try {
    yield* openAIEvents(res, provider);
  } catch (err) {
    throw transportError(provider, err, signal);
  }
}

/** A stream that ends without its terminal marker was cut: the connection closed mid-answer. */
const cut = (provider: string) => new ProviderError(provider, 502, `${provider} closed the stream before the answer was complete`, null, 'stream');

async function* openAIEvents(res: Response, provider: string): AsyncGenerator<ChatCompletionChunk> {
  let finished = false;
  for await (const ev of parseSse(res.body!)) {
    if (ev.data === '[DONE]') return;
    let chunk: ChatCompletionChunk & { error?: { message?: string } };
    try {
      chunk = JSON.parse(ev.data);
    } catch {
      continue; // a malformed line is skipped, not fatal
    }
    if (chunk.error) throw new ProviderError(provider, 502, `${provider} stream error: ${chunk.error.message ?? 'unknown'}`, null, 'stream');
    if (chunk.choices?.some((c) => c.finish_reason)) finished = true;
    yield chunk;
  }
  // No [DONE]: complete only if a finish_reason came (some compatible servers omit [DONE]).
  if (!finished) throw cut(provider);
}

async function* translated(res: Response, translator: { push(ev: { event?: string; data: string }): ChatCompletionChunk[]; finish?(): ChatCompletionChunk[] }, provider: string, signal?: AbortSignal) {
  const events = parseSse(res.body!);
  let finished = false;
  for (;;) {
    let next: IteratorResult<{ event?: string; data: string }>;
    try {
      next = await events.next();
    } catch (err) {
      throw transportError(provider, err, signal);
    }
    let out: ChatCompletionChunk[];
    try {
      out = next.done ? (translator.finish?.() ?? []) : translator.push(next.value);
    } catch (err) {
      // The translator throws on the provider's in-band error event (say, overloaded_error).
      throw new ProviderError(provider, 502, `${provider} stream error: ${(err as Error).message}`, null, 'stream');
    }
    yield* out;
    if (out.some((c) => c.choices.some((x) => x.finish_reason))) finished = true;
    if (next.done) {
      if (!finished) throw cut(provider);
      return;
    }
  }
}

async function readJson(res: Response, provider: string, signal?: AbortSignal): Promise<unknown> {
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw transportError(provider, err, signal);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ProviderError(provider, 502, `${provider} answered with a body that is not JSON`);
  }
}

/**
 * Calls one provider in its own wire format and answers in OpenAI's. Streams come back as OpenAI
 * chunks; usage is always requested upstream so the proxy can settle cost, whatever the client asked.
 */
export async function callProvider(provider: ResolvedProvider, req: ChatRequest, model: string, opts: CallOptions & { mock: MockOptions }): Promise<ProviderResult> {
  const stream = req.stream === true;
  const id = `chatcmpl-${opts.requestId}`;
  const created = Math.floor(Date.now() / 1000);
  switch (provider.format) {
    case 'mock':
      return stream
        ? { kind: 'stream', chunks: mockStream(req, model, opts.requestId, opts.mock, opts.signal) }
        : { kind: 'json', completion: await mockCompletion(req, model, opts.requestId, opts.mock, opts.signal) };
    case 'openai': {
      const body = { ...req, model, ...(stream ? { stream_options: { include_usage: true } } : {}) };
      const headers: Record<string, string> = provider.apiKey ? { authorization: `Bearer ${provider.apiKey}` } : {};
      const res = await post(provider, `${provider.baseUrl}/chat/completions`, headers, body, opts);
      if (stream) return { kind: 'stream', chunks: openAIChunks(res, provider.name, opts.signal) };
      const completion = (await readJson(res, provider.name, opts.signal)) as ChatCompletion;
      return { kind: 'json', completion: { ...completion, model: completion.model ?? model } };
    }
    case 'anthropic': {
      const headers = { 'x-api-key': provider.apiKey ?? '', 'anthropic-version': ANTHROPIC_VERSION };
      const res = await post(provider, `${provider.baseUrl}/messages`, headers, toAnthropicRequest(req, model), opts);
      if (stream) return { kind: 'stream', chunks: translated(res, createAnthropicStreamTranslator({ id, model, created, includeUsage: true }), provider.name, opts.signal) };
      return { kind: 'json', completion: { ...fromAnthropicResponse(await readJson(res, provider.name, opts.signal), model), id } };
    }
    case 'gemini': {
      const path = stream ? `${model}:streamGenerateContent?alt=sse` : `${model}:generateContent`;
      const res = await post(provider, `${provider.baseUrl}/models/${path}`, { 'x-goog-api-key': provider.apiKey ?? '' }, toGeminiRequest(req), opts);
      if (stream) return { kind: 'stream', chunks: translated(res, createGeminiStreamTranslator({ id, model, created, includeUsage: true }), provider.name, opts.signal) };
      return { kind: 'json', completion: fromGeminiResponse(await readJson(res, provider.name, opts.signal), model, id) };
    }
  }
}
