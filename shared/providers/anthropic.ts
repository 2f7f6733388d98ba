/**
 * OpenAI Chat Completions ⇄ Anthropic Messages API (POST /v1/messages), both plain and streamed.
 * Pure functions: no I/O, no Node APIs, so they run unchanged inside Workers.
 */
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatMessage,
  ChatRequest,
  ContentPart,
  FinishReason,
  SseEvent,
  ToolCall,
  ToolCallDelta,
  Usage,
} from '../openai-types';
import type { StreamOptions } from './types';

/** An Anthropic content block as we send it (text, image, tool_use, tool_result). */
type Block = Record<string, unknown>;

interface Turn {
  role: 'user' | 'assistant';
  content: Block[];
}

/** The parts of Anthropic's JSON we read. Everything else is ignored. */
interface AnthropicUsage {
  input_tokens?: number;
  output_tokens?: number;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
}

interface AnthropicBlock {
  type?: string;
  text?: string;
  id?: string;
  name?: string;
  input?: unknown;
}

interface AnthropicMessage {
  id?: string;
  content?: AnthropicBlock[];
  stop_reason?: string | null;
  usage?: AnthropicUsage;
}

const JSON_INSTRUCTION = 'Respond only with a JSON object. Do not write anything before or after it: no prose, no Markdown code fences.';

export function toAnthropicRequest(req: ChatRequest, model: string, maxTokensDefault = 4096): Record<string, unknown> {
  const system: string[] = [];
  const turns: Turn[] = [];

  for (const msg of req.messages) {
    if (msg.role === 'system' || msg.role === 'developer') {
      const text = textOf(msg.content);
      if (text) system.push(text);
      continue;
    }
    const turn = toTurn(msg);
    if (turn.content.length === 0) continue; // Anthropic rejects empty content; an empty turn carries nothing anyway.
    const last = turns[turns.length - 1];
    // Anthropic requires user/assistant alternation: consecutive same-role messages (several tool
    // results, a tool result then a user note, ...) become one turn.
    if (last && last.role === turn.role) last.content.push(...turn.content);
    else turns.push(turn);
  }
  // In a user turn, tool_result blocks must come before any other content.
  for (const turn of turns) {
    if (turn.role !== 'user') continue;
    turn.content = [...turn.content.filter((b) => b.type === 'tool_result'), ...turn.content.filter((b) => b.type !== 'tool_result')];
  }

  const format = req.response_format;
  if (format?.type === 'json_object') system.push(JSON_INSTRUCTION);
  else if (format?.type === 'json_schema') {
    // No native JSON mode used here: say it in the system prompt, schema included when given.
    const schema = format.json_schema.schema;
    system.push(schema ? `${JSON_INSTRUCTION} The JSON object must conform to this JSON Schema:\n${JSON.stringify(schema)}` : JSON_INSTRUCTION);
  }

  const body: Record<string, unknown> = {
    model,
    messages: turns,
    max_tokens: req.max_completion_tokens ?? req.max_tokens ?? maxTokensDefault,
  };
  if (system.length > 0) body.system = system.join('\n\n');
  if (req.stop !== undefined) body.stop_sequences = Array.isArray(req.stop) ? req.stop : [req.stop];
  // OpenAI allows 0–2, Anthropic 0–1 (and rejects more): clamp rather than fail a valid OpenAI request.
  if (req.temperature !== undefined) body.temperature = Math.min(Math.max(req.temperature, 0), 1);
  if (req.top_p !== undefined) body.top_p = req.top_p;
  if (req.stream) body.stream = true;
  if (req.user) body.metadata = { user_id: req.user };
  if (req.tools && req.tools.length > 0) {
    body.tools = req.tools.map((t) => ({
      name: t.function.name,
      ...(t.function.description ? { description: t.function.description } : {}),
      // input_schema is required by Anthropic; a parameterless function takes an empty object.
      input_schema: t.function.parameters ?? { type: 'object', properties: {} },
    }));
    if (req.tool_choice !== undefined) body.tool_choice = toolChoice(req.tool_choice);
  }
  return body;
}

function toTurn(msg: ChatMessage): Turn {
  if (msg.role === 'tool') {
    const content = typeof msg.content === 'string' || msg.content === null ? msg.content || '' : partsToBlocks(msg.content);
    const result: Block = { type: 'tool_result', tool_use_id: msg.tool_call_id ?? '' };
    if (content.length > 0) result.content = content;
    return { role: 'user', content: [result] };
  }
  if (msg.role === 'assistant') {
    const content: Block[] = [];
    const text = textOf(msg.content);
    if (text) content.push({ type: 'text', text });
    for (const call of msg.tool_calls ?? []) {
      content.push({ type: 'tool_use', id: call.id, name: call.function.name, input: parseArguments(call.function.arguments) });
    }
    return { role: 'assistant', content };
  }
  const content = typeof msg.content === 'string' ? (msg.content ? [{ type: 'text', text: msg.content }] : []) : partsToBlocks(msg.content ?? []);
  return { role: 'user', content };
}

function partsToBlocks(parts: ContentPart[]): Block[] {
  const blocks: Block[] = [];
  for (const part of parts) {
    if (part.type === 'text') {
      if (part.text) blocks.push({ type: 'text', text: part.text });
    } else if (part.type === 'image_url') {
      blocks.push(imageBlock(part.image_url.url));
    }
  }
  return blocks;
}

function imageBlock(url: string): Block {
  const data = /^data:([^;,]+)(?:;[^;,]*)*;base64,(.*)$/s.exec(url);
  if (data) return { type: 'image', source: { type: 'base64', media_type: data[1], data: data[2] } };
  // Anything else goes as a URL source: Anthropic fetches http(s) itself and explains what it refuses.
  return { type: 'image', source: { type: 'url', url } };
}

function toolChoice(choice: NonNullable<ChatRequest['tool_choice']>): Record<string, unknown> {
  if (choice === 'auto') return { type: 'auto' };
  if (choice === 'required') return { type: 'any' };
  if (choice === 'none') return { type: 'none' };
  return { type: 'tool', name: choice.function.name };
}

/** Tool arguments arrive as a JSON string; Anthropic wants the object. Garbage becomes {}. */
function parseArguments(args: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(args);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function textOf(content: ChatMessage['content']): string {
  if (content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .filter((p): p is Extract<ContentPart, { type: 'text' }> => p.type === 'text')
    .map((p) => p.text)
    .join('\n');
}

function finishReason(stopReason: string | null | undefined): FinishReason {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default: // end_turn, stop_sequence, pause_turn
      return 'stop';
  }
}

/** Cached input is still input: OpenAI's prompt_tokens counts it, so cache reads and writes are added. */
function toUsage(u: AnthropicUsage): Usage {
  const prompt = (u.input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
  const completion = u.output_tokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

// `any`: untyped provider JSON, read through AnthropicMessage.
export function fromAnthropicResponse(body: any, requestedModel: string): ChatCompletion {
  const msg = (body ?? {}) as AnthropicMessage;
  const blocks = msg.content ?? [];
  const text = blocks
    .filter((b) => b.type === 'text')
    .map((b) => b.text ?? '')
    .join('');
  const toolCalls: ToolCall[] = blocks
    .filter((b) => b.type === 'tool_use')
    .map((b) => ({ id: b.id ?? '', type: 'function', function: { name: b.name ?? '', arguments: JSON.stringify(b.input ?? {}) } }));

  const completion: ChatCompletion = {
    id: msg.id ?? '',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: requestedModel,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          // OpenAI's convention: a tool-calls-only answer has null content.
          content: text === '' && toolCalls.length > 0 ? null : text,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
          refusal: null,
        },
        finish_reason: finishReason(msg.stop_reason),
        logprobs: null,
      },
    ],
  };
  if (msg.usage) completion.usage = toUsage(msg.usage);
  return completion;
}

/** Anthropic errors look like {type:'error', error:{type, message}}; proxies may answer anything. */
export function anthropicErrorMessage(body: any): string {
  if (typeof body === 'string') return body || 'unknown error';
  const err = body?.error;
  if (err && typeof err === 'object') {
    const type = typeof err.type === 'string' ? err.type : '';
    const message = typeof err.message === 'string' ? err.message : '';
    if (type && message) return `${type}: ${message}`;
    if (message || type) return message || type;
  }
  if (typeof body?.message === 'string') return body.message;
  return body === undefined || body === null ? 'unknown error' : JSON.stringify(body);
}


export interface AnthropicStreamTranslator {
  push(ev: SseEvent): ChatCompletionChunk[];
  /** true once message_stop was seen */
  readonly done: boolean;
  /** usage known so far */
  readonly usage: Usage | null;
}

/** Incremental stream translation: feed each parsed SSE event in order; get zero or more OpenAI chunks back. */
export function createAnthropicStreamTranslator(opts: StreamOptions): AnthropicStreamTranslator {
  let done = false;
  let usage: AnthropicUsage | null = null;
  // OpenAI numbers tool calls 0,1,...; Anthropic numbers all content blocks (text, thinking, tool_use).
  const toolIndexByBlock = new Map<number, number>();

  const chunk = (delta: ChatCompletionChunk['choices'][number]['delta'], finish: FinishReason | null = null): ChatCompletionChunk => ({
    id: opts.id,
    object: 'chat.completion.chunk',
    created: opts.created,
    model: opts.model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    // OpenAI sends usage: null on every chunk but the last when include_usage is on.
    ...(opts.includeUsage ? { usage: null } : {}),
  });
  const recordUsage = (u: AnthropicUsage | undefined) => {
    if (!u) return;
    // message_delta usage is cumulative; later values replace earlier ones field by field.
    const merged: AnthropicUsage = { ...usage };
    for (const key of ['input_tokens', 'output_tokens', 'cache_read_input_tokens', 'cache_creation_input_tokens'] as const) {
      const v = u[key];
      if (typeof v === 'number') merged[key] = v;
    }
    usage = merged;
  };

  return {
    push(ev: SseEvent): ChatCompletionChunk[] {
      if (done) return [];
      let data: StreamEventData;
      try {
        data = JSON.parse(ev.data) as StreamEventData;
      } catch {
        throw new Error(`Anthropic stream: malformed event data: ${ev.data.slice(0, 200)}`);
      }
      switch (ev.event ?? data.type) {
        case 'message_start':
          recordUsage(data.message?.usage);
          return [chunk({ role: 'assistant', content: '' })];
        case 'content_block_start': {
          const block = data.content_block;
          if (block?.type !== 'tool_use') return [];
          const index = toolIndexByBlock.size;
          toolIndexByBlock.set(data.index ?? -1, index);
          const call: ToolCallDelta = { index, id: block.id ?? '', type: 'function', function: { name: block.name ?? '', arguments: '' } };
          return [chunk({ tool_calls: [call] })];
        }
        case 'content_block_delta': {
          const delta = data.delta;
          if (delta?.type === 'text_delta' && delta.text) return [chunk({ content: delta.text })];
          if (delta?.type === 'input_json_delta' && delta.partial_json) {
            const index = toolIndexByBlock.get(data.index ?? -1);
            if (index === undefined) return [];
            return [chunk({ tool_calls: [{ index, function: { arguments: delta.partial_json } }] })];
          }
          return []; // thinking_delta, signature_delta, citations: nothing OpenAI-shaped to say
        }
        case 'message_delta':
          recordUsage(data.usage);
          return [chunk({}, finishReason(data.delta?.stop_reason))];
        case 'message_stop': {
          done = true;
          if (!opts.includeUsage) return [];
          const u = usage ? toUsage(usage) : { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
          return [{ id: opts.id, object: 'chat.completion.chunk', created: opts.created, model: opts.model, choices: [], usage: u }];
        }
        case 'error':
          throw new Error(`Anthropic stream error: ${anthropicErrorMessage(data)}`);
        default:
          return []; // ping, content_block_stop, and event types added later
      }
    },
    get done() {
      return done;
    },
    get usage() {
      return usage ? toUsage(usage) : null;
    },
  };
}

interface StreamEventData {
  type?: string;
  index?: number;
  message?: { usage?: AnthropicUsage };
  content_block?: AnthropicBlock;
  delta?: { type?: string; text?: string; partial_json?: string; stop_reason?: string | null };
  usage?: AnthropicUsage;
  error?: { type?: string; message?: string };
}
