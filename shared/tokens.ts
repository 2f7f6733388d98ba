import type { ChatMessage } from './openai-types';

/**
 * A fast token estimate (about 4 characters a token, plus a little per message and per image), used
 * before the call for guards and reservations; actual usage from the provider settles later.
 */
const IMAGE_TOKENS = 765; // OpenAI's cost of a high-detail 512×512 tile set; a conservative stand-in.

export function estimateTextTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

export function estimateMessageTokens(m: ChatMessage): number {
  let n = 4;
  if (typeof m.content === 'string') n += estimateTextTokens(m.content);
  else if (Array.isArray(m.content)) {
    for (const p of m.content) n += p.type === 'text' ? estimateTextTokens(p.text) : IMAGE_TOKENS;
  }
  for (const t of m.tool_calls ?? []) n += estimateTextTokens(t.function.name) + estimateTextTokens(t.function.arguments);
  return n;
}

export function estimateMessagesTokens(messages: readonly ChatMessage[]): number {
  let n = 3;
  for (const m of messages) n += estimateMessageTokens(m);
  return n;
}
