import type { ProviderSpec, ResolvedProvider } from './types';

const openAICompatible = (name: string, baseUrl: string, keyEnv: string | null = `${name.toUpperCase().replace(/-/g, '_')}_API_KEY`): ProviderSpec =>
  ({ name, format: 'openai', baseUrl, keyEnv });

/**
 * Every provider the proxy knows. An OpenAI-compatible endpoint is one line; its key is the secret
 * `<NAME>_API_KEY` and its URL can be overridden with `<NAME>_BASE_URL`.
 */
export const PROVIDERS: Record<string, ProviderSpec> = Object.fromEntries(
  [
    openAICompatible('openai', 'https://api.openai.com/v1'),
    { name: 'anthropic', format: 'anthropic', baseUrl: 'https://api.anthropic.com/v1', keyEnv: 'ANTHROPIC_API_KEY' },
    { name: 'gemini', format: 'gemini', baseUrl: 'https://generativelanguage.googleapis.com/v1beta', keyEnv: 'GEMINI_API_KEY' },
    openAICompatible('groq', 'https://api.groq.com/openai/v1'),
    openAICompatible('openrouter', 'https://openrouter.ai/api/v1'),
    openAICompatible('together', 'https://api.together.xyz/v1'),
    openAICompatible('fireworks', 'https://api.fireworks.ai/inference/v1'),
    openAICompatible('mistral', 'https://api.mistral.ai/v1'),
    openAICompatible('deepseek', 'https://api.deepseek.com/v1'),
    openAICompatible('ollama', 'http://127.0.0.1:11434/v1', null),
    // A self-hosted vLLM (or any OpenAI-compatible gateway): set VLLM_BASE_URL, and VLLM_API_KEY if it wants one.
    openAICompatible('vllm', 'http://127.0.0.1:8000/v1'),
    { name: 'mock', format: 'mock', baseUrl: 'mock://local', keyEnv: null },
  ].map((p) => [p.name, p as ProviderSpec]),
);

const envName = (name: string) => name.toUpperCase().replace(/-/g, '_');

/**
 * The provider as configured here, or the reason it cannot be used: unknown, switched off with
 * DISABLE_PROVIDER_<NAME>=true (seed 001), or missing its key.
 */
export function resolveProvider(name: string, env: Record<string, unknown>): ResolvedProvider | { unavailable: string } {
  const spec = PROVIDERS[name];
  if (!spec) return { unavailable: `unknown provider "${name}"` };
  const n = envName(name);
  if (String(env[`DISABLE_PROVIDER_${n}`] ?? '').toLowerCase() === 'true') return { unavailable: `provider ${name} is disabled (DISABLE_PROVIDER_${n})` };
  const baseUrl = typeof env[`${n}_BASE_URL`] === 'string' && env[`${n}_BASE_URL`] ? String(env[`${n}_BASE_URL`]).replace(/\/$/, '') : spec.baseUrl;
  const key = spec.keyEnv ? env[spec.keyEnv] : undefined;
  const apiKey = typeof key === 'string' && key !== '' ? key : null;
  // vLLM-style servers may need no key; hosted providers do.
  if (spec.keyEnv && !apiKey && name !== 'vllm') return { unavailable: `provider ${name} has no key (${spec.keyEnv})` };
  return { ...spec, baseUrl, apiKey };
}

/**
 * Each known provider's standing here, from configuration alone (no network call, no cost): usable,
 * switched off (DISABLE_PROVIDER_<NAME>), or without its key. For /health/dependencies.
 */
export function providerAvailability(env: Record<string, unknown>): Record<string, 'available' | 'disabled' | 'missing_key'> {
  return Object.fromEntries(
    Object.keys(PROVIDERS).map((name) => {
      const r = resolveProvider(name, env);
      return [name, !('unavailable' in r) ? 'available' : r.unavailable.includes('DISABLE_PROVIDER_') ? 'disabled' : 'missing_key'];
    }),
  );
}
