import * as z from 'zod/mini';

/** Bindings every function receives (vars in wrangler.toml, secrets via `wrangler secret put`). */
export interface Bindings {
  SUPABASE_URL?: string;
  SUPABASE_SERVICE_ROLE_KEY?: string;
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  ADMIN_API_KEY?: string;
  DATABASE_WEBHOOK_SECRET?: string;
  /** Bearer token Prometheus scrapes GET /metrics with (the admin key works too). */
  METRICS_API_KEY?: string;
  REDIS_KEY_PREFIX?: string;
  /** `false` switches inference off everywhere (the global kill switch, seed 000 `inference.enabled`). */
  INFERENCE_ENABLED?: string;
  /** Largest request body the proxy accepts, in bytes (default 1 MiB). */
  MAX_REQUEST_BYTES?: string;
  /** Latency of the built-in mock provider: before the first token, and between stream chunks. */
  MOCK_LATENCY_MS?: string;
  /** Defaults of the provider-call deadlines and breakers (a deployment's routing config overrides). */
  PROVIDER_FIRST_BYTE_TIMEOUT_MS?: string;
  PROVIDER_STALL_TIMEOUT_MS?: string;
  PROVIDER_TOTAL_TIMEOUT_MS?: string;
  PROVIDER_RETRY_ATTEMPTS?: string;
  BREAKER_FAILURE_THRESHOLD?: string;
  BREAKER_COOLDOWN_MS?: string;
  MOCK_CHUNK_DELAY_MS?: string;
  /** daily-report: alert when a day's total cost (USD) passes this. */
  COST_ALERT_THRESHOLD?: string;
  /** daily-report: usage events older than this many days are removed (default 90). */
  USAGE_RETENTION_DAYS?: string;
  OPENAI_API_KEY?: string;
  ANTHROPIC_API_KEY?: string;
  GEMINI_API_KEY?: string;
}

const configSchema = z.object({
  SUPABASE_URL: z.url(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().check(z.minLength(1)),
  UPSTASH_REDIS_REST_URL: z.url(),
  UPSTASH_REDIS_REST_TOKEN: z.string().check(z.minLength(1)),
  ADMIN_API_KEY: z.string().check(z.minLength(16, 'must be at least 16 characters')),
  DATABASE_WEBHOOK_SECRET: z.optional(z.string().check(z.minLength(16, 'must be at least 16 characters'))),
  METRICS_API_KEY: z.optional(z.string().check(z.minLength(16, 'must be at least 16 characters'))),
  REDIS_KEY_PREFIX: z._default(z.string().check(z.regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, "_", "." or "-" (at most 64)')), 'ie'),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`server misconfigured: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

const parsed = new WeakMap<object, Config | ConfigError>();

/**
 * Parses the bindings once per isolate. A missing or malformed secret fails loudly, naming it,
 * instead of turning into an empty string deep inside a client.
 */
export function loadConfig(env: Bindings): Config {
  let result = parsed.get(env);
  if (!result) {
    const r = configSchema.safeParse(emptyToUndefined(env));
    result = r.success
      ? r.data
      : new ConfigError(r.error.issues.map((i) => `${i.path.join('.')} ${i.code === 'invalid_type' ? 'is not set' : i.message}`));
    parsed.set(env, result);
  }
  if (result instanceof ConfigError) throw result;
  return result;
}

function emptyToUndefined(env: Bindings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(env)) out[k] = v === '' ? undefined : v;
  return out;
}
