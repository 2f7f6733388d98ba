import { Validator } from '@cfworker/json-schema';
import { Hono, type Context } from 'hono';
import type { AppEnv } from '../../shared/context';
import { loadConfig } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { deploymentKeyAuth } from '../../shared/key-auth';
import { assertInferenceEnabled, flagOn } from '../../shared/kill-switch';
import { log } from '../../shared/log';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, Usage } from '../../shared/openai-types';
import { filterMessageUrls, redactMessages } from '../../shared/pii';
import { callProvider } from '../../shared/providers/call';
import { resolveProvider } from '../../shared/providers/registry';
import { ProviderError, type ProviderResult, type ResolvedProvider } from '../../shared/providers/types';
import { redisClient, redisKeys } from '../../shared/redis';
import { costUsd, effectiveRouting, hasImages, type Target } from '../../shared/routing';
import { sseData } from '../../shared/sse';
import { parseJson } from '../../shared/validate';
import { applyTokenGuards } from './guards';
import { chatRequestSchema, normalizeRequest } from './request';
import { planRoute } from './route';

const PROVIDER_TIMEOUT_MS = 60_000;

/** What one proxied call did: the usage record (metadata only, never content). */
export interface UsageRecord {
  requestId: string;
  deploymentId: string;
  model: string | null;
  provider: string | null;
  routeReason: string;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  latencyMs: number;
  ttfbMs: number | null;
  status: number;
  errorCategory: string | null;
  fallbacks: number;
  truncated: boolean;
  stream: boolean;
  empty: boolean;
  piiRedactions: number;
  urlsRemoved: number;
}

/** Upstream errors mapped in one place: upstream 4xx kept, auth failures and 5xx → 502, timeouts → 504. */
function providerFailure(err: ProviderError): ApiError {
  if (err.category === 'timeout') return new ApiError(504, 'provider_timeout', `${err.provider} did not answer in time.`);
  if (err.status === 429) {
    const headers: Record<string, string> = err.retryAfterMs !== null ? { 'retry-after': String(Math.ceil(err.retryAfterMs / 1000)) } : {};
    return new ApiError(429, 'provider_rate_limited', `${err.provider} is rate limiting this deployment; retry later.`, null, headers);
  }
  if (err.status === 401 || err.status === 403) return new ApiError(502, 'provider_auth_failed', `${err.provider} refused the gateway's credentials.`);
  if (err.status >= 400 && err.status < 500) return new ApiError(err.status as 400, 'provider_rejected_request', err.message);
  return new ApiError(502, 'provider_error', `${err.provider} failed: ${err.message}`);
}

/** Worth trying the next target: rate limits, server errors, network and timeouts; never the caller's own 4xx. */
const fallbackWorthy = (err: ProviderError) => err.status === 429 || err.status >= 500 || err.category !== 'http';

const validators = new Map<string, Validator>();
/** A json_schema answer that does not parse or validate is retried once (seed 001 "JSON retry"). */
function jsonProblem(req: ChatRequest, completion: ChatCompletion): string | null {
  const format = req.response_format;
  const msg = completion.choices[0]?.message;
  if (!format || format.type === 'text' || !msg || msg.tool_calls?.length) return null;
  let value: unknown;
  try {
    value = JSON.parse(msg.content ?? '');
  } catch {
    return 'the answer is not valid JSON';
  }
  if (format.type !== 'json_schema' || !format.json_schema.schema) return null;
  const key = JSON.stringify(format.json_schema.schema);
  let v = validators.get(key);
  if (!v) {
    v = new Validator(format.json_schema.schema as never, '2020-12', false);
    if (validators.size > 200) validators.clear();
    validators.set(key, v);
  }
  const r = v.validate(value);
  return r.valid ? null : `the answer does not match the schema (${r.errors[0]?.error ?? 'invalid'})`;
}

const isEmpty = (c: ChatCompletion) => {
  const m = c.choices[0]?.message;
  return !m?.tool_calls?.length && !(m?.content ?? '').trim();
};

interface Attempt {
  target: Target;
  provider: ResolvedProvider;
  result: ProviderResult;
  /** For streams: the first chunk, already read, so a failure before any byte can still fall back. */
  first?: IteratorResult<ChatCompletionChunk>;
  iterator?: AsyncIterator<ChatCompletionChunk>;
  providerMs: number;
}

/** Tries the plan's targets in order until one answers (fallback on 429, 5xx, network, timeouts). */
async function callTargets(c: Context<AppEnv>, req: ChatRequest, targets: Target[], skipped: string[]): Promise<{ attempt: Attempt; fallbacks: number }> {
  const env = c.env as unknown as Record<string, unknown>;
  const mock = { latencyMs: Number(c.env.MOCK_LATENCY_MS ?? 0) || 0, chunkDelayMs: Number(c.env.MOCK_CHUNK_DELAY_MS ?? 0) || 0 };
  let lastError: ProviderError | null = null;
  let fallbacks = 0;
  for (const target of targets) {
    const provider = resolveProvider(target.provider, env);
    if ('unavailable' in provider) {
      skipped.push(provider.unavailable);
      continue;
    }
    if (lastError) fallbacks++;
    const started = performance.now();
    try {
      const result = await callProvider(provider, req, target.model, {
        requestId: c.get('requestId'),
        signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
        mock,
      });
      const attempt: Attempt = { target, provider, result, providerMs: 0 };
      if (result.kind === 'stream') {
        attempt.iterator = result.chunks[Symbol.asyncIterator]();
        attempt.first = await attempt.iterator.next();
      }
      attempt.providerMs = performance.now() - started;
      return { attempt, fallbacks };
    } catch (err) {
      if (!(err instanceof ProviderError)) throw err;
      log('warn', 'provider.failed', { requestId: c.get('requestId'), provider: target.provider, model: target.model, status: err.status, category: err.category });
      if (!fallbackWorthy(err)) throw providerFailure(err);
      lastError = err;
    }
  }
  if (lastError) throw providerFailure(lastError);
  throw new ApiError(503, 'no_provider_available', `No provider can serve this request right now (${skipped.join('; ') || 'no targets'}).`);
}

function setRouteHeaders(c: Context<AppEnv>, attempt: Attempt, reason: string, fallbacks: number) {
  c.header('x-inference-edge-model', attempt.target.model);
  c.header('x-inference-edge-provider', attempt.target.provider);
  c.header('x-inference-edge-route-reason', reason);
  if (fallbacks) c.header('x-inference-edge-fallbacks', String(fallbacks));
}

/** The usage record goes out after the response (waitUntil): never on the client's time. */
function recordUsage(c: Context<AppEnv>, record: UsageRecord) {
  const work = async () => {
    log('info', 'usage', { ...record });
    if (record.empty) {
      const config = loadConfig(c.env);
      const day = new Date().toISOString().slice(0, 10);
      const key = redisKeys(config.REDIS_KEY_PREFIX).dailyCounter('empty_completions', record.deploymentId, day);
      await redisClient(config).pipeline().incr(key).expire(key, 8 * 86_400).exec().catch(() => {});
    }
  };
  try {
    c.executionCtx.waitUntil(work());
  } catch {
    void work(); // no execution context (unit tests)
  }
}

const USER_HEADER = 'x-inference-edge-user';

/**
 * Attributes of the end user (cohort, tier, ...) for conditional routing, as a JSON object of strings
 * in `X-Inference-Edge-User`. Only a secret-key caller (a server) may assert them: a browser could
 * claim any cohort.
 */
function userAttributes(c: Context<AppEnv>): Record<string, string> {
  const raw = c.req.header(USER_HEADER);
  if (raw === undefined) return {};
  if (c.get('auth').kind !== 'secret') {
    throw new ApiError(403, 'user_attributes_forbidden', `${USER_HEADER} may only be sent with a secret key (sk_…).`, USER_HEADER);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = null;
  }
  const valid = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && raw.length <= 2048
    && Object.values(parsed).every((v) => typeof v === 'string' && v.length <= 256);
  if (!valid) throw new ApiError(400, 'invalid_user_attributes', `${USER_HEADER} must be a JSON object of strings (at most 2 KiB).`, USER_HEADER);
  return parsed as Record<string, string>;
}

export const chatRoutes = new Hono<AppEnv>().post(
  '/v1/chat/completions',
  deploymentKeyAuth({ alsoRead: (_, keys) => [keys.globalKillSwitch()] }),
  async (c) => {
    const t0 = performance.now();
    const config = loadConfig(c.env);
    const { deployment, reads } = c.get('auth');
    assertInferenceEnabled(c.env, reads.get(redisKeys(config.REDIS_KEY_PREFIX).globalKillSwitch()), deployment);

    let req = normalizeRequest(await parseJson(c, chatRequestSchema));
    const features = deployment.features;
    if (req.stream && !flagOn(features, 'streaming')) throw new ApiError(400, 'streaming_disabled', 'Streaming is switched off for this deployment; send stream: false.', 'stream');
    if (hasImages(req) && !flagOn(features, 'visionEnabled', false)) throw new ApiError(400, 'vision_disabled', 'Image input is switched off for this deployment.', 'messages');

    let routing;
    try {
      routing = effectiveRouting(deployment.routing);
    } catch (err) {
      throw new ApiError(500, 'routing_invalid', `This deployment's routing config is invalid: ${(err as Error).message}`);
    }
    const plan = planRoute(req, routing, features, {
      metadata: req.metadata ?? {},
      user: { ...(req.user ? { id: req.user } : {}), ...userAttributes(c) },
      request: { stream: Boolean(req.stream), tools: Boolean(req.tools?.length), images: hasImages(req), model: req.model },
    });

    const guard = applyTokenGuards(req, { tokensPerRequest: deployment.rateLimits.tokensPerRequest, contextBudgetTokens: routing.contextBudgetTokens });
    req = guard.request;
    // URLs first: redaction would turn https://user:pw@host into something the URL filter no longer sees.
    let piiRedactions = 0;
    let urlsRemoved = 0;
    if (routing.urlAllowlist.length) {
      const r = filterMessageUrls(req.messages, routing.urlAllowlist);
      urlsRemoved = r.removed;
      req = { ...req, messages: r.messages };
    }
    if (flagOn(features, 'piiRedaction', false)) {
      const r = redactMessages(req.messages);
      piiRedactions = Object.values(r.counts).reduce<number>((a, b) => a + (b ?? 0), 0);
      req = { ...req, messages: r.messages };
    }
    if (guard.droppedMessages) c.header('x-inference-edge-truncated', `dropped=${guard.droppedMessages}`);
    if (guard.maxTokensClamped) c.header('x-inference-edge-max-tokens', String(guard.maxTokens));
    if (piiRedactions) c.header('x-inference-edge-pii-redacted', String(piiRedactions));

    const skipped: string[] = [];
    const preCallMs = performance.now() - t0;
    let { attempt, fallbacks } = await callTargets(c, req, plan.targets, skipped);
    const record: UsageRecord = {
      requestId: c.get('requestId'),
      deploymentId: deployment.id,
      model: attempt.target.model,
      provider: attempt.target.provider,
      routeReason: plan.reason,
      tokensIn: guard.promptTokens,
      tokensOut: 0,
      costUsd: 0,
      latencyMs: 0,
      ttfbMs: null,
      status: 200,
      errorCategory: null,
      fallbacks,
      truncated: guard.droppedMessages > 0,
      stream: Boolean(req.stream),
      empty: false,
      piiRedactions,
      urlsRemoved,
    };
    const settle = (usage: Usage | null | undefined) => {
      if (usage) {
        record.tokensIn = usage.prompt_tokens;
        record.tokensOut = usage.completion_tokens;
      }
      record.costUsd = costUsd(attempt.target, record.tokensIn, record.tokensOut);
    };

    if (attempt.result.kind === 'json') {
      let completion = attempt.result.completion;
      const problem = jsonProblem(req, completion);
      if (problem) {
        log('warn', 'json.retry', { requestId: record.requestId, problem });
        const retry = await callTargets(c, req, [attempt.target, ...plan.targets.filter((t) => t !== attempt.target)], skipped);
        if (retry.attempt.result.kind === 'json') {
          attempt = retry.attempt;
          completion = retry.attempt.result.completion;
          c.header('x-inference-edge-json-retry', jsonProblem(req, completion) ? 'failed' : 'ok');
        }
      }
      record.empty = isEmpty(completion);
      if (record.empty) c.header('x-inference-edge-empty-completion', 'true');
      settle(completion.usage);
      setRouteHeaders(c, attempt, plan.reason, fallbacks);
      record.latencyMs = Math.round(performance.now() - t0);
      record.ttfbMs = record.latencyMs;
      c.header('x-inference-edge-overhead-ms', (performance.now() - t0 - attempt.providerMs).toFixed(2));
      recordUsage(c, record);
      return c.json(completion);
    }

    // Streaming: the first chunk was read before answering, so every header is set now.
    setRouteHeaders(c, attempt, plan.reason, fallbacks);
    c.header('x-inference-edge-overhead-ms', (preCallMs + 0.01).toFixed(2));
    c.header('content-type', 'text/event-stream; charset=utf-8');
    c.header('cache-control', 'no-cache');
    const includeUsage = req.stream_options?.include_usage === true;
    const iterator = attempt.iterator!;
    const first = attempt.first!;
    record.ttfbMs = Math.round(performance.now() - t0);
    let text = '';
    let toolCalls = 0;
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        let result = first;
        try {
          while (!result.done) {
            const chunk = result.value;
            if (chunk.usage) settle(chunk.usage);
            for (const ch of chunk.choices) {
              text += ch.delta.content ?? '';
              toolCalls += ch.delta.tool_calls?.length ?? 0;
            }
            const isUsageOnly = chunk.choices.length === 0;
            if (!isUsageOnly || includeUsage) {
              controller.enqueue(sseData(includeUsage || !chunk.usage ? chunk : { ...chunk, usage: undefined }));
            }
            result = await iterator.next();
          }
          controller.enqueue(sseData('[DONE]'));
        } catch (err) {
          // Bytes already went out: end with an in-band error and no [DONE], never a silent 200.
          const message = err instanceof ProviderError ? err.message : 'the provider stream failed';
          record.status = 502;
          record.errorCategory = err instanceof ProviderError ? err.category : 'stream';
          controller.enqueue(sseData({ error: { message: `Stream interrupted: ${message}`, type: 'api_error', code: 'stream_interrupted', param: null } }));
          log('warn', 'stream.interrupted', { requestId: record.requestId, provider: record.provider, error: message });
        } finally {
          record.empty = !text.trim() && toolCalls === 0;
          if (!record.tokensOut) settle({ prompt_tokens: record.tokensIn, completion_tokens: Math.ceil(text.length / 4), total_tokens: 0 });
          record.latencyMs = Math.round(performance.now() - t0);
          recordUsage(c, record);
          controller.close();
        }
      },
    });
    return c.body(body, 200);
  },
);

