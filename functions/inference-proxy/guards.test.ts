import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../shared/openai-types';
import { applyTokenGuards, truncateConversation } from './guards';

const words = (n: number) => 'word '.repeat(n).trim(); // 5 chars a word ≈ 1.25 tokens
const conversation = (turns: number): ChatMessage[] => [
  { role: 'system', content: 'You are helpful.' },
  ...Array.from({ length: turns }, (_, i): ChatMessage => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i}: ${words(80)}` })),
];

describe('truncateConversation', () => {
  it('keeps the system prompt and the latest turns, starting at a user turn', () => {
    const msgs = conversation(10);
    const { messages, dropped } = truncateConversation(msgs, 300);
    expect(dropped).toBeGreaterThan(0);
    expect(messages[0]).toEqual(msgs[0]);
    expect(messages[1]!.role).toBe('user');
    expect(messages.at(-1)).toEqual(msgs.at(-1));
    expect(messages.length + dropped).toBe(msgs.length);
  });

  it('leaves a conversation that fits alone', () => {
    const msgs = conversation(2);
    expect(truncateConversation(msgs, 10_000)).toEqual({ messages: msgs, dropped: 0 });
  });

  it('never orphans a tool result', () => {
    const msgs: ChatMessage[] = [
      { role: 'user', content: words(200) },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: words(10) },
      { role: 'assistant', content: words(10) },
      { role: 'user', content: 'and now?' },
    ];
    const { messages } = truncateConversation(msgs, 60);
    expect(messages.map((m) => m.role)).toEqual(['user']);
    expect(messages[0]!.content).toBe('and now?');
  });
});

describe('applyTokenGuards', () => {
  it('clamps max_tokens to what tokensPerRequest leaves', () => {
    const r = applyTokenGuards({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5000 }, { tokensPerRequest: 100 });
    expect(r.maxTokensClamped).toBe(true);
    expect(r.request.max_tokens).toBe(100 - r.promptTokens);
  });

  it('sets max_tokens when the client left it out, and keeps max_completion_tokens as the field', () => {
    expect(applyTokenGuards({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }, { tokensPerRequest: 100 }).request.max_tokens).toBeGreaterThan(0);
    const r = applyTokenGuards({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 10 }, { tokensPerRequest: 100 });
    expect(r.request.max_completion_tokens).toBe(10);
    expect(r.maxTokensClamped).toBe(false);
  });

  it('refuses a prompt that alone is over the limit', () => {
    expect(() => applyTokenGuards({ model: 'm', messages: [{ role: 'user', content: words(500) }] }, { tokensPerRequest: 100 })).toThrow(/tokens per request/);
  });

  it('truncates long conversations to three quarters of tokensPerRequest by default', () => {
    const r = applyTokenGuards({ model: 'm', messages: conversation(20) }, { tokensPerRequest: 800 });
    expect(r.droppedMessages).toBeGreaterThan(0);
    expect(r.promptTokens).toBeLessThanOrEqual(600);
  });

  it('does nothing without limits', () => {
    const req = { model: 'm', messages: conversation(4), max_tokens: 7 };
    expect(applyTokenGuards(req, {})).toMatchObject({ request: req, droppedMessages: 0, maxTokens: 7, maxTokensClamped: false });
  });
});
