import { ApiError } from '../../shared/errors';
import type { ChatMessage, ChatRequest } from '../../shared/openai-types';
import { estimateMessagesTokens, estimateMessageTokens } from '../../shared/tokens';

export interface TokenGuardResult {
  request: ChatRequest;
  /** Estimated prompt tokens after truncation. */
  promptTokens: number;
  /** Messages dropped to fit the context budget (0: none). */
  droppedMessages: number;
  /** The max_tokens the request will run with, and whether it was lowered. */
  maxTokens: number | undefined;
  maxTokensClamped: boolean;
}

const isSystem = (m: ChatMessage) => m.role === 'system' || m.role === 'developer';

/**
 * Keeps system messages and the latest turns that fit `budget` tokens (seed 000 truncation, seed 001
 * context management). The kept conversation starts at a user turn, so no tool result or assistant
 * reply is left without what it answers. The last message is always kept.
 */
export function truncateConversation(messages: ChatMessage[], budget: number): { messages: ChatMessage[]; dropped: number } {
  if (estimateMessagesTokens(messages) <= budget) return { messages, dropped: 0 };
  const system = messages.filter(isSystem);
  const turns = messages.filter((m) => !isSystem(m));
  let used = estimateMessagesTokens(system);
  let cut = turns.length;
  while (cut > 0) {
    const cost = estimateMessageTokens(turns[cut - 1]!);
    if (cut < turns.length && used + cost > budget) break;
    used += cost;
    cut--;
  }
  // Start at a user turn (or keep just the last message if there is none after the cut).
  let start = cut;
  while (start < turns.length - 1 && turns[start]!.role !== 'user') start++;
  const kept = turns.slice(start);
  const keptSet = new Set(kept);
  const result = messages.filter((m) => isSystem(m) || keptSet.has(m));
  return { messages: result, dropped: messages.length - result.length };
}

/**
 * Enforces the deployment's `tokensPerRequest`: truncates the conversation to the context budget
 * (default three quarters of it, leaving room for the answer), refuses a prompt that alone is over
 * (400 context_length_exceeded), and clamps max_tokens to what is left.
 */
export function applyTokenGuards(req: ChatRequest, limits: { tokensPerRequest?: number; contextBudgetTokens?: number }): TokenGuardResult {
  const perRequest = limits.tokensPerRequest;
  const budget = limits.contextBudgetTokens ?? (perRequest ? Math.floor(perRequest * 0.75) : undefined);
  let request = req;
  let dropped = 0;
  if (budget !== undefined) {
    const t = truncateConversation(req.messages, budget);
    if (t.dropped) {
      request = { ...req, messages: t.messages };
      dropped = t.dropped;
    }
  }
  const promptTokens = estimateMessagesTokens(request.messages);
  const requested = request.max_completion_tokens ?? request.max_tokens;
  if (perRequest === undefined) return { request, promptTokens, droppedMessages: dropped, maxTokens: requested, maxTokensClamped: false };
  const available = perRequest - promptTokens;
  if (available < 1) {
    throw new ApiError(400, 'context_length_exceeded',
      `The prompt is about ${promptTokens} tokens even after truncation; this deployment allows ${perRequest} tokens per request. Shorten the system prompt or the last message.`, 'messages');
  }
  const maxTokens = requested === undefined ? available : Math.min(requested, available);
  const field = request.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
  return {
    request: { ...request, [field]: maxTokens },
    promptTokens,
    droppedMessages: dropped,
    maxTokens,
    maxTokensClamped: requested !== undefined && maxTokens < requested,
  };
}
