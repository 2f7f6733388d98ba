import type { ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, ContentPart, FinishReason, ToolCall, Usage } from '../openai-types';
import { estimateMessagesTokens } from '../tokens';

/**
 * The built-in `mock` provider: deterministic, offline, no key. It honours max_tokens (one word a
 * token), streams word by word, answers JSON modes with valid JSON (a minimal instance of a
 * json_schema), calls a tool when tool_choice asks for one, and notices images. Latency comes from
 * MOCK_LATENCY_MS (before the first token) and MOCK_CHUNK_DELAY_MS (between chunks).
 */
export interface MockOptions {
  latencyMs: number;
  chunkDelayMs: number;
}

const SENTENCE = 'This is a deterministic answer from the Inference Edge mock provider, useful for demos and tests without provider keys.';

function lastUserText(messages: ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) return m.content.filter((p): p is Extract<ContentPart, { type: 'text' }> => p.type === 'text').map((p) => p.text).join(' ');
  }
  return '';
}

const imageCount = (messages: ChatMessage[]) =>
  messages.reduce((n, m) => n + (Array.isArray(m.content) ? m.content.filter((p) => p.type === 'image_url').length : 0), 0);

/** A minimal value that satisfies a JSON schema (types, required properties, enums, arrays). */
export function exampleFor(schema: Record<string, unknown> | undefined, depth = 0): unknown {
  if (!schema || depth > 6) return {};
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  if ('const' in schema) return schema.const;
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string':
      return 'mock';
    case 'integer':
    case 'number':
      return typeof schema.minimum === 'number' ? schema.minimum : 0;
    case 'boolean':
      return true;
    case 'null':
      return null;
    case 'array': {
      const min = typeof schema.minItems === 'number' ? schema.minItems : 0;
      return Array.from({ length: min }, () => exampleFor(schema.items as Record<string, unknown>, depth + 1));
    }
    default: {
      const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(props)) out[k] = exampleFor(v, depth + 1);
      return out;
    }
  }
}

interface MockAnswer {
  words: string[];
  toolCalls: ToolCall[] | null;
  finish: FinishReason;
  usage: Usage;
}

function answer(req: ChatRequest, requestId: string): MockAnswer {
  const maxTokens = req.max_completion_tokens ?? req.max_tokens;
  const prompt = estimateMessagesTokens(req.messages);
  const choice = req.tool_choice;
  const tool =
    req.tools?.length && choice && choice !== 'none' && choice !== 'auto'
      ? choice === 'required' ? req.tools[0] : req.tools.find((t) => t.function.name === choice.function.name)
      : undefined;
  if (tool) {
    const args = JSON.stringify(exampleFor(tool.function.parameters));
    return {
      words: [],
      toolCalls: [{ id: `call_${requestId.replace(/[^A-Za-z0-9]/g, '').slice(0, 24)}`, type: 'function', function: { name: tool.function.name, arguments: args } }],
      finish: 'tool_calls',
      usage: { prompt_tokens: prompt, completion_tokens: Math.ceil(args.length / 4), total_tokens: prompt + Math.ceil(args.length / 4) },
    };
  }
  let text: string;
  const format = req.response_format;
  if (format?.type === 'json_schema') text = JSON.stringify(exampleFor(format.json_schema.schema));
  else if (format?.type === 'json_object') text = JSON.stringify({ answer: 'mock', question_chars: lastUserText(req.messages).length });
  else {
    const images = imageCount(req.messages);
    text = images ? `I see ${images} image${images > 1 ? 's' : ''}. ${SENTENCE}` : SENTENCE;
  }
  // JSON is never cut (it would be invalid); prose honours max_tokens one word a token.
  const words = format && format.type !== 'text' ? [text] : text.split(/(?<= )/);
  const truncated = maxTokens !== undefined && words.length > maxTokens && !(format && format.type !== 'text');
  const kept = truncated ? words.slice(0, maxTokens) : words;
  return {
    words: kept,
    toolCalls: null,
    finish: truncated ? 'length' : 'stop',
    usage: { prompt_tokens: prompt, completion_tokens: kept.length, total_tokens: prompt + kept.length },
  };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  ms <= 0 ? Promise.resolve() : new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });

export async function mockCompletion(req: ChatRequest, model: string, requestId: string, opts: MockOptions, signal?: AbortSignal): Promise<ChatCompletion> {
  await sleep(opts.latencyMs, signal);
  const a = answer(req, requestId);
  return {
    id: `chatcmpl-${requestId}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: a.toolCalls ? null : a.words.join(''), ...(a.toolCalls ? { tool_calls: a.toolCalls } : {}), refusal: null }, finish_reason: a.finish, logprobs: null }],
    usage: a.usage,
  };
}

export async function* mockStream(req: ChatRequest, model: string, requestId: string, opts: MockOptions, signal?: AbortSignal): AsyncGenerator<ChatCompletionChunk> {
  const a = answer(req, requestId);
  const base = { id: `chatcmpl-${requestId}`, object: 'chat.completion.chunk' as const, created: Math.floor(Date.now() / 1000), model };
  await sleep(opts.latencyMs, signal);
  yield { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] };
  if (a.toolCalls) {
    yield { ...base, choices: [{ index: 0, delta: { tool_calls: a.toolCalls.map((t, index) => ({ index, ...t })) }, finish_reason: null }] };
  }
  for (const w of a.words) {
    await sleep(opts.chunkDelayMs, signal);
    yield { ...base, choices: [{ index: 0, delta: { content: w }, finish_reason: null }] };
  }
  yield { ...base, choices: [{ index: 0, delta: {}, finish_reason: a.finish }] };
  yield { ...base, choices: [], usage: a.usage };
}
