import * as z from 'zod/mini';
import type { ChatRequest } from '../../shared/openai-types';

/**
 * The Chat Completions request, validated at the edge. Known fields are checked (a bad one is a 400
 * naming it); unknown ones pass through to OpenAI-format providers, as the official API evolves.
 */
const textPart = z.object({ type: z.literal('text'), text: z.string() });
const imagePart = z.object({
  type: z.literal('image_url'),
  image_url: z.object({
    url: z.string().check(z.refine((u) => /^(https?:\/\/|data:image\/[a-z0-9.+-]+;base64,)/i.test(u), 'must be an http(s) URL or a data:image/...;base64 URL')),
    detail: z.optional(z.enum(['auto', 'low', 'high'])),
  }),
});
const contentPart = z.discriminatedUnion('type', [textPart, imagePart]);

const toolCall = z.object({
  id: z.string(),
  type: z.literal('function'),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

const message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.optional(z.nullable(z.union([z.string(), z.array(contentPart)]))),
  name: z.optional(z.string()),
  tool_calls: z.optional(z.array(toolCall)),
  tool_call_id: z.optional(z.string()),
});

const tool = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, "_" or "-" (at most 64)')),
    description: z.optional(z.string()),
    parameters: z.optional(z.record(z.string(), z.unknown())),
    strict: z.optional(z.nullable(z.boolean())),
  }),
});

const responseFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z.object({
      name: z.string(),
      description: z.optional(z.string()),
      schema: z.optional(z.record(z.string(), z.unknown())),
      strict: z.optional(z.nullable(z.boolean())),
    }),
  }),
]);

const positiveInt = z.int().check(z.positive());

export const chatRequestSchema = z.looseObject({
  model: z.string().check(z.minLength(1), z.maxLength(200)),
  messages: z.array(message).check(z.minLength(1, 'at least one message is required'), z.maxLength(2000)),
  stream: z.optional(z.nullable(z.boolean())),
  stream_options: z.optional(z.nullable(z.object({ include_usage: z.optional(z.boolean()) }))),
  max_tokens: z.optional(z.nullable(positiveInt)),
  max_completion_tokens: z.optional(z.nullable(positiveInt)),
  temperature: z.optional(z.nullable(z.number().check(z.gte(0), z.lte(2)))),
  top_p: z.optional(z.nullable(z.number().check(z.gte(0), z.lte(1)))),
  n: z.optional(z.nullable(z.literal(1, 'only n=1 is supported'))),
  stop: z.optional(z.nullable(z.union([z.string(), z.array(z.string()).check(z.maxLength(4))]))),
  tools: z.optional(z.array(tool).check(z.maxLength(128))),
  tool_choice: z.optional(z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })])),
  response_format: z.optional(responseFormat),
  user: z.optional(z.string().check(z.maxLength(256))),
  metadata: z.optional(z.record(z.string().check(z.maxLength(64)), z.string().check(z.maxLength(512)))),
});

/** Drops the nulls clients may send for "unset", so the rest of the proxy sees one shape. */
export function normalizeRequest(parsed: z.infer<typeof chatRequestSchema>): ChatRequest {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(parsed)) if (v !== null && v !== undefined) out[k] = v;
  out.messages = parsed.messages.map((m) => ({ ...m, content: m.content ?? null }));
  return out as unknown as ChatRequest;
}
