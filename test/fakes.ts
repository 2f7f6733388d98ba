import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';

export interface FakeRequest {
  provider: string;
  model: string;
  stream: boolean;
  text: string;
}

/**
 * A test's own corner of the shared fake providers: model names with a unique suffix, knobs set per
 * provider/model, and only this scope's requests read back, so test files running in parallel
 * never see each other's faults or traffic.
 */
export function fakeScope() {
  const url = inject('stack').fakeProvidersUrl;
  const tag = randomBytes(4).toString('hex');
  const model = (base: string) => `${base}-${tag}`;
  return {
    model,
    /** Knobs for one model of a provider (faults, latency, texts). */
    control: (provider: string, modelBase: string, knobs: object) =>
      fetch(`${url}/_control`, { method: 'POST', body: JSON.stringify({ provider: `${provider}/${model(modelBase)}`, ...knobs }) }),
    requests: async (): Promise<FakeRequest[]> =>
      ((await (await fetch(`${url}/_requests`)).json()) as FakeRequest[]).filter((r) => r.model.endsWith(tag)),
    providers: async () => ((await (await fetch(`${url}/_requests`)).json()) as FakeRequest[]).filter((r) => r.model.endsWith(tag)).map((r) => r.provider),
  };
}
