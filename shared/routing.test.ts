import { describe, expect, it } from 'vitest';
import { providerAvailability, resolveProvider } from './providers/registry';
import {
  cheapestTierWith,
  conditionHolds,
  costUsd,
  DEFAULT_TIERS,
  effectiveRouting,
  listModels,
  orderTargets,
  resolveModel,
  routingSchema,
  type RequestFacts,
  type Tier,
} from './routing';

const t = (provider: string, model: string, extra: object = {}) => ({ provider, model, priceInputPerMTok: 1, priceOutputPerMTok: 1, capabilities: ['tools', 'json'] as ('vision' | 'tools' | 'json')[], weight: 1, ...extra });
const facts: RequestFacts = { metadata: { team: 'search' }, user: { cohort: 'qa' }, request: { stream: true, tools: false, images: false, model: 'x' } };

describe('routing config', () => {
  it('defaults to the mock tiers and refuses bad config naming the field', () => {
    const r = effectiveRouting({});
    expect(Object.keys(r.tiers)).toEqual(Object.keys(DEFAULT_TIERS));
    expect(r.defaultTier).toBe('flash');
    expect(() => effectiveRouting({ tiers: { main: { targets: [] } } })).toThrow(/routing\.tiers\.main\.targets/);
    expect(routingSchema.safeParse({ tiers: { main: { mode: 'roundrobin', targets: [t('openai', 'x')] } } }).success).toBe(false);
  });

  it('resolves tiers, aliases (of tiers and of models), concrete models and auto', () => {
    const r = effectiveRouting({
      tiers: { fast: { targets: [t('groq', 'llama')] }, smart: { targets: [t('openai', 'gpt-x')] } },
      aliases: { cheap: 'fast', best: 'openai/gpt-x' },
    });
    expect(resolveModel(r, 'fast')).toEqual({ kind: 'tier', tier: 'fast' });
    expect(resolveModel(r, 'cheap')).toEqual({ kind: 'tier', tier: 'fast' });
    expect(resolveModel(r, 'best')).toMatchObject({ kind: 'target', target: { model: 'gpt-x' } });
    expect(resolveModel(r, 'llama')).toMatchObject({ kind: 'target', target: { provider: 'groq' } });
    expect(resolveModel(r, 'groq/llama')).toMatchObject({ kind: 'target' });
    expect(resolveModel(r, 'auto')).toEqual({ kind: 'auto' });
    expect(resolveModel(r, 'gpt-5')).toBeNull();
    expect(listModels(r).map((m) => m.id)).toEqual(['auto', 'fast', 'smart', 'cheap', 'best', 'groq/llama', 'openai/gpt-x']);
  });

  it('orders targets by mode', () => {
    const targets = [t('a', '1', { weight: 1 }), t('b', '2', { weight: 3 })];
    expect(orderTargets({ mode: 'single', targets }, facts).map((x) => x.provider)).toEqual(['a']);
    expect(orderTargets({ mode: 'fallback', targets }, facts).map((x) => x.provider)).toEqual(['a', 'b']);
    // weights 1:3 → [0, 0.25) picks a, [0.25, 1) picks b; the rest follow as fallbacks.
    expect(orderTargets({ mode: 'loadbalance', targets }, facts, () => 0.2).map((x) => x.provider)).toEqual(['a', 'b']);
    expect(orderTargets({ mode: 'loadbalance', targets }, facts, () => 0.3).map((x) => x.provider)).toEqual(['b', 'a']);
    expect(orderTargets({ mode: 'loadbalance', targets }, facts, () => 0.999).map((x) => x.provider)).toEqual(['b', 'a']);
    const conditional: Tier = {
      mode: 'conditional',
      targets: [
        t('qa', '1', { when: { field: 'user.cohort', op: 'eq', value: 'qa' } }),
        t('search', '2', { when: { field: 'metadata.team', op: 'in', value: ['search', 'ads'] } }),
        t('images', '3', { when: { field: 'request.images', op: 'eq', value: true } }),
        t('default', '4'),
      ],
    };
    expect(orderTargets(conditional, facts).map((x) => x.provider)).toEqual(['qa', 'search', 'default']);
  });

  it('evaluates conditions', () => {
    expect(conditionHolds({ field: 'metadata.team', op: 'exists' }, facts)).toBe(true);
    expect(conditionHolds({ field: 'metadata.region', op: 'exists' }, facts)).toBe(false);
    expect(conditionHolds({ field: 'request.stream', op: 'eq', value: true }, facts)).toBe(true);
    expect(conditionHolds({ field: 'user.cohort', op: 'neq', value: 'ga' }, facts)).toBe(true);
  });

  it('finds the cheapest tier with a capability and prices calls per million tokens', () => {
    const r = effectiveRouting({});
    expect(cheapestTierWith(r, ['vision'])).toBe('flash');
    expect(cheapestTierWith(r, [])).toBe('flash-lite');
    expect(costUsd(t('a', 'b', { priceInputPerMTok: 3, priceOutputPerMTok: 15 }), 1_000_000, 100_000)).toBeCloseTo(4.5);
  });
});

describe('provider registry', () => {
  it('reads keys and base URLs from bindings and honours DISABLE_PROVIDER_<NAME>', () => {
    expect(resolveProvider('openai', {})).toEqual({ unavailable: 'provider openai has no key (OPENAI_API_KEY)' });
    expect(resolveProvider('openai', { OPENAI_API_KEY: 'k', OPENAI_BASE_URL: 'http://127.0.0.1:9/v1/' })).toMatchObject({ apiKey: 'k', baseUrl: 'http://127.0.0.1:9/v1' });
    expect(resolveProvider('openai', { OPENAI_API_KEY: 'k', DISABLE_PROVIDER_OPENAI: 'true' })).toMatchObject({ unavailable: expect.stringContaining('disabled') });
    expect(resolveProvider('mock', {})).toMatchObject({ name: 'mock', apiKey: null });
    expect(resolveProvider('ollama', {})).toMatchObject({ baseUrl: 'http://127.0.0.1:11434/v1' });
    expect(resolveProvider('nope', {})).toEqual({ unavailable: 'unknown provider "nope"' });
  });

  it('reports each provider as available, disabled or missing its key (for /health/dependencies)', () => {
    const a = providerAvailability({ OPENAI_API_KEY: 'k', ANTHROPIC_API_KEY: 'k', DISABLE_PROVIDER_ANTHROPIC: 'true' });
    expect(a).toMatchObject({ openai: 'available', anthropic: 'disabled', gemini: 'missing_key', mock: 'available', ollama: 'available', vllm: 'available' });
  });
});
