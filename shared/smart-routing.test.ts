import { describe, expect, it } from 'vitest';
import prompts from '../test/fixtures/routing-prompts.json';
import type { ChatMessage } from './openai-types';
import { classifyRequest, explainDecision, type Complexity, type RouteDecision } from './smart-routing';

interface LabelledPrompt {
  messages: ChatMessage[];
  complexity: Complexity;
  domain: string | null;
  vision: boolean;
}

// JSON imports widen literal types (role: string), so the fixture is typed once here.
const fixtures = prompts as unknown as LabelledPrompt[];
const CLASSES: Complexity[] = ['simple', 'moderate', 'complex'];
const user = (content: ChatMessage['content']): ChatMessage[] => [{ role: 'user', content }];
const isHeaderSafe = (s: string) => /^[\x20-\x7e]*$/.test(s) && s.length > 0 && s.length < 200;

describe('smart routing: labelled fixture', () => {
  const results = fixtures.map((p) => ({ p, d: classifyRequest(p.messages) }));

  it('has a balanced, labelled set of at least 120 prompts', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(120);
    for (const c of CLASSES) expect(fixtures.filter((p) => p.complexity === c).length).toBeGreaterThan(fixtures.length / 4);
    expect(fixtures.some((p) => p.vision)).toBe(true);
  });

  it('classifies complexity, domain and vision accurately enough', () => {
    // Confusion matrix: rows are human labels, columns are predictions.
    const matrix = Object.fromEntries(CLASSES.map((want) => [want, Object.fromEntries(CLASSES.map((got) => [got, 0]))])) as Record<Complexity, Record<Complexity, number>>;
    let complexityHits = 0;
    let domainHits = 0;
    let visionHits = 0;
    for (const { p, d } of results) {
      matrix[p.complexity][d.complexity]++;
      if (d.complexity === p.complexity) complexityHits++;
      if (d.domain === p.domain) domainHits++;
      if (d.needsVision === p.vision) visionHits++;
    }
    const n = results.length;
    const complexityAccuracy = complexityHits / n;
    const domainAccuracy = domainHits / n;
    const visionAccuracy = visionHits / n;

    const pad = (s: string | number) => String(s).padStart(10);
    const table = [
      `${pad('label \\ got')}${CLASSES.map(pad).join('')}`,
      ...CLASSES.map((want) => `${pad(want)}${CLASSES.map((got) => pad(matrix[want][got])).join('')}`),
    ].join('\n');
    console.log(
      `smart routing on ${n} labelled prompts\n${table}\n` +
        `complexity accuracy ${complexityAccuracy.toFixed(3)}  domain accuracy ${domainAccuracy.toFixed(3)}  vision accuracy ${visionAccuracy.toFixed(3)}`,
    );
    const misses = results.filter(({ p, d }) => d.complexity !== p.complexity || d.domain !== p.domain);
    if (misses.length) {
      console.log(
        'misses (label -> decision):\n' +
          misses
            .map(({ p, d }) => {
              const last = [...p.messages].reverse().find((m) => m.role === 'user');
              const text = typeof last?.content === 'string' ? last.content : (last?.content?.find((c) => c.type === 'text') as { text: string } | undefined)?.text ?? '';
              return `  ${p.complexity}/${p.domain ?? 'none'} -> ${explainDecision(d)} | ${text.slice(0, 60).replace(/\s+/g, ' ')}`;
            })
            .join('\n'),
      );
    }

    expect(complexityAccuracy).toBeGreaterThanOrEqual(0.8);
    expect(domainAccuracy).toBeGreaterThanOrEqual(0.8);
    expect(visionAccuracy).toBe(1);
  });

  it('explains every decision in one short ASCII line', () => {
    for (const { d } of results) {
      const line = explainDecision(d);
      expect(isHeaderSafe(line), line).toBe(true);
      expect(line).not.toMatch(/[\r\n]/);
      expect(line).toMatch(/^smart:(simple|moderate|complex) tier=(flash-lite|flash|pro) score=-?[\d.]+ conf=[\d.]+ domain=\w+ signals=[\w,]+$/);
    }
  });

  it('keeps confidence within 0..1 and tiers consistent with complexity', () => {
    const tierOf: Record<Complexity, string> = { simple: 'flash-lite', moderate: 'flash', complex: 'pro' };
    for (const { d } of results) {
      expect(d.confidence).toBeGreaterThanOrEqual(0);
      expect(d.confidence).toBeLessThanOrEqual(1);
      expect(Number.isFinite(d.score)).toBe(true);
      if (d.needsVision && d.complexity === 'simple') expect(d.tier).toBe('flash');
      else expect(d.tier).toBe(tierOf[d.complexity]);
    }
  });
});

describe('smart routing: unit cases', () => {
  it('sends a greeting to flash-lite', () => {
    for (const hello of ['hi', 'Hello!', 'good morning', 'thanks!']) {
      const d = classifyRequest(user(hello));
      expect(d.complexity, hello).toBe('simple');
      expect(d.tier, hello).toBe('flash-lite');
      expect(d.domain).toBeNull();
      expect(d.signals.greeting).toBe(true);
    }
  });

  it('sets needsVision for an image and never routes it below flash', () => {
    const d = classifyRequest(user([
      { type: 'text', text: 'What is this?' },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
    ]));
    expect(d.needsVision).toBe(true);
    expect(d.complexity).toBe('simple');
    expect(d.tier).toBe('flash');
    expect(explainDecision(d)).toContain('vision');

    // An image anywhere in the conversation counts, not only in the latest message.
    const earlier: ChatMessage[] = [
      { role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'low' } }] },
      { role: 'assistant', content: 'That is a cat.' },
      { role: 'user', content: 'ok thanks' },
    ];
    expect(classifyRequest(earlier).needsVision).toBe(true);
    expect(classifyRequest(user('Describe an image of a cat.')).needsVision).toBe(false);
  });

  it('sends a long multi-part system-design question to pro', () => {
    const d = classifyRequest([
      { role: 'system', content: 'You are a senior staff engineer.' },
      {
        role: 'user',
        content:
          'We run a multi-tenant SaaS with 2M daily active users. Design the notification system end to end:\n' +
          '1. Data model for user preferences and delivery state.\n' +
          '2. Fan-out strategy for email, push and SMS at peak load.\n' +
          '3. Exactly-once vs at-least-once delivery: analyze the trade-offs.\n' +
          '4. How to scale across regions and what happens when a provider is down.\n' +
          'Compare a queue-based design with a streaming one and recommend one. What would you build first?',
      },
    ]);
    expect(d.complexity).toBe('complex');
    expect(d.tier).toBe('pro');
    expect(d.domain).toBe('tech');
    expect(explainDecision(d)).toMatch(/multi_step/);
  });

  it('treats a short math proof as complex, and "prove" outside math as no proof', () => {
    const proof = classifyRequest(user('Prove that the square root of 3 is irrational.'));
    expect(proof.complexity).toBe('complex');
    expect(proof.domain).toBe('math');
    expect(proof.signals.proof).toBe(true);
    expect(classifyRequest(user('How can I prove to my landlord that I paid the rent?')).signals.proof).toBe(false);
  });

  it('nudges healthcare and legal up a step unless the message is trivially short', () => {
    const short = classifyRequest(user('What is a normal resting heart rate?'));
    expect(short.domain).toBe('healthcare');
    expect(short.complexity).toBe('simple');
    expect(short.signals.nudged).toBe(false);

    const longer = classifyRequest(user('What are the common side effects of metformin, and when should I call my doctor about them?'));
    expect(longer.domain).toBe('healthcare');
    expect(longer.signals.nudged).toBe(true);
    expect(longer.complexity).not.toBe('simple');
    expect(explainDecision(longer)).toContain('high_stakes');
  });

  it('classifies a code fix with a stack trace as tech', () => {
    const d = classifyRequest(user(
      'Why does this crash?\n```python\ndef avg(xs):\n    return sum(xs) / len(xs)\n```\n' +
        'Traceback (most recent call last):\n  File "main.py", line 3, in avg\nZeroDivisionError: division by zero',
    ));
    expect(d.domain).toBe('tech');
    expect(d.signals.codeBlocks).toBe(1);
    expect(d.signals.stackTrace).toBe(true);
    expect(d.complexity).not.toBe('simple');
  });

  it('judges the latest user message, with the conversation as context', () => {
    const d = classifyRequest([
      { role: 'user', content: 'Design a globally distributed database with strong consistency and analyze the trade-offs of each option.' },
      { role: 'assistant', content: 'Here is a detailed design...' },
      { role: 'user', content: 'thanks!' },
    ]);
    expect(d.complexity).toBe('simple');
    expect(d.signals.turns).toBe(2);
  });

  it('does not throw on empty or odd input', () => {
    const odd: unknown[] = [
      [],
      [{ role: 'user', content: null }],
      [{ role: 'user', content: '' }],
      [{ role: 'user', content: [] }],
      [{ role: 'assistant', content: 'hello', tool_calls: [] }],
      [{ role: 'tool', content: '{"ok":true}', tool_call_id: 'call_1' }],
      [null],
      undefined,
    ];
    for (const messages of odd) {
      const d: RouteDecision = classifyRequest(messages as ChatMessage[]);
      expect(d.complexity).toBe('simple');
      expect(d.confidence).toBeGreaterThanOrEqual(0);
      expect(d.confidence).toBeLessThanOrEqual(1);
      expect(isHeaderSafe(explainDecision(d))).toBe(true);
    }
  });

  it('caps the scanned text so huge or hostile input stays fast', () => {
    const hostile = ['word '.repeat(400_000), '\n'.repeat(1_000_000), 'at ' + ':'.repeat(500_000), 'aA_'.repeat(300_000), '```'.repeat(200_000)];
    for (const text of hostile) {
      const start = performance.now();
      const d = classifyRequest(user(text));
      // Generous bound for shared CI machines; locally this is well under a millisecond.
      expect(performance.now() - start).toBeLessThan(100);
      expect(d.signals.chars).toBe(text.length);
      expect(isHeaderSafe(explainDecision(d))).toBe(true);
    }
  });

  it('keeps explanations short even when every signal fires', () => {
    const d = classifyRequest(user('x'));
    const everything: RouteDecision = {
      ...d,
      domain: 'healthcare\u00e9 \n',
      signals: {
        ...d.signals,
        greeting: true, lookup: true, codeBlocks: 3, stackTrace: true, proof: true, reasoningCues: 5, questions: 4, listItems: 9,
        commas: 12, transform: true, longOutput: true, words: 500, turns: 9, images: true, nudged: true,
      },
    };
    const line = explainDecision(everything);
    expect(isHeaderSafe(line), line).toBe(true);
  });
});
