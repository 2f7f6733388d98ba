import { Validator } from '@cfworker/json-schema';
import { Hono, type Context } from 'hono';
import type { AppEnv } from '../../shared/context';
import { loadConfig } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { deploymentKeyAuth } from '../../shared/key-auth';
import { assertInferenceEnabled, flagOn } from '../../shared/kill-switch';
import { log } from '../../shared/log';
import type { ChatCompletion, ChatRequest, Usage } from '../../shared/openai-types';
import { filterMessageUrls, redactMessages } from '../../shared/pii';
import { ProviderError } from '../../shared/providers/types';
import { redisClient, redisKeys, type RedisKeys } from '../../shared/redis';
import { allTargets, costUsd, downgradeTargets, effectiveRouting, hasImages, requiredCapabilities, type EffectiveRouting, type Target } from '../../shared/routing';
import { Breakers, breakerId } from '../../shared/breaker';
import { completionAsChunks, dispatch, replay, resolvePolicy, type Answer, type Candidate, type DispatchContext, type DispatchPolicy, type DispatchResult } from './dispatch';
import { sseData } from '../../shared/sse';
import { parseJson } from '../../shared/validate';
import { applyTokenGuards } from './guards';
import { chatRequestSchema, normalizeRequest } from './request';
import { planRoute } from './route';

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
  retries: number;
  downgradedTo: string | null;
  truncated: boolean;
  stream: boolean;
  stalled: boolean;
  empty: boolean;
  piiRedactions: number;
  urlsRemoved: number;
}

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

function setRouteHeaders(c: Context<AppEnv>, answer: Answer, reason: string, fallbacks: number) {
  c.header('x-inference-edge-model', answer.target.model);
  c.header('x-inference-edge-provider', answer.target.provider);
  c.header('x-inference-edge-route-reason', reason);
  if (fallbacks) c.header('x-inference-edge-fallbacks', String(fallbacks));
  if (answer.downgradedTo) c.header('x-inference-edge-downgraded', answer.downgradedTo);
  if (answer.reemitted) c.header('x-inference-edge-stream-fallback', 'non-streamed');
}

/**
 * The dispatch, then the last resorts when every target failed with a server-side error: for a
 * stream, the same candidates non-streamed, re-emitted as SSE; then the deployment's static answer.
 */
async function dispatchWithLastResorts(req: ChatRequest, candidates: Candidate[], policy: DispatchPolicy, ctx: DispatchContext, routing: EffectiveRouting): Promise<DispatchResult> {
  try {
    return await dispatch(req, candidates, policy, ctx);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status < 500) throw err;
    if (req.stream) {
      try {
        const r = await dispatch({ ...req, stream: false }, candidates, policy, ctx);
        return { ...r, answer: replay(r.answer.target, r.answer.provider, completionAsChunks(r.answer.completion!), r.answer.providerMs) };
      } catch (again) {
        if (!(again instanceof ApiError) || again.status < 500) throw again;
      }
    }
    if (!routing.staticFallback) throw err;
    log('warn', 'static_fallback', { requestId: ctx.requestId, cause: err.code });
    const completion: ChatCompletion = {
      id: `chatcmpl-${ctx.requestId}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: 'static-fallback',
      choices: [{ index: 0, message: { role: 'assistant', content: routing.staticFallback.message, refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    };
    const target: Target = { provider: 'static', model: 'static-fallback', priceInputPerMTok: 0, priceOutputPerMTok: 0, capabilities: [], weight: 1 };
    const answer: Answer = req.stream
      ? { ...replay(target, null, completionAsChunks(completion), 0), reemitted: false }
      : { target, provider: null, completion, abort: () => {}, providerMs: 0 };
    return { answer, fallbacks: candidates.length, retries: 0, skipped: [] };
  }
}

/** waitUntil where there is an execution context (not in app.request unit tests). */
function waitUntil(c: Context<AppEnv>, work: Promise<unknown>) {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    void work;
  }
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
  waitUntil(c, work());
}

function breakerKeysOf(routingConfig: Record<string, unknown>, keys: RedisKeys): string[] {
  try {
    return allTargets(effectiveRouting(routingConfig)).filter((t) => t.provider !== 'mock').map((t) => keys.breaker(breakerId(t.provider, t.model)));
  } catch {
    return []; // invalid routing is reported by the handler
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
  // The hot path's one Redis round trip: config version, global kill switch, every target's breaker.
  deploymentKeyAuth({ alsoRead: (deployment, keys) => [keys.globalKillSwitch(), ...breakerKeysOf(deployment.routing, keys)] }),
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

    const policy = resolvePolicy(routing, c.env);
    const keys = redisKeys(config.REDIS_KEY_PREFIX);
    const { redisDegraded } = c.get('auth');
    if (redisDegraded) c.header('x-inference-edge-degraded', 'redis');
    const ctx: DispatchContext = {
      env: c.env,
      requestId: c.get('requestId'),
      mock: { latencyMs: Number(c.env.MOCK_LATENCY_MS ?? 0) || 0, chunkDelayMs: Number(c.env.MOCK_CHUNK_DELAY_MS ?? 0) || 0 },
      breakers: new Breakers(redisClient(config), keys),
      breakerReads: new Map(allTargets(routing).map((t) => {
        const id = breakerId(t.provider, t.model);
        return [id, reads.get(keys.breaker(id)) ?? null];
      })),
      redisDown: redisDegraded,
      background: [],
    };
    const candidates: Candidate[] = [
      ...plan.targets.map((target) => ({ target })),
      ...(routing.downgradeOnFailure && plan.tier
        ? downgradeTargets(routing, plan.tier, requiredCapabilities(req)).map(({ tier, target }) => ({ target, downgradedTo: tier }))
        : []),
    ];
    const record: UsageRecord = {
      requestId: ctx.requestId,
      deploymentId: deployment.id,
      model: null,
      provider: null,
      routeReason: plan.reason,
      tokensIn: guard.promptTokens,
      tokensOut: 0,
      costUsd: 0,
      latencyMs: 0,
      ttfbMs: null,
      status: 200,
      errorCategory: null,
      fallbacks: 0,
      retries: 0,
      downgradedTo: null,
      truncated: guard.droppedMessages > 0,
      stream: Boolean(req.stream),
      stalled: false,
      empty: false,
      piiRedactions,
      urlsRemoved,
    };
    const finish = () => {
      waitUntil(c, Promise.allSettled(ctx.background));
      recordUsage(c, record);
    };

    let result: DispatchResult;
    try {
      result = await dispatchWithLastResorts(req, candidates, policy, ctx, routing);
    } catch (err) {
      record.status = err instanceof ApiError ? err.status : 500;
      record.errorCategory = err instanceof ApiError ? err.code : 'internal';
      record.latencyMs = Math.round(performance.now() - t0);
      finish();
      throw err;
    }
    let { answer } = result;
    record.fallbacks = result.fallbacks;
    record.retries = result.retries;
    record.downgradedTo = answer.downgradedTo ?? null;
    const settle = (usage: Usage | null | undefined) => {
      if (usage) {
        record.tokensIn = usage.prompt_tokens;
        record.tokensOut = usage.completion_tokens;
      }
      record.model = answer.target.model;
      record.provider = answer.target.provider;
      record.costUsd = costUsd(answer.target, record.tokensIn, record.tokensOut);
    };

    if (answer.completion) {
      let completion = answer.completion;
      const problem = jsonProblem(req, completion);
      if (problem) {
        log('warn', 'json.retry', { requestId: record.requestId, problem });
        const again = await dispatch(req, [{ target: answer.target }, ...candidates.filter((x) => x.target !== answer.target)], policy, ctx).catch(() => null);
        if (again?.answer.completion) {
          answer = again.answer;
          completion = again.answer.completion;
          c.header('x-inference-edge-json-retry', jsonProblem(req, completion) ? 'failed' : 'ok');
        }
      }
      record.empty = isEmpty(completion);
      if (record.empty) c.header('x-inference-edge-empty-completion', 'true');
      settle(completion.usage);
      setRouteHeaders(c, answer, plan.reason, result.fallbacks);
      record.latencyMs = Math.round(performance.now() - t0);
      record.ttfbMs = record.latencyMs;
      c.header('x-inference-edge-overhead-ms', Math.max(0, performance.now() - t0 - answer.providerMs).toFixed(2));
      finish();
      return c.json(completion);
    }

    // Streaming: the first chunk arrived before answering, so every header is set before the body.
    setRouteHeaders(c, answer, plan.reason, result.fallbacks);
    c.header('x-inference-edge-overhead-ms', Math.max(0, performance.now() - t0 - answer.providerMs).toFixed(2));
    c.header('content-type', 'text/event-stream; charset=utf-8');
    c.header('cache-control', 'no-cache');
    const includeUsage = req.stream_options?.include_usage === true;
    record.ttfbMs = Math.round(performance.now() - t0);
    let text = '';
    let toolCalls = 0;
    const streamed = answer;
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        let next = streamed.first!;
        try {
          while (!next.done) {
            const chunk = next.value;
            if (chunk.usage) settle(chunk.usage);
            for (const ch of chunk.choices) {
              text += ch.delta.content ?? '';
              toolCalls += ch.delta.tool_calls?.length ?? 0;
            }
            if (chunk.choices.length || includeUsage) {
              controller.enqueue(sseData(includeUsage || !chunk.usage ? chunk : { ...chunk, usage: undefined }));
            }
            next = await streamed.next!();
          }
          controller.enqueue(sseData('[DONE]'));
        } catch (err) {
          // Bytes already went out: end with an in-band error and no [DONE], never a silent 200.
          const e = err instanceof ProviderError ? err : null;
          record.status = 502;
          record.errorCategory = e?.category ?? 'stream';
          record.stalled = e?.category === 'stall';
          if (e) ctx.background.push(ctx.breakers.record(breakerId(streamed.target.provider, streamed.target.model), false, policy.breaker, ctx.redisDown));
          controller.enqueue(sseData({ error: { message: `The answer was interrupted: ${e?.message ?? 'the provider stream failed'}`, type: 'api_error', code: e?.category === 'stall' ? 'stream_stalled' : 'stream_interrupted', param: null } }));
          log('warn', 'stream.interrupted', { requestId: record.requestId, provider: streamed.target.provider, category: record.errorCategory });
        } finally {
          record.empty = !text.trim() && toolCalls === 0;
          settle(record.tokensOut ? null : { prompt_tokens: record.tokensIn, completion_tokens: Math.ceil(text.length / 4), total_tokens: 0 });
          record.latencyMs = Math.round(performance.now() - t0);
          finish();
          controller.close();
        }
      },
      cancel() {
        // The client went away: stop paying for tokens nobody reads.
        streamed.abort();
      },
    });
    return c.body(body, 200);
  },
);

