import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../openai-types';

/** The wire format a provider speaks; one engine per format (shared/providers/call.ts). */
export type ProviderFormat = 'openai' | 'anthropic' | 'gemini' | 'mock';

/**
 * A provider is data (STYLE.md): where requests go, which secret holds its key, which format it
 * speaks. Adding an OpenAI-compatible provider is one entry in the registry.
 */
export interface ProviderSpec {
  name: string;
  format: ProviderFormat;
  /** Overridable with `<NAME>_BASE_URL` (for a gateway, a self-hosted server, or a local fake). */
  baseUrl: string;
  /** The secret with its key, e.g. OPENAI_API_KEY; null when no key is needed (mock, local servers). */
  keyEnv: string | null;
}

/** A provider as this isolate's bindings configure it. */
export interface ResolvedProvider extends ProviderSpec {
  apiKey: string | null;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Called when the response headers arrive (ends the first-byte deadline of a JSON call). */
  onHeaders?: () => void;
  /** Used as the completion id so every answer can be traced to its request. */
  requestId: string;
}

export type ProviderResult =
  | { kind: 'json'; completion: ChatCompletion }
  | { kind: 'stream'; chunks: AsyncIterable<ChatCompletionChunk> };

/** A provider's refusal or failure, mapped to what the proxy answers (upstream 4xx kept, 5xx → 502). */
export class ProviderError extends Error {
  constructor(
    readonly provider: string,
    readonly status: number,
    message: string,
    readonly retryAfterMs: number | null = null,
    readonly category: 'http' | 'network' | 'timeout' | 'stall' | 'stream' = 'http',
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

/** What an incremental stream translator needs to stamp on the OpenAI chunks it emits. */
export interface StreamOptions {
  id: string;
  model: string;
  created: number;
  includeUsage: boolean;
}

export type { ChatRequest };
