import { describe, expect, it } from 'vitest';
import type { ChatCompletionChunk, ChatRequest, SseEvent } from '../openai-types';
import { createGeminiStreamTranslator, fromGeminiResponse, geminiErrorMessage, toGeminiRequest, toGeminiSchema } from './gemini';

function request(over: Partial<ChatRequest>): ChatRequest {
  return { model: 'fast', messages: [{ role: 'user', content: 'Hi' }], ...over };
}

/** One event of streamGenerateContent?alt=sse: SSE without event names, data a GenerateContentResponse. */
function ev(data: Record<string, unknown>): SseEvent {
  return { data: JSON.stringify({ modelVersion: 'gemini-2.5-flash', responseId: 'r1', ...data }) };
}

const SKIP = 'skip_thought_signature_validator';

describe('toGeminiRequest', () => {
  it('puts system and developer messages in systemInstruction and maps roles to user/model', () => {
    const body = toGeminiRequest(
      request({
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
          { role: 'user', content: 'Hello' },
          { role: 'assistant', content: 'Bonjour' },
          { role: 'user', content: [{ type: 'text', text: 'Ça va ?' }] },
        ],
      }),
    );
    expect(body).toEqual({
      systemInstruction: { parts: [{ text: 'You are terse.\n\nAnswer in French.' }] },
      contents: [
        { role: 'user', parts: [{ text: 'Hello' }] },
        { role: 'model', parts: [{ text: 'Bonjour' }] },
        { role: 'user', parts: [{ text: 'Ça va ?' }] },
      ],
    });
  });

  it('merges consecutive same-role messages and drops empty ones', () => {
    const body = toGeminiRequest(
      request({
        messages: [
          { role: 'user', content: 'one' },
          { role: 'assistant', content: '' },
          { role: 'user', content: 'two' },
          { role: 'assistant', content: 'three' },
          { role: 'assistant', content: [{ type: 'text', text: 'four' }] },
        ],
      }),
    );
    expect(body.contents).toEqual([
      { role: 'user', parts: [{ text: 'one' }, { text: 'two' }] },
      { role: 'model', parts: [{ text: 'three' }, { text: 'four' }] },
    ]);
  });

  it('sends data: images inline and http(s) images as fileData with a MIME type from the extension', () => {
    const body = toGeminiRequest(
      request({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is in these?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
              { type: 'image_url', image_url: { url: 'https://example.com/a/photo.PNG' } },
              { type: 'image_url', image_url: { url: 'https://cdn.example.com/x.webp?sig=abc.jpg' } },
              { type: 'image_url', image_url: { url: 'https://example.com/image' } },
              { type: 'image_url', image_url: { url: 'http://example.com/doc.pdf' } },
            ],
          },
        ],
      }),
    );
    expect(body.contents).toEqual([
      {
        role: 'user',
        parts: [
          { text: 'What is in these?' },
          { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } },
          { fileData: { mimeType: 'image/png', fileUri: 'https://example.com/a/photo.PNG' } },
          { fileData: { mimeType: 'image/webp', fileUri: 'https://cdn.example.com/x.webp?sig=abc.jpg' } },
          { fileData: { mimeType: 'image/jpeg', fileUri: 'https://example.com/image' } },
          { fileData: { mimeType: 'application/pdf', fileUri: 'http://example.com/doc.pdf' } },
        ],
      },
    ]);
  });

  it('turns tool calls into functionCall parts and tool results into one functionResponse turn', () => {
    const body = toGeminiRequest(
      request({
        messages: [
          { role: 'user', content: 'Weather in Paris and Oslo?' },
          {
            role: 'assistant',
            content: 'Checking.',
            tool_calls: [
              { id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
              { id: 'call_1', type: 'function', function: { name: 'get_time', arguments: 'not json' } },
            ],
          },
          { role: 'tool', tool_call_id: 'call_0', content: '18°C' },
          { role: 'tool', tool_call_id: 'call_1', content: [{ type: 'text', text: '14:00' }] },
          { role: 'user', content: 'Thanks' },
        ],
      }),
    );
    expect(body.contents).toEqual([
      { role: 'user', parts: [{ text: 'Weather in Paris and Oslo?' }] },
      {
        role: 'model',
        parts: [
          { text: 'Checking.' },
          { functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: SKIP },
          { functionCall: { name: 'get_time', args: {} } },
        ],
      },
      {
        role: 'user',
        parts: [
          { functionResponse: { name: 'get_weather', response: { content: '18°C' } } },
          { functionResponse: { name: 'get_time', response: { content: '14:00' } } },
          { text: 'Thanks' },
        ],
      },
    ]);
  });

  it('names a functionResponse after the most recent call with that id, falling back to the message name', () => {
    const body = toGeminiRequest(
      request({
        messages: [
          { role: 'assistant', content: null, tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'first', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'call_0', content: 'a' },
          // Gemini-minted ids restart at call_0 every response.
          { role: 'assistant', content: null, tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'second', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'call_0', content: 'b' },
          { role: 'tool', tool_call_id: 'unknown', name: 'legacy', content: 'c' },
        ],
      }),
    );
    const names = (body.contents as { parts: { functionResponse?: { name: string } }[] }[]).flatMap((c) => c.parts.map((p) => p.functionResponse?.name).filter(Boolean));
    expect(names).toEqual(['first', 'second', 'legacy']);
  });

  it('declares tools, converting their schemas and leaving out empty parameter objects', () => {
    const body = toGeminiRequest(
      request({
        tools: [
          {
            type: 'function',
            function: {
              name: 'get_weather',
              description: 'Current weather',
              strict: true,
              parameters: {
                type: 'object',
                properties: { city: { type: 'string', description: 'City name' }, unit: { type: ['string', 'null'], enum: ['c', 'f', null] } },
                required: ['city', 'unit'],
                additionalProperties: false,
              },
            },
          },
          { type: 'function', function: { name: 'now', parameters: { type: 'object', properties: {} } } },
          { type: 'function', function: { name: 'ping' } },
        ],
      }),
    );
    expect(body.tools).toEqual([
      {
        functionDeclarations: [
          {
            name: 'get_weather',
            description: 'Current weather',
            parameters: {
              type: 'OBJECT',
              properties: { city: { type: 'STRING', description: 'City name' }, unit: { type: 'STRING', nullable: true, enum: ['c', 'f'] } },
              required: ['city', 'unit'],
            },
          },
          { name: 'now' },
          { name: 'ping' },
        ],
      },
    ]);
    expect(body).not.toHaveProperty('toolConfig');
  });

  it.each([
    ['auto', { mode: 'AUTO' }],
    ['required', { mode: 'ANY' }],
    ['none', { mode: 'NONE' }],
    [{ type: 'function', function: { name: 'get_weather' } }, { mode: 'ANY', allowedFunctionNames: ['get_weather'] }],
  ] as const)('maps tool_choice %j to functionCallingConfig %j', (choice, expected) => {
    const body = toGeminiRequest(request({ tools: [{ type: 'function', function: { name: 'get_weather' } }], tool_choice: choice }));
    expect(body.toolConfig).toEqual({ functionCallingConfig: expected });
  });

  it('fills generationConfig only with what was asked', () => {
    expect(toGeminiRequest(request({}))).not.toHaveProperty('generationConfig');
    expect(toGeminiRequest(request({ max_tokens: 100, max_completion_tokens: 50, temperature: 1.5, top_p: 0.8, stop: 'END', seed: 3 })).generationConfig).toEqual({
      maxOutputTokens: 50,
      temperature: 1.5,
      topP: 0.8,
      stopSequences: ['END'],
    });
    expect(toGeminiRequest(request({ max_tokens: 100, stop: ['a', 'b'] })).generationConfig).toEqual({ maxOutputTokens: 100, stopSequences: ['a', 'b'] });
  });

  it('asks for JSON for json_object, and with a converted responseSchema for json_schema', () => {
    expect(toGeminiRequest(request({ response_format: { type: 'json_object' } })).generationConfig).toEqual({ responseMimeType: 'application/json' });
    expect(toGeminiRequest(request({ response_format: { type: 'text' } }))).not.toHaveProperty('generationConfig');
    const schema = {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: { colours: { type: 'array', items: { type: 'string' } } },
      required: ['colours'],
      additionalProperties: false,
    };
    expect(toGeminiRequest(request({ response_format: { type: 'json_schema', json_schema: { name: 'colours', strict: true, schema } } })).generationConfig).toEqual({
      responseMimeType: 'application/json',
      responseSchema: { type: 'OBJECT', properties: { colours: { type: 'ARRAY', items: { type: 'STRING' } } }, required: ['colours'] },
    });
    expect(toGeminiRequest(request({ response_format: { type: 'json_schema', json_schema: { name: 'x' } } })).generationConfig).toEqual({
      responseMimeType: 'application/json',
    });
  });
});

describe('toGeminiSchema', () => {
  it('inlines $defs references, as Pydantic emits them, and turns Optional (anyOf with null) into nullable', () => {
    const pydantic = {
      $defs: {
        Address: { type: 'object', properties: { city: { type: 'string', title: 'City' } }, required: ['city'], title: 'Address' },
      },
      type: 'object',
      title: 'Person',
      properties: {
        name: { type: 'string', title: 'Name' },
        home: { $ref: '#/$defs/Address' },
        work: { anyOf: [{ $ref: '#/$defs/Address' }, { type: 'null' }], default: null },
        born: { type: 'string', format: 'date-time' },
        site: { type: 'string', format: 'uri' },
        kind: { const: 'person' },
        manager: { allOf: [{ $ref: '#/$defs/Address' }], description: 'Where the manager sits' },
        score: { oneOf: [{ type: 'integer' }, { type: 'string' }] },
      },
      required: ['name', 'home'],
    };
    const address = { type: 'OBJECT', properties: { city: { type: 'STRING', title: 'City' } }, required: ['city'], title: 'Address' };
    expect(toGeminiSchema(pydantic)).toEqual({
      type: 'OBJECT',
      title: 'Person',
      properties: {
        name: { type: 'STRING', title: 'Name' },
        home: address,
        work: { ...address, default: null, nullable: true },
        born: { type: 'STRING', format: 'date-time' },
        site: { type: 'STRING' },
        kind: { enum: ['person'] },
        manager: { ...address, description: 'Where the manager sits' },
        score: { anyOf: [{ type: 'INTEGER' }, { type: 'STRING' }] },
      },
      required: ['name', 'home'],
    });
  });

  it('cuts recursive references instead of looping', () => {
    const tree = {
      definitions: { Node: { type: 'object', properties: { value: { type: 'number' }, children: { type: 'array', items: { $ref: '#/definitions/Node' } } } } },
      $ref: '#/definitions/Node',
    };
    expect(toGeminiSchema(tree)).toEqual({
      type: 'OBJECT',
      properties: { value: { type: 'NUMBER' }, children: { type: 'ARRAY', items: {} } },
    });
  });

  it('spreads multi-type arrays into anyOf and stringifies enum values', () => {
    expect(toGeminiSchema({ type: ['string', 'integer', 'null'] })).toEqual({ nullable: true, anyOf: [{ type: 'STRING' }, { type: 'INTEGER' }] });
    expect(toGeminiSchema({ type: 'integer', enum: [1, 2, 3] })).toEqual({ type: 'INTEGER', enum: ['1', '2', '3'] });
  });
});

describe('fromGeminiResponse', () => {
  it('joins text parts, skips thought summaries and reports usage with thinking tokens as completion', () => {
    const res = fromGeminiResponse(
      {
        candidates: [
          {
            content: { role: 'model', parts: [{ text: 'Planning the answer', thought: true }, { text: 'Hello' }, { text: ', world' }] },
            finishReason: 'STOP',
            index: 0,
          },
        ],
        usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 4, thoughtsTokenCount: 20, totalTokenCount: 34 },
        modelVersion: 'gemini-2.5-flash',
      },
      'fast',
      'chatcmpl-9',
    );
    expect(res).toMatchObject({
      id: 'chatcmpl-9',
      object: 'chat.completion',
      model: 'fast',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello, world', refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 10, completion_tokens: 24, total_tokens: 34 },
    });
    expect(res.choices[0]?.message).not.toHaveProperty('tool_calls');
  });

  it('turns functionCall parts into tool_calls with generated ids and finish_reason tool_calls', () => {
    const res = fromGeminiResponse(
      {
        candidates: [
          {
            content: {
              role: 'model',
              parts: [
                { functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: 'c2ln' },
                { functionCall: { name: 'now' } },
              ],
            },
            finishReason: 'STOP',
          },
        ],
        usageMetadata: { promptTokenCount: 30, candidatesTokenCount: 12, totalTokenCount: 42 },
      },
      'fast',
      'id-1',
    );
    expect(res.choices[0]).toEqual({
      index: 0,
      message: {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_1', type: 'function', function: { name: 'now', arguments: '{}' } },
        ],
        refusal: null,
      },
      finish_reason: 'tool_calls',
      logprobs: null,
    });
    expect(res.usage).toEqual({ prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 });
  });

  it.each([
    ['STOP', 'stop'],
    ['MAX_TOKENS', 'length'],
    ['SAFETY', 'content_filter'],
    ['RECITATION', 'content_filter'],
    ['BLOCKLIST', 'content_filter'],
    ['PROHIBITED_CONTENT', 'content_filter'],
    ['SPII', 'content_filter'],
    ['OTHER', 'stop'],
  ])('maps finishReason %s to %s', (reason, finish) => {
    const res = fromGeminiResponse({ candidates: [{ content: { parts: [{ text: 'x' }] }, finishReason: reason }] }, 'm', 'i');
    expect(res.choices[0]?.finish_reason).toBe(finish);
  });

  it('reports a blocked prompt (no candidates) as content_filter with empty content', () => {
    const res = fromGeminiResponse({ promptFeedback: { blockReason: 'SAFETY' }, usageMetadata: { promptTokenCount: 7, totalTokenCount: 7 } }, 'm', 'i');
    expect(res.choices[0]).toMatchObject({ message: { content: '' }, finish_reason: 'content_filter' });
    expect(res.usage).toEqual({ prompt_tokens: 7, completion_tokens: 0, total_tokens: 7 });
  });

  it('answers without usage when Gemini gives none', () => {
    expect(fromGeminiResponse({ candidates: [{ content: { parts: [{ text: 'x' }] }, finishReason: 'STOP' }] }, 'm', 'i')).not.toHaveProperty('usage');
  });
});

describe('geminiErrorMessage', () => {
  it('reads status and message, also from the array form', () => {
    const err = { error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT' } };
    expect(geminiErrorMessage(err)).toBe('INVALID_ARGUMENT: API key not valid. Please pass a valid API key.');
    expect(geminiErrorMessage([err])).toBe('INVALID_ARGUMENT: API key not valid. Please pass a valid API key.');
    expect(geminiErrorMessage({ error: { code: 500, message: 'Internal error' } })).toBe('Internal error');
  });

  it('copes with anything else', () => {
    expect(geminiErrorMessage('Service Unavailable')).toBe('Service Unavailable');
    expect(geminiErrorMessage({ odd: 1 })).toBe('{"odd":1}');
    expect(geminiErrorMessage(undefined)).toBe('unknown error');
  });
});

describe('createGeminiStreamTranslator', () => {
  const opts = { id: 'chatcmpl-2', model: 'fast', created: 1_750_000_000, includeUsage: true };
  const base = { id: 'chatcmpl-2', object: 'chat.completion.chunk', created: 1_750_000_000, model: 'fast' };
  const choice = (delta: ChatCompletionChunk['choices'][number]['delta'], finish: string | null = null) => ({
    ...base,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    usage: null,
  });
  const text = (t: string, extra: Record<string, unknown> = {}) => ({ content: { role: 'model', parts: [{ text: t }] }, index: 0, ...extra });

  it('translates a text stream: role on the first chunk, finish chunk, usage chunk from finish()', () => {
    const t = createGeminiStreamTranslator(opts);
    expect(t.usage).toBeNull();
    const chunks = [
      ev({ candidates: [text('Hel')], usageMetadata: { promptTokenCount: 9, totalTokenCount: 9 } }),
      ev({ candidates: [{ content: { role: 'model', parts: [{ text: 'thinking…', thought: true }] } }] }),
      ev({ candidates: [text('lo')], usageMetadata: { promptTokenCount: 9, candidatesTokenCount: 2, totalTokenCount: 11 } }),
      ev({ candidates: [text('!', { finishReason: 'STOP' })], usageMetadata: { promptTokenCount: 9, candidatesTokenCount: 3, totalTokenCount: 12 } }),
    ].flatMap((e) => t.push(e));
    expect(chunks).toEqual([
      choice({ role: 'assistant', content: 'Hel' }),
      choice({ content: 'lo' }),
      choice({ content: '!' }),
      choice({}, 'stop'),
    ]);
    expect(t.usage).toEqual({ prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 });
    expect(t.finish()).toEqual([{ ...base, choices: [], usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 } }]);
    expect(t.finish()).toEqual([]);
  });

  it('sends each functionCall as one complete tool_calls delta, numbered across the stream', () => {
    const t = createGeminiStreamTranslator(opts);
    const chunks = [
      ev({ candidates: [text('Let me check.')] }),
      ev({ candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: 'c2ln' }] } }] }),
      ev({
        candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'now', args: {} } }] }, finishReason: 'STOP' }],
        usageMetadata: { promptTokenCount: 20, candidatesTokenCount: 15, thoughtsTokenCount: 5, totalTokenCount: 40 },
      }),
    ].flatMap((e) => t.push(e));
    expect(chunks).toEqual([
      choice({ role: 'assistant', content: 'Let me check.' }),
      choice({ tool_calls: [{ index: 0, id: 'call_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] }),
      choice({ tool_calls: [{ index: 1, id: 'call_1', type: 'function', function: { name: 'now', arguments: '{}' } }] }),
      choice({}, 'tool_calls'),
    ]);
    expect(t.finish()).toEqual([{ ...base, choices: [], usage: { prompt_tokens: 20, completion_tokens: 20, total_tokens: 40 } }]);
  });

  it('puts the role on the finish chunk when nothing else came first, and maps MAX_TOKENS and SAFETY', () => {
    const t = createGeminiStreamTranslator(opts);
    expect(t.push(ev({ candidates: [{ content: { role: 'model', parts: [] }, finishReason: 'MAX_TOKENS' }] }))).toEqual([choice({ role: 'assistant' }, 'length')]);
    const s = createGeminiStreamTranslator(opts);
    expect(s.push(ev({ candidates: [text('x', { finishReason: 'SAFETY' })] }))).toEqual([choice({ role: 'assistant', content: 'x' }), choice({}, 'content_filter')]);
    // A trailing usage-only event adds nothing, and the finish reason is not repeated.
    expect(s.push(ev({ candidates: [{ content: { parts: [] }, finishReason: 'SAFETY' }], usageMetadata: { promptTokenCount: 1, totalTokenCount: 1 } }))).toEqual([]);
  });

  it('reports a blocked prompt as content_filter', () => {
    const t = createGeminiStreamTranslator(opts);
    expect(t.push(ev({ promptFeedback: { blockReason: 'PROHIBITED_CONTENT' }, usageMetadata: { promptTokenCount: 5, totalTokenCount: 5 } }))).toEqual([
      choice({ role: 'assistant' }, 'content_filter'),
    ]);
  });

  it('leaves usage out when include_usage is off, yet still knows it', () => {
    const t = createGeminiStreamTranslator({ ...opts, includeUsage: false });
    const [first] = t.push(ev({ candidates: [text('hi', { finishReason: 'STOP' })], usageMetadata: { promptTokenCount: 2, candidatesTokenCount: 1, totalTokenCount: 3 } }));
    expect(first).not.toHaveProperty('usage');
    expect(t.finish()).toEqual([]);
    expect(t.usage).toEqual({ prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 });
  });

  it('sends zero usage from finish() if the stream never reported any', () => {
    const t = createGeminiStreamTranslator(opts);
    expect(t.finish()).toEqual([{ ...base, choices: [], usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } }]);
  });

  it('throws on an error payload, naming status and message', () => {
    const t = createGeminiStreamTranslator(opts);
    t.push(ev({ candidates: [text('partial')] }));
    expect(() => t.push({ data: JSON.stringify({ error: { code: 503, message: 'The model is overloaded. Please try again later.', status: 'UNAVAILABLE' } }) })).toThrow(
      /UNAVAILABLE: The model is overloaded/,
    );
  });

  it('throws on data that is not JSON', () => {
    expect(() => createGeminiStreamTranslator(opts).push({ data: 'not json' })).toThrow(/malformed/);
  });
});
