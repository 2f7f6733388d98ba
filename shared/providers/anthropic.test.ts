import { describe, expect, it } from 'vitest';
import type { ChatCompletionChunk, ChatRequest, SseEvent } from '../openai-types';
import { anthropicErrorMessage, createAnthropicStreamTranslator, fromAnthropicResponse, toAnthropicRequest } from './anthropic';

const MODEL = 'claude-sonnet-4-5';

function request(over: Partial<ChatRequest>): ChatRequest {
  return { model: 'smart', messages: [{ role: 'user', content: 'Hi' }], ...over };
}

/** An SSE event as Anthropic sends it: the event name repeated as data.type. */
function ev(type: string, data: Record<string, unknown> = {}): SseEvent {
  return { event: type, data: JSON.stringify({ type, ...data }) };
}

describe('toAnthropicRequest', () => {
  it('moves system and developer messages to a joined top-level system prompt', () => {
    const body = toAnthropicRequest(
      request({
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
          { role: 'user', content: 'Hello' },
        ],
      }),
      MODEL,
    );
    expect(body).toEqual({
      model: MODEL,
      system: 'You are terse.\n\nAnswer in French.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }],
      max_tokens: 4096,
    });
  });

  it('always sends max_tokens: max_completion_tokens, then max_tokens, then the default', () => {
    expect(toAnthropicRequest(request({}), MODEL).max_tokens).toBe(4096);
    expect(toAnthropicRequest(request({}), MODEL, 1000).max_tokens).toBe(1000);
    expect(toAnthropicRequest(request({ max_tokens: 300 }), MODEL).max_tokens).toBe(300);
    expect(toAnthropicRequest(request({ max_tokens: 300, max_completion_tokens: 200 }), MODEL).max_tokens).toBe(200);
  });

  it('merges consecutive same-role messages so that turns alternate', () => {
    const body = toAnthropicRequest(
      request({
        messages: [
          { role: 'user', content: 'one' },
          { role: 'user', content: [{ type: 'text', text: 'two' }] },
          { role: 'assistant', content: 'three' },
          { role: 'assistant', content: 'four' },
          { role: 'user', content: 'five' },
        ],
      }),
      MODEL,
    );
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'three' }, { type: 'text', text: 'four' }] },
      { role: 'user', content: [{ type: 'text', text: 'five' }] },
    ]);
  });

  it('drops empty messages and empty text parts (Anthropic rejects empty text blocks)', () => {
    const body = toAnthropicRequest(
      request({
        messages: [
          { role: 'user', content: 'a' },
          { role: 'assistant', content: '' },
          { role: 'user', content: [{ type: 'text', text: '' }, { type: 'text', text: 'b' }] },
        ],
      }),
      MODEL,
    );
    expect(body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }]);
  });

  it('translates data: images to base64 sources and http(s) images to URL sources', () => {
    const body = toAnthropicRequest(
      request({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Compare these.' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
              { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
            ],
          },
        ],
      }),
      MODEL,
    );
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Compare these.' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
        ],
      },
    ]);
  });

  it('keeps the media type of a data: URL that carries extra parameters', () => {
    const body = toAnthropicRequest(
      request({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/webp;name=x.webp;base64,UklGRg==' } }] }] }),
      MODEL,
    );
    expect(body.messages).toEqual([{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/webp', data: 'UklGRg==' } }] }]);
  });

  it('turns assistant tool_calls into tool_use blocks and tool messages into tool_result blocks', () => {
    const body = toAnthropicRequest(
      request({
        messages: [
          { role: 'user', content: 'Weather in Paris and Oslo?' },
          {
            role: 'assistant',
            content: 'Checking both.',
            tool_calls: [
              { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
              { id: 'toolu_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
            ],
          },
          { role: 'tool', tool_call_id: 'toolu_1', content: '18°C, sunny' },
          { role: 'tool', tool_call_id: 'toolu_2', content: [{ type: 'text', text: '4°C, snow' }] },
          { role: 'user', content: 'Which is warmer?' },
        ],
      }),
      MODEL,
    );
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Oslo?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking both.' },
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Oslo' } },
        ],
      },
      {
        // Both results and the follow-up question share one user turn, results first.
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_1', content: '18°C, sunny' },
          { type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'text', text: '4°C, snow' }] },
          { type: 'text', text: 'Which is warmer?' },
        ],
      },
    ]);
  });

  it('sends tool_use input {} when arguments are not a JSON object, and only tool_use when content is null', () => {
    const body = toAnthropicRequest(
      request({
        messages: [
          { role: 'user', content: 'go' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              { id: 'a', type: 'function', function: { name: 'f', arguments: '{not json' } },
              { id: 'b', type: 'function', function: { name: 'g', arguments: '' } },
              { id: 'c', type: 'function', function: { name: 'h', arguments: '[1,2]' } },
            ],
          },
          { role: 'tool', tool_call_id: 'a', content: '' },
        ],
      }),
      MODEL,
    );
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'go' }] },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'a', name: 'f', input: {} },
          { type: 'tool_use', id: 'b', name: 'g', input: {} },
          { type: 'tool_use', id: 'c', name: 'h', input: {} },
        ],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'a' }] },
    ]);
  });

  it('puts tool_result blocks before text when a user message precedes a tool message', () => {
    const body = toAnthropicRequest(
      request({
        messages: [
          { role: 'assistant', content: null, tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{}' } }] },
          { role: 'user', content: 'note' },
          { role: 'tool', tool_call_id: 't', content: 'done' },
        ],
      }),
      MODEL,
    );
    expect(body.messages).toEqual([
      { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'done' }, { type: 'text', text: 'note' }] },
    ]);
  });

  it('translates tools, with an empty object schema for parameterless functions', () => {
    const parameters = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
    const body = toAnthropicRequest(
      request({
        tools: [
          { type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters } },
          { type: 'function', function: { name: 'now' } },
        ],
      }),
      MODEL,
    );
    expect(body.tools).toEqual([
      { name: 'get_weather', description: 'Current weather', input_schema: parameters },
      { name: 'now', input_schema: { type: 'object', properties: {} } },
    ]);
    expect(body).not.toHaveProperty('tool_choice');
  });

  it.each([
    ['auto', { type: 'auto' }],
    ['required', { type: 'any' }],
    ['none', { type: 'none' }],
    [{ type: 'function', function: { name: 'get_weather' } }, { type: 'tool', name: 'get_weather' }],
  ] as const)('maps tool_choice %j to %j', (choice, expected) => {
    const body = toAnthropicRequest(request({ tools: [{ type: 'function', function: { name: 'get_weather' } }], tool_choice: choice }), MODEL);
    expect(body.tool_choice).toEqual(expected);
  });

  it('sends no tool_choice without tools', () => {
    expect(toAnthropicRequest(request({ tool_choice: 'required' }), MODEL)).not.toHaveProperty('tool_choice');
  });

  it('maps sampling options, stop sequences, stream and user', () => {
    const body = toAnthropicRequest(request({ temperature: 0.3, top_p: 0.9, stop: 'END', stream: true, user: 'user-42', seed: 7 }), MODEL);
    expect(body).toMatchObject({ temperature: 0.3, top_p: 0.9, stop_sequences: ['END'], stream: true, metadata: { user_id: 'user-42' } });
    expect(body).not.toHaveProperty('seed');
    expect(toAnthropicRequest(request({ stop: ['a', 'b'] }), MODEL).stop_sequences).toEqual(['a', 'b']);
    const plain = toAnthropicRequest(request({ stream: false }), MODEL);
    for (const key of ['stream', 'temperature', 'top_p', 'stop_sequences', 'metadata', 'system', 'tools']) expect(plain).not.toHaveProperty(key);
  });

  it('clamps temperature into Anthropic’s 0–1 range', () => {
    expect(toAnthropicRequest(request({ temperature: 1.7 }), MODEL).temperature).toBe(1);
    expect(toAnthropicRequest(request({ temperature: 0 }), MODEL).temperature).toBe(0);
  });

  it('asks for JSON in the system prompt for response_format json_object', () => {
    const body = toAnthropicRequest(request({ messages: [{ role: 'system', content: 'Be precise.' }, { role: 'user', content: 'List 3 colours' }], response_format: { type: 'json_object' } }), MODEL);
    expect(body.system).toMatch(/^Be precise\.\n\nRespond only with a JSON object\./);
    expect(body.system).not.toMatch(/schema/i);
  });

  it('includes the schema for response_format json_schema, even without other system messages', () => {
    const schema = { type: 'object', properties: { colours: { type: 'array', items: { type: 'string' } } }, required: ['colours'] };
    const body = toAnthropicRequest(request({ response_format: { type: 'json_schema', json_schema: { name: 'colours', schema } } }), MODEL);
    expect(body.system).toContain('Respond only with a JSON object');
    expect(body.system).toContain(JSON.stringify(schema));
    const noSchema = toAnthropicRequest(request({ response_format: { type: 'json_schema', json_schema: { name: 'x' } } }), MODEL);
    expect(noSchema.system).toMatch(/^Respond only with a JSON object\./);
    expect(toAnthropicRequest(request({ response_format: { type: 'text' } }), MODEL)).not.toHaveProperty('system');
  });
});

describe('fromAnthropicResponse', () => {
  const textResponse = {
    id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
    type: 'message',
    role: 'assistant',
    model: 'claude-sonnet-4-5-20250929',
    content: [
      { type: 'thinking', thinking: 'hmm', signature: 'sig' },
      { type: 'text', text: 'Hello' },
      { type: 'text', text: ', world' },
    ],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: 6, cache_read_input_tokens: 100, cache_creation_input_tokens: 20 },
  };

  it('concatenates text blocks and adds cached input to prompt tokens', () => {
    const res = fromAnthropicResponse(textResponse, 'smart');
    expect(res).toMatchObject({
      id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
      object: 'chat.completion',
      model: 'smart',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello, world', refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 132, completion_tokens: 6, total_tokens: 138 },
    });
    expect(res.choices[0]?.message).not.toHaveProperty('tool_calls');
    expect(res.created).toBeGreaterThan(1_700_000_000);
  });

  it('turns tool_use blocks into tool_calls with JSON arguments and null content', () => {
    const res = fromAnthropicResponse(
      {
        id: 'msg_2',
        content: [
          { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris', unit: 'c' } },
          { type: 'tool_use', id: 'toolu_01B', name: 'now', input: {} },
        ],
        stop_reason: 'tool_use',
        usage: { input_tokens: 50, output_tokens: 30 },
      },
      'smart',
    );
    expect(res.choices[0]).toEqual({
      index: 0,
      message: {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'toolu_01A', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' } },
          { id: 'toolu_01B', type: 'function', function: { name: 'now', arguments: '{}' } },
        ],
        refusal: null,
      },
      finish_reason: 'tool_calls',
      logprobs: null,
    });
    expect(res.usage).toEqual({ prompt_tokens: 50, completion_tokens: 30, total_tokens: 80 });
  });

  it('keeps text next to tool calls', () => {
    const res = fromAnthropicResponse({ content: [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', id: 't', name: 'f', input: { a: 1 } }], stop_reason: 'tool_use' }, 'm');
    expect(res.choices[0]?.message.content).toBe('Let me check.');
    expect(res.choices[0]?.message.tool_calls).toHaveLength(1);
    expect(res).not.toHaveProperty('usage');
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['pause_turn', 'stop'],
    ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
  ])('maps stop_reason %s to finish_reason %s', (stopReason, finish) => {
    expect(fromAnthropicResponse({ content: [{ type: 'text', text: 'x' }], stop_reason: stopReason }, 'm').choices[0]?.finish_reason).toBe(finish);
  });

  it('answers empty content for an empty response', () => {
    expect(fromAnthropicResponse({ content: [], stop_reason: 'end_turn' }, 'm').choices[0]?.message.content).toBe('');
  });
});

describe('anthropicErrorMessage', () => {
  it('reads type and message from Anthropic’s error shape', () => {
    expect(anthropicErrorMessage({ type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } })).toBe(
      'invalid_request_error: max_tokens: Field required',
    );
    expect(anthropicErrorMessage({ error: { message: 'only a message' } })).toBe('only a message');
  });

  it('copes with anything else', () => {
    expect(anthropicErrorMessage('Bad Gateway')).toBe('Bad Gateway');
    expect(anthropicErrorMessage({ message: 'flat' })).toBe('flat');
    expect(anthropicErrorMessage({ weird: true })).toBe('{"weird":true}');
    expect(anthropicErrorMessage(null)).toBe('unknown error');
  });
});

describe('createAnthropicStreamTranslator', () => {
  const opts = { id: 'chatcmpl-1', model: 'smart', created: 1_750_000_000, includeUsage: true };
  const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1_750_000_000, model: 'smart' };
  const choice = (delta: ChatCompletionChunk['choices'][number]['delta'], finish: string | null = null) => ({
    ...base,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    usage: null,
  });
  const messageStart = ev('message_start', {
    message: {
      id: 'msg_1',
      type: 'message',
      role: 'assistant',
      content: [],
      model: 'claude-sonnet-4-5',
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 25, cache_read_input_tokens: 5, output_tokens: 1 },
    },
  });

  it('translates a text stream, ignoring ping and block stops, ending with a usage chunk', () => {
    const t = createAnthropicStreamTranslator(opts);
    expect(t.usage).toBeNull();
    const events = [
      messageStart,
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      ev('ping'),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: '!' } }),
      ev('content_block_stop', { index: 0 }),
      ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 15 } }),
    ];
    const chunks = events.flatMap((e) => t.push(e));
    expect(chunks).toEqual([
      choice({ role: 'assistant', content: '' }),
      choice({ content: 'Hello' }),
      choice({ content: '!' }),
      choice({}, 'stop'),
    ]);
    expect(t.done).toBe(false);
    expect(t.usage).toEqual({ prompt_tokens: 30, completion_tokens: 15, total_tokens: 45 });

    expect(t.push(ev('message_stop'))).toEqual([{ ...base, choices: [], usage: { prompt_tokens: 30, completion_tokens: 15, total_tokens: 45 } }]);
    expect(t.done).toBe(true);
    expect(t.push(ev('ping'))).toEqual([]);
  });

  it('translates tool_use blocks, numbering tool calls apart from content blocks, with split input_json_delta', () => {
    const t = createAnthropicStreamTranslator(opts);
    const events = [
      messageStart,
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Checking.' } }),
      ev('content_block_stop', { index: 0 }),
      ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'toolu_A', name: 'get_weather', input: {} } }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '' } }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{"city": "Pa' } }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: 'ris"' } }),
      ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '}' } }),
      ev('content_block_stop', { index: 1 }),
      ev('content_block_start', { index: 2, content_block: { type: 'tool_use', id: 'toolu_B', name: 'now', input: {} } }),
      ev('content_block_delta', { index: 2, delta: { type: 'input_json_delta', partial_json: '{}' } }),
      ev('content_block_stop', { index: 2 }),
      ev('message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 60 } }),
    ];
    const chunks = events.flatMap((e) => t.push(e));
    expect(chunks).toEqual([
      choice({ role: 'assistant', content: '' }),
      choice({ content: 'Checking.' }),
      choice({ tool_calls: [{ index: 0, id: 'toolu_A', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
      choice({ tool_calls: [{ index: 0, function: { arguments: '{"city": "Pa' } }] }),
      choice({ tool_calls: [{ index: 0, function: { arguments: 'ris"' } }] }),
      choice({ tool_calls: [{ index: 0, function: { arguments: '}' } }] }),
      choice({ tool_calls: [{ index: 1, id: 'toolu_B', type: 'function', function: { name: 'now', arguments: '' } }] }),
      choice({ tool_calls: [{ index: 1, function: { arguments: '{}' } }] }),
      choice({}, 'tool_calls'),
    ]);
    // Reassembled the way an OpenAI client does it.
    const args = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).filter((d) => d.index === 0).map((d) => d.function?.arguments ?? '').join('');
    expect(JSON.parse(args)).toEqual({ city: 'Paris' });
    expect(t.push(ev('message_stop'))).toEqual([{ ...base, choices: [], usage: { prompt_tokens: 30, completion_tokens: 60, total_tokens: 90 } }]);
  });

  it('ignores thinking deltas', () => {
    const t = createAnthropicStreamTranslator(opts);
    t.push(messageStart);
    expect(t.push(ev('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '' } }))).toEqual([]);
    expect(t.push(ev('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'Let me think' } }))).toEqual([]);
    expect(t.push(ev('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'abc' } }))).toEqual([]);
  });

  it.each([
    ['max_tokens', 'length'],
    ['stop_sequence', 'stop'],
    ['refusal', 'content_filter'],
  ])('maps message_delta stop_reason %s to %s', (stopReason, finish) => {
    const t = createAnthropicStreamTranslator(opts);
    t.push(messageStart);
    expect(t.push(ev('message_delta', { delta: { stop_reason: stopReason }, usage: { output_tokens: 3 } }))).toEqual([choice({}, finish)]);
  });

  it('takes cumulative input counts from message_delta when Anthropic sends them', () => {
    const t = createAnthropicStreamTranslator(opts);
    t.push(messageStart);
    t.push(ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { input_tokens: 40, cache_read_input_tokens: 5, output_tokens: 9 } }));
    expect(t.usage).toEqual({ prompt_tokens: 45, completion_tokens: 9, total_tokens: 54 });
  });

  it('leaves usage out when include_usage is off', () => {
    const t = createAnthropicStreamTranslator({ ...opts, includeUsage: false });
    const [first] = t.push(messageStart);
    expect(first).not.toHaveProperty('usage');
    t.push(ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 2 } }));
    expect(t.push(ev('message_stop'))).toEqual([]);
    expect(t.done).toBe(true);
    // Still known, for the caller's own accounting.
    expect(t.usage).toEqual({ prompt_tokens: 30, completion_tokens: 2, total_tokens: 32 });
  });

  it('reads the event type from data when the event name is missing', () => {
    const t = createAnthropicStreamTranslator(opts);
    t.push(messageStart);
    expect(t.push({ data: JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'x' } }) })).toEqual([choice({ content: 'x' })]);
  });

  it('throws on an error event, naming its type and message', () => {
    const t = createAnthropicStreamTranslator(opts);
    t.push(messageStart);
    expect(() => t.push(ev('error', { error: { type: 'overloaded_error', message: 'Overloaded' } }))).toThrow(/overloaded_error: Overloaded/);
  });

  it('throws on data that is not JSON', () => {
    const t = createAnthropicStreamTranslator(opts);
    expect(() => t.push({ event: 'message_start', data: '{oops' })).toThrow(/malformed/);
  });
});
