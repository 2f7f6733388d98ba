import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { close, listen, readBody } from './net';

/**
 * Test and dev plumbing, not product code: LLM providers on loopback speaking the OpenAI Chat
 * Completions and Anthropic Messages wire formats (JSON and SSE), deterministic, with latency and
 * fault knobs set through `POST /_control` or `configure()`, for a whole provider (`"openai"`) or one
 * of its models (`"openai/gpt-x"`, so concurrent tests using their own model names never interfere).
 * Several "providers" (say, a primary and a fallback) are one server under different path prefixes:
 * `/<name>/v1/...`. `GET /_requests` lists what was served.
 *
 *   /<name>/v1/chat/completions   OpenAI format (any name: openai, primary, groq, ...)
 *   /<name>/v1/models             OpenAI model list
 *   /<name>/v1/messages           Anthropic format
 *   /<name>/v1beta/models/<model>:generateContent | :streamGenerateContent?alt=sse   Gemini format
 */
export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string; retryAfterMs?: number }
  /** Anthropic's 529 `overloaded_error` (or OpenAI's 503 shape on an OpenAI path). */
  | { kind: 'overloaded' }
  /** Accepts the connection, then closes it without an answer. */
  | { kind: 'refuse' }
  /** Waits before the status line. */
  | { kind: 'slow-first-byte'; ms: number }
  /** Sends headers, then nothing for `ms` before the first chunk. */
  | { kind: 'stall-before-first-chunk'; ms: number }
  /** Sends `chunks` chunks, then nothing for `ms`, then the rest. */
  | { kind: 'stall-after-chunks'; chunks: number; ms: number }
  /** Sends `chunks` chunks, then drops the connection. */
  | { kind: 'cut-after-chunks'; chunks: number }
  /** Streams lines that are not valid SSE JSON among the valid ones. */
  | { kind: 'malformed-sse' };

export interface ProviderKnobs {
  /** Added before every answer. */
  latencyMs?: number;
  /** Delay between stream chunks. */
  chunkDelayMs?: number;
  fault?: Fault | null;
  /** How many requests the fault applies to (then it clears); unlimited when undefined. */
  faultTimes?: number;
  /** Fixed completion text; otherwise a deterministic sentence. */
  text?: string;
  /** Completion texts for the next requests, one each (then `text` or the sentence). */
  texts?: string[];
}

export interface FakeRequestRecord {
  provider: string;
  format: Format;
  model: string;
  stream: boolean;
  at: number;
  /** The text of every message as the provider received it (test plumbing: lets tests prove redaction). */
  text: string;
}

export interface FakeProviders {
  url: string;
  /** Base URL of one named provider, e.g. baseUrl('openai') → http://127.0.0.1:PORT/openai/v1 */
  baseUrl(name: string): string;
  configure(name: string, knobs: ProviderKnobs): void;
  reset(): void;
  /** Every request served, oldest first. */
  requests: FakeRequestRecord[];
  stop(): Promise<void>;
}

type Format = 'openai' | 'anthropic' | 'gemini';

const WORDS = 'The quick answer from a fake provider is deterministic and stops when max tokens are reached'.split(' ');

interface ChatMessage {
  role: string;
  content: unknown;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p) => (p && typeof p === 'object' && 'text' in p ? String((p as { text: unknown }).text) : '')).join(' ');
  }
  return '';
}

/** A rough token count (4 characters a token), as providers report it. */
const estimateTokens = (messages: ChatMessage[], system = '') =>
  Math.max(1, Math.ceil((system.length + messages.reduce((n, m) => n + textOf(m.content).length + 4, 0)) / 4));

function completionWords(knobs: ProviderKnobs, maxTokens: number | undefined): { words: string[]; truncated: boolean } {
  const text = knobs.texts?.length ? knobs.texts.shift() : knobs.text;
  const all = text !== undefined ? text.split(/(?<= )/) : WORDS.map((w, i) => (i < WORDS.length - 1 ? `${w} ` : `${w}.`));
  if (maxTokens !== undefined && maxTokens < all.length) return { words: all.slice(0, maxTokens), truncated: true };
  return { words: all, truncated: false };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeProviders(): Promise<FakeProviders> {
  const knobsByName = new Map<string, ProviderKnobs>();
  const requests: FakeRequestRecord[] = [];
  const sockets = new Set<Socket>();
  let seq = 0;

  /** Knobs set for `provider/model` win over those set for the whole `provider`. */
  const knobsFor = (name: string, model = ''): ProviderKnobs => knobsByName.get(`${name}/${model}`) ?? knobsByName.get(name) ?? {};
  /** The fault for this request, counting it down. */
  const takeFault = (name: string, model = ''): Fault | null => {
    const k = knobsFor(name, model);
    if (!k.fault) return null;
    if (k.faultTimes !== undefined) {
      if (k.faultTimes <= 0) return null;
      k.faultTimes -= 1;
    }
    return k.fault;
  };

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

  const errorBody = (format: Format, status: number, message: string) =>
    format === 'gemini'
      ? { error: { code: status, message, status: status === 429 ? 'RESOURCE_EXHAUSTED' : status === 400 ? 'INVALID_ARGUMENT' : status === 401 ? 'UNAUTHENTICATED' : status === 503 ? 'UNAVAILABLE' : 'INTERNAL' } }
      : format === 'anthropic'
      ? { type: 'error', error: { type: status === 529 ? 'overloaded_error' : status === 429 ? 'rate_limit_error' : status === 401 ? 'authentication_error' : status >= 500 ? 'api_error' : 'invalid_request_error', message } }
      : { error: { message, type: status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error', code: null, param: null } };

  /** Writes SSE events with the fault's stalls, cuts and garbage. */
  async function stream(res: ServerResponse, events: string[], knobs: ProviderKnobs, fault: Fault | null) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.flushHeaders();
    if (fault?.kind === 'stall-before-first-chunk') await sleep(fault.ms);
    for (let i = 0; i < events.length; i++) {
      if (res.destroyed) return;
      if (fault?.kind === 'cut-after-chunks' && i === fault.chunks) {
        // Let the sent chunks reach the client first, as when a connection drops mid-answer.
        await sleep(100);
        res.socket?.destroy();
        return;
      }
      if (fault?.kind === 'stall-after-chunks' && i === fault.chunks) await sleep(fault.ms);
      if (fault?.kind === 'malformed-sse' && i === 1) res.write(': keep-alive comment\r\n\r\ndata: {not json\n\ndata:\n\n');
      res.write(events[i]);
      if (knobs.chunkDelayMs) await sleep(knobs.chunkDelayMs);
    }
    res.end();
  }

  async function openai(res: ServerResponse, name: string, body: Record<string, unknown>, knobs: ProviderKnobs, fault: Fault | null) {
    const messages = (body.messages ?? []) as ChatMessage[];
    const model = String(body.model ?? 'fake-model');
    const maxTokens = (body.max_completion_tokens ?? body.max_tokens) as number | undefined;
    const { words, truncated } = completionWords(knobs, maxTokens);
    const usage = { prompt_tokens: estimateTokens(messages), completion_tokens: words.length, total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const id = `chatcmpl-fake-${name}-${++seq}`;
    const created = Math.floor(Date.now() / 1000);
    const finish = truncated ? 'length' : 'stop';
    if (!body.stream) {
      return json(res, 200, {
        id, object: 'chat.completion', created, model,
        choices: [{ index: 0, message: { role: 'assistant', content: words.join(''), refusal: null }, logprobs: null, finish_reason: finish }],
        usage,
      });
    }
    const chunk = (delta: object, finishReason: string | null, extra: object = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }], ...extra })}\n\n`;
    const events = [chunk({ role: 'assistant', content: '' }, null), ...words.map((w) => chunk({ content: w }, null)), chunk({}, finish)];
    if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage) {
      events.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`);
    }
    events.push('data: [DONE]\n\n');
    await stream(res, events, knobs, fault);
  }

  async function anthropic(res: ServerResponse, name: string, body: Record<string, unknown>, knobs: ProviderKnobs, fault: Fault | null) {
    const messages = (body.messages ?? []) as ChatMessage[];
    const model = String(body.model ?? 'fake-claude');
    const { words, truncated } = completionWords(knobs, body.max_tokens as number | undefined);
    const inputTokens = estimateTokens(messages, textOf(body.system));
    const id = `msg_fake_${name}_${++seq}`;
    const stopReason = truncated ? 'max_tokens' : 'end_turn';
    if (!body.stream) {
      return json(res, 200, {
        id, type: 'message', role: 'assistant', model,
        content: [{ type: 'text', text: words.join('') }],
        stop_reason: stopReason, stop_sequence: null,
        usage: { input_tokens: inputTokens, output_tokens: words.length },
      });
    }
    const ev = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    await stream(res, [
      ev('message_start', { message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: inputTokens, output_tokens: 1 } } }),
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      ev('ping', {}),
      ...words.map((w) => ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: w } })),
      ev('content_block_stop', { index: 0 }),
      ev('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: words.length } }),
      ev('message_stop', {}),
    ], knobs, fault);
  }

  async function gemini(res: ServerResponse, body: Record<string, unknown>, model: string, streaming: boolean, knobs: ProviderKnobs, fault: Fault | null) {
    const contents = (body.contents ?? []) as { role: string; parts: { text?: string }[] }[];
    const promptChars = contents.reduce((n, c) => n + c.parts.reduce((m, p) => m + (p.text?.length ?? 0), 0), 0);
    const config = (body.generationConfig ?? {}) as { maxOutputTokens?: number };
    const { words, truncated } = completionWords(knobs, config.maxOutputTokens);
    const usageMetadata = { promptTokenCount: Math.max(1, Math.ceil(promptChars / 4)), candidatesTokenCount: words.length, totalTokenCount: 0 };
    usageMetadata.totalTokenCount = usageMetadata.promptTokenCount + usageMetadata.candidatesTokenCount;
    const finishReason = truncated ? 'MAX_TOKENS' : 'STOP';
    if (!streaming) {
      return json(res, 200, { candidates: [{ content: { role: 'model', parts: [{ text: words.join('') }] }, finishReason, index: 0 }], usageMetadata, modelVersion: model });
    }
    const events = words.map((w, i) => `data: ${JSON.stringify({
      candidates: [{ content: { role: 'model', parts: [{ text: w }] }, index: 0, ...(i === words.length - 1 ? { finishReason } : {}) }],
      ...(i === words.length - 1 ? { usageMetadata } : {}),
      modelVersion: model,
    })}\r\n\r\n`);
    await stream(res, events, knobs, fault);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/_requests' && req.method === 'GET') return json(res, 200, requests);
    if (path === '/_reset' && req.method === 'POST') {
      knobsByName.clear();
      requests.length = 0;
      return json(res, 200, { ok: true });
    }
    if (path === '/_control' && req.method === 'POST') {
      const { provider, ...knobs } = JSON.parse(await readBody(req)) as ProviderKnobs & { provider: string };
      knobsByName.set(provider, knobs);
      return json(res, 200, { ok: true });
    }
    const g = /^\/([a-z0-9_-]+)\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/.exec(path);
    if (g) {
      const [, name, model, method] = g as unknown as [string, string, string, string];
      if (!req.headers['x-goog-api-key'] && !/[?&]key=/.test(req.url ?? '')) return json(res, 401, errorBody('gemini', 401, 'API key not valid'));
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(await readBody(req)) as Record<string, unknown>;
      } catch {
        return json(res, 400, errorBody('gemini', 400, 'Invalid JSON payload'));
      }
      if (!Array.isArray(body.contents)) return json(res, 400, errorBody('gemini', 400, 'contents is required'));
      const streaming = method === 'streamGenerateContent';
      requests.push({ provider: name, format: 'gemini', model, stream: streaming, at: Date.now(), text: JSON.stringify(body.contents) });
      const knobs = knobsFor(name, model);
      const fault = takeFault(name, model);
      if (knobs.latencyMs) await sleep(knobs.latencyMs);
      if (fault?.kind === 'status' || fault?.kind === 'overloaded') {
        const status = fault.kind === 'status' ? fault.status : 503;
        return json(res, status, errorBody('gemini', status, `fake ${status}`), fault.kind === 'status' && fault.retryAfter ? { 'retry-after': fault.retryAfter } : {});
      }
      if (fault?.kind === 'refuse') return void req.socket.destroy();
      if (fault?.kind === 'slow-first-byte') await sleep(fault.ms);
      return gemini(res, body, model, streaming, knobs, fault);
    }
    const m = /^\/([a-z0-9_-]+)\/v1\/(chat\/completions|messages|models)$/.exec(path);
    if (!m) return json(res, 404, { error: { message: `no fake route ${path}`, type: 'invalid_request_error', code: null, param: null } });
    const [, name, route] = m as unknown as [string, string, string];
    const format: Format = route === 'messages' ? 'anthropic' : 'openai';

    const authed = format === 'anthropic' ? Boolean(req.headers['x-api-key']) : /^Bearer \S+/.test(String(req.headers.authorization ?? ''));
    if (!authed) return json(res, 401, errorBody(format, 401, 'missing API key'));
    if (route === 'models') {
      return json(res, 200, { object: 'list', data: [{ id: 'fake-model', object: 'model', created: 0, owned_by: name }] });
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(await readBody(req)) as Record<string, unknown>;
    } catch {
      return json(res, 400, errorBody(format, 400, 'body is not JSON'));
    }
    if (!Array.isArray(body.messages) || typeof body.model !== 'string') {
      return json(res, 400, errorBody(format, 400, 'model and messages are required'));
    }
    if (format === 'anthropic' && typeof body.max_tokens !== 'number') {
      return json(res, 400, errorBody(format, 400, 'max_tokens: Field required'));
    }
    requests.push({ provider: name, format, model: body.model, stream: Boolean(body.stream), at: Date.now(), text: JSON.stringify([body.system ?? null, body.messages]) });

    const knobs = knobsFor(name, body.model);
    const fault = takeFault(name, body.model);
    if (knobs.latencyMs) await sleep(knobs.latencyMs);
    switch (fault?.kind) {
      case 'refuse':
        req.socket.destroy();
        return;
      case 'status': {
        const headers: Record<string, string> = {};
        if (fault.retryAfter !== undefined) headers['retry-after'] = fault.retryAfter;
        if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
        return json(res, fault.status, errorBody(format, fault.status, `fake ${fault.status}`), headers);
      }
      case 'overloaded':
        return json(res, format === 'anthropic' ? 529 : 503, errorBody(format, format === 'anthropic' ? 529 : 503, 'Overloaded'));
      case 'slow-first-byte':
        await sleep(fault.ms);
        break;
    }
    if (format === 'anthropic') await anthropic(res, name, body, knobs, fault);
    else await openai(res, name, body, knobs, fault);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) json(res, 500, { error: { message: err.message, type: 'server_error', code: null, param: null } });
      else res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const url = await listen(server);
  return {
    url,
    baseUrl: (name) => `${url}/${name}/v1`,
    configure: (name, knobs) => void knobsByName.set(name, { ...knobs }),
    reset: () => {
      knobsByName.clear();
      requests.length = 0;
    },
    requests,
    async stop() {
      for (const s of sockets) s.destroy();
      await close(server);
    },
  };
}
