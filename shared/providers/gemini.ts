/**
 * OpenAI Chat Completions ⇄ Google Gemini generateContent / streamGenerateContent?alt=sse.
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

type Json = Record<string, unknown>;

/** A Gemini Part: exactly one of these fields is set (thought/thoughtSignature ride along). */
interface GeminiPart {
  text?: string;
  thought?: boolean;
  thoughtSignature?: string;
  inlineData?: { mimeType: string; data: string };
  fileData?: { mimeType: string; fileUri: string };
  functionCall?: { name?: string; args?: Json };
  functionResponse?: { name: string; response: Json };
}

interface GeminiContent {
  role: 'user' | 'model';
  parts: GeminiPart[];
}

interface GeminiUsage {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  thoughtsTokenCount?: number;
  totalTokenCount?: number;
}

/** The parts of a GenerateContentResponse we read. */
interface GeminiResponse {
  candidates?: { content?: { parts?: GeminiPart[] }; finishReason?: string }[];
  promptFeedback?: { blockReason?: string };
  usageMetadata?: GeminiUsage;
  error?: unknown;
}

/**
 * Gemini 3 rejects a history whose function calls lack the thought signature it issued. OpenAI
 * clients cannot carry signatures back, so history calls get the sentinel Google documents for calls
 * it did not generate itself; older models ignore it.
 */
const SKIP_THOUGHT_SIGNATURE = 'skip_thought_signature_validator';

export function toGeminiRequest(req: ChatRequest): Record<string, unknown> {
  const system: string[] = [];
  const contents: GeminiContent[] = [];
  // functionResponse needs the function's name; OpenAI tool messages carry only the call id.
  const nameByCallId = new Map<string, string>();

  for (const msg of req.messages) {
    if (msg.role === 'system' || msg.role === 'developer') {
      const text = textOf(msg.content);
      if (text) system.push(text);
      continue;
    }
    let content: GeminiContent;
    if (msg.role === 'assistant') {
      const parts: GeminiPart[] = [];
      const text = textOf(msg.content);
      if (text) parts.push({ text });
      (msg.tool_calls ?? []).forEach((call, i) => {
        nameByCallId.set(call.id, call.function.name);
        const part: GeminiPart = { functionCall: { name: call.function.name, args: parseArguments(call.function.arguments) } };
        // The validator checks the first function call of each model turn.
        if (i === 0) part.thoughtSignature = SKIP_THOUGHT_SIGNATURE;
        parts.push(part);
      });
      content = { role: 'model', parts };
    } else if (msg.role === 'tool') {
      const name = nameByCallId.get(msg.tool_call_id ?? '') ?? msg.name ?? msg.tool_call_id ?? '';
      content = { role: 'user', parts: [{ functionResponse: { name, response: { content: textOf(msg.content) } } }] };
    } else {
      content = { role: 'user', parts: userParts(msg.content) };
    }
    if (content.parts.length === 0) continue; // Gemini rejects empty parts and empty text.
    const last = contents[contents.length - 1];
    // Same-role neighbours merge: Gemini wants alternation, and the answers to parallel calls must
    // arrive together in one turn.
    if (last && last.role === content.role) last.parts.push(...content.parts);
    else contents.push(content);
  }

  const body: Record<string, unknown> = { contents };
  if (system.length > 0) body.systemInstruction = { parts: [{ text: system.join('\n\n') }] };

  if (req.tools && req.tools.length > 0) {
    body.tools = [
      {
        functionDeclarations: req.tools.map((t) => {
          const decl: Json = { name: t.function.name };
          if (t.function.description) decl.description = t.function.description;
          const params = t.function.parameters ? toGeminiSchema(t.function.parameters) : undefined;
          // Gemini refuses an OBJECT with no properties; a parameterless function simply has none.
          if (params && !(params.type === 'OBJECT' && Object.keys((params.properties as Json | undefined) ?? {}).length === 0)) decl.parameters = params;
          return decl;
        }),
      },
    ];
    if (req.tool_choice !== undefined) body.toolConfig = { functionCallingConfig: functionCallingConfig(req.tool_choice) };
  }

  const config: Json = {};
  const maxTokens = req.max_completion_tokens ?? req.max_tokens;
  if (maxTokens !== undefined) config.maxOutputTokens = maxTokens;
  if (req.temperature !== undefined) config.temperature = req.temperature;
  if (req.top_p !== undefined) config.topP = req.top_p;
  if (req.stop !== undefined) config.stopSequences = Array.isArray(req.stop) ? req.stop : [req.stop];
  const format = req.response_format;
  if (format?.type === 'json_object' || format?.type === 'json_schema') config.responseMimeType = 'application/json';
  if (format?.type === 'json_schema' && format.json_schema.schema) config.responseSchema = toGeminiSchema(format.json_schema.schema);
  if (Object.keys(config).length > 0) body.generationConfig = config;
  return body;
}

function userParts(content: ChatMessage['content']): GeminiPart[] {
  if (content === null) return [];
  if (typeof content === 'string') return content ? [{ text: content }] : [];
  const parts: GeminiPart[] = [];
  for (const part of content) {
    if (part.type === 'text') {
      if (part.text) parts.push({ text: part.text });
    } else if (part.type === 'image_url') {
      parts.push(imagePart(part.image_url.url));
    }
  }
  return parts;
}

function imagePart(url: string): GeminiPart {
  const data = /^data:([^;,]+)(?:;[^;,]*)*;base64,(.*)$/s.exec(url);
  if (data) return { inlineData: { mimeType: data[1] ?? 'image/jpeg', data: data[2] ?? '' } };
  return { fileData: { mimeType: mimeFromUrl(url), fileUri: url } };
}

const MIME_BY_EXTENSION: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  gif: 'image/gif',
  webp: 'image/webp',
  heic: 'image/heic',
  heif: 'image/heif',
  pdf: 'application/pdf',
};

/** fileData needs a MIME type; the URL path's extension is all we know without fetching. */
function mimeFromUrl(url: string): string {
  let path = url;
  try {
    path = new URL(url).pathname;
  } catch {
    // not a URL we can parse: look at the raw string
  }
  const ext = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase();
  return (ext && MIME_BY_EXTENSION[ext]) || 'image/jpeg';
}

function functionCallingConfig(choice: NonNullable<ChatRequest['tool_choice']>): Json {
  if (choice === 'auto') return { mode: 'AUTO' };
  if (choice === 'required') return { mode: 'ANY' };
  if (choice === 'none') return { mode: 'NONE' };
  return { mode: 'ANY', allowedFunctionNames: [choice.function.name] };
}

/** Gemini's Schema is a subset of OpenAPI 3.0; anything else in it is a 400 ("Unknown name ..."). */
const SCHEMA_KEYS = new Set([
  'type', 'format', 'title', 'description', 'nullable', 'enum', 'items', 'minItems', 'maxItems', 'properties', 'required',
  'propertyOrdering', 'anyOf', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'minProperties', 'maxProperties',
  'default', 'example',
]);
/** The Gemini Developer API refuses other formats (uri, email, uuid...); they are hints only, so they go. */
const SCHEMA_FORMATS = new Set(['enum', 'date-time', 'float', 'double', 'int32', 'int64']);

/**
 * OpenAI-style JSON Schema → Gemini Schema: local $refs inlined ($defs/definitions, as Pydantic and zod
 * emit), type ["x","null"] and anyOf-with-null → nullable, const → enum, oneOf → anyOf, unsupported
 * keywords (additionalProperties, $schema, strict, ...) dropped, type names upper-cased.
 */
export function toGeminiSchema(schema: Json): Json {
  const defs = { ...asObject(schema.definitions), ...asObject(schema.$defs) };
  return convertSchema(schema, defs, new Set());
}

/** `expanding` holds the $refs being inlined on the current path: a recursive type stops there, open. */
function convertSchema(node: Json, defs: Json, expanding: ReadonlySet<string>): Json {
  if (typeof node.$ref === 'string') {
    const { $ref, ...siblings } = node;
    if (expanding.has($ref) || expanding.size > 32) return {}; // Gemini's Schema cannot express recursion
    const target = asObject(defs[$ref.replace(/^#\/(?:\$defs|definitions)\//, '')]);
    return convertSchema({ ...target, ...siblings }, defs, new Set([...expanding, $ref]));
  }
  // allOf: [X] is how Pydantic attaches a description to a $ref.
  if (Array.isArray(node.allOf) && node.allOf.length === 1) {
    const { allOf, ...siblings } = node;
    return convertSchema({ ...asObject(allOf[0]), ...siblings }, defs, expanding);
  }
  const recurse = (v: unknown) => convertSchema(asObject(v), defs, expanding);

  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (SCHEMA_KEYS.has(key)) out[key] = value;
  }
  if (Array.isArray(node.oneOf) && !out.anyOf) out.anyOf = node.oneOf;
  if (node.const !== undefined && node.const !== null) out.enum = [node.const];

  if (Array.isArray(out.type)) {
    const types = out.type.filter((t): t is string => typeof t === 'string');
    const nonNull = types.filter((t) => t !== 'null');
    if (nonNull.length < types.length) out.nullable = true;
    if (nonNull.length === 1) out.type = nonNull[0];
    else {
      delete out.type;
      if (nonNull.length > 1 && !out.anyOf) out.anyOf = nonNull.map((t) => ({ type: t }));
    }
  }
  if (typeof out.type === 'string') {
    if (out.type === 'null') {
      delete out.type;
      out.nullable = true;
    } else out.type = out.type.toUpperCase();
  }
  if (Array.isArray(out.enum)) {
    // Gemini enums are strings, whatever the declared type.
    if (out.enum.includes(null)) out.nullable = true;
    out.enum = out.enum.filter((v) => v !== null).map((v) => String(v));
  }
  if (typeof out.format === 'string' && !SCHEMA_FORMATS.has(out.format)) delete out.format;
  if (out.properties && typeof out.properties === 'object') {
    out.properties = Object.fromEntries(Object.entries(out.properties as Json).map(([k, v]) => [k, recurse(v)]));
  }
  if (out.items && typeof out.items === 'object' && !Array.isArray(out.items)) out.items = recurse(out.items);
  if (Array.isArray(out.anyOf)) {
    const members = out.anyOf.map((m) => asObject(m));
    const isNull = (m: Json) => m.type === 'null';
    if (members.some(isNull)) out.nullable = true;
    const rest = members.filter((m) => !isNull(m)).map(recurse);
    delete out.anyOf;
    // Optional[X] (anyOf [X, null]) is just a nullable X.
    if (rest.length === 1) {
      const nullable = out.nullable;
      Object.assign(out, rest[0]);
      if (nullable) out.nullable = true;
    } else if (rest.length > 1) out.anyOf = rest;
  }
  return out;
}

function asObject(v: unknown): Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {};
}

function parseArguments(args: string): Json {
  try {
    return asObject(JSON.parse(args));
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

/** Answer text, without thought summaries (parts marked thought: true). */
function answerText(parts: GeminiPart[]): string {
  return parts
    .filter((p) => typeof p.text === 'string' && !p.thought)
    .map((p) => p.text)
    .join('');
}

const FILTERED = new Set(['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII', 'IMAGE_SAFETY', 'IMAGE_PROHIBITED_CONTENT']);

function finishReason(reason: string | undefined, hasToolCalls: boolean): FinishReason {
  if (reason === 'MAX_TOKENS') return 'length';
  if (reason && FILTERED.has(reason)) return 'content_filter';
  // Gemini says STOP after function calls; OpenAI clients look for tool_calls.
  return hasToolCalls ? 'tool_calls' : 'stop';
}

/** Thinking tokens are billed as output, so they count as completion tokens (OpenAI does the same). */
function toUsage(u: GeminiUsage): Usage {
  const prompt = u.promptTokenCount ?? 0;
  const completion = (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: u.totalTokenCount ?? prompt + completion };
}

// `any`: untyped provider JSON, read through GeminiResponse.
export function fromGeminiResponse(body: any, requestedModel: string, id: string): ChatCompletion {
  const res = (body ?? {}) as GeminiResponse;
  const candidate = res.candidates?.[0];
  const parts = candidate?.content?.parts ?? [];
  const text = answerText(parts);
  const toolCalls: ToolCall[] = parts
    .filter((p) => p.functionCall)
    .map((p, n) => ({ id: `call_${n}`, type: 'function', function: { name: p.functionCall?.name ?? '', arguments: JSON.stringify(p.functionCall?.args ?? {}) } }));
  // No candidate at all means the prompt itself was blocked (promptFeedback.blockReason).
  const finish = candidate ? finishReason(candidate.finishReason, toolCalls.length > 0) : res.promptFeedback?.blockReason ? 'content_filter' : 'stop';

  const completion: ChatCompletion = {
    id,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: requestedModel,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text === '' && toolCalls.length > 0 ? null : text,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
          refusal: null,
        },
        finish_reason: finish,
        logprobs: null,
      },
    ],
  };
  if (res.usageMetadata) completion.usage = toUsage(res.usageMetadata);
  return completion;
}

/** Google errors look like {error:{code, message, status}}, sometimes wrapped in an array. */
export function geminiErrorMessage(body: any): string {
  if (typeof body === 'string') return body || 'unknown error';
  const root = Array.isArray(body) ? body[0] : body;
  const err = root?.error;
  if (err && typeof err === 'object') {
    const status = typeof err.status === 'string' ? err.status : '';
    const message = typeof err.message === 'string' ? err.message : '';
    if (status && message) return `${status}: ${message}`;
    if (message || status) return message || status;
  }
  if (typeof root?.message === 'string') return root.message;
  return body === undefined || body === null ? 'unknown error' : JSON.stringify(body);
}


export interface GeminiStreamTranslator {
  push(ev: SseEvent): ChatCompletionChunk[];
  /** Call at the end of the upstream stream: emits the usage chunk if includeUsage and not yet emitted. */
  finish(): ChatCompletionChunk[];
  readonly usage: Usage | null;
}

/** Each SSE event of streamGenerateContent?alt=sse is a whole GenerateContentResponse (a delta, not a snapshot). */
export function createGeminiStreamTranslator(opts: StreamOptions): GeminiStreamTranslator {
  let roleSent = false;
  let finished = false;
  let usageSent = false;
  let toolCount = 0;
  let usage: GeminiUsage | null = null;

  const chunk = (delta: ChatCompletionChunk['choices'][number]['delta'], finish: FinishReason | null = null): ChatCompletionChunk => {
    if (!roleSent) {
      roleSent = true;
      delta = { role: 'assistant', ...delta };
    }
    return {
      id: opts.id,
      object: 'chat.completion.chunk',
      created: opts.created,
      model: opts.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
      ...(opts.includeUsage ? { usage: null } : {}),
    };
  };

  return {
    push(ev: SseEvent): ChatCompletionChunk[] {
      let res: GeminiResponse;
      try {
        res = JSON.parse(ev.data) as GeminiResponse;
      } catch {
        throw new Error(`Gemini stream: malformed event data: ${ev.data.slice(0, 200)}`);
      }
      if (res.error) throw new Error(`Gemini stream error: ${geminiErrorMessage(res)}`);
      // usageMetadata is cumulative: the latest one is the answer so far.
      if (res.usageMetadata) usage = res.usageMetadata;

      const out: ChatCompletionChunk[] = [];
      const candidate = res.candidates?.[0];
      const parts = candidate?.content?.parts ?? [];
      const text = answerText(parts);
      // Gemini sends each function call whole, so one delta carries id, name and all arguments.
      const calls: ToolCallDelta[] = parts
        .filter((p) => p.functionCall)
        .map((p) => {
          const index = toolCount++;
          return { index, id: `call_${index}`, type: 'function', function: { name: p.functionCall?.name ?? '', arguments: JSON.stringify(p.functionCall?.args ?? {}) } };
        });
      if (text || calls.length > 0) out.push(chunk({ ...(text ? { content: text } : {}), ...(calls.length > 0 ? { tool_calls: calls } : {}) }));

      if (!finished) {
        if (candidate?.finishReason) {
          finished = true;
          out.push(chunk({}, finishReason(candidate.finishReason, toolCount > 0)));
        } else if (!candidate && res.promptFeedback?.blockReason) {
          finished = true;
          out.push(chunk({}, 'content_filter'));
        }
      }
      return out;
    },
    finish(): ChatCompletionChunk[] {
      if (!opts.includeUsage || usageSent) return [];
      usageSent = true;
      const u = usage ? toUsage(usage) : { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
      return [{ id: opts.id, object: 'chat.completion.chunk', created: opts.created, model: opts.model, choices: [], usage: u }];
    },
    get usage() {
      return usage ? toUsage(usage) : null;
    },
  };
}
