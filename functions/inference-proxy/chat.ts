import { Validator } from '@cfworker/json-schema';
import { Hono, type Context } from 'hono';
import type { AppEnv } from '../../shared/context';
import { flagName } from '../../shared/deployment';
import { loadConfig } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { Breakers, breakerId } from '../../shared/breaker';
import { authenticate } from '../../shared/key-auth';
import { assertInferenceEnabled } from '../../shared/kill-switch';
import { emergencyAllow, hashId, limitHeaders, reserve, settle, type LimitDecision } from '../../shared/limiter';
import { countCall } from '../../shared/usage';
import { countTotals } from '../../shared/metrics';
import { afterResponse, type AfterResponse, type UsageRecord } from './after';
import { log } from '../../shared/log';
import type { ChatCompletion, ChatRequest, Usage } from '../../shared/openai-types';
import { ProviderError } from '../../shared/providers/types';
import { redisClient, redisKeys, type RedisKeys } from '../../shared/redis';
import { allTargets, costUsd, effectiveRouting, type EffectiveRouting, type Target } from '../../shared/routing';
import { sseData } from '../../shared/sse';
import { parseJson } from '../../shared/validate';
import { completionAsChunks, dispatch, replay, resolvePolicy, type Answer, type Candidate, type DispatchContext, type DispatchPolicy, type DispatchResult } from './dispatch';
import { prepare, type Caller, type Prepared } from './prepare';
import { chatRequestSchema, normalizeRequest } from './request';

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

function breakerKeysOf(routingConfig: Record<string, unknown>, keys: RedisKeys): string[] {
  try {
    return allTargets(effectiveRouting(routingConfig)).filter((t) => t.provider !== 'mock').map((t) => keys.breaker(breakerId(t.provider, t.model)));
  } catch {
    return []; // invalid routing is reported by the handler
  }
}

const USER_HEADER = 'x-inference-edge-user';
const ROLE_HEADER = 'x-inference-edge-role';
const FEATURE_HEADER = 'x-inference-edge-feature';

/**
 * What the request's headers say about its end user. `X-Inference-Edge-User` (a JSON object of
 * strings, for conditional routing) and `X-Inference-Edge-Role` (a hybrid deployment's tier) are
 * trusted only from a secret-key caller: checked after auth by `assertCallerTrusted`.
 */
function readCaller(c: Context<AppEnv>, req: ChatRequest): Caller {
  const raw = c.req.header(USER_HEADER);
  let attributes: Record<string, string> = {};
  if (raw !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = null;
    }
    const valid = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && raw.length <= 2048
      && Object.values(parsed).every((v) => typeof v === 'string' && v.length <= 256);
    if (!valid) throw new ApiError(400, 'invalid_user_attributes', `${USER_HEADER} must be a JSON object of strings (at most 2 KiB).`, USER_HEADER);
    attributes = parsed as Record<string, string>;
  }
  const role = c.req.header(ROLE_HEADER);
  if (role !== undefined && role !== 'public' && role !== 'internal') {
    throw new ApiError(400, 'invalid_role', `${ROLE_HEADER} must be "public" or "internal".`, ROLE_HEADER);
  }
  const feature = c.req.header(FEATURE_HEADER) ?? req.metadata?.feature;
  if (feature !== undefined && !flagName.safeParse(feature).success) {
    throw new ApiError(400, 'invalid_feature', `${FEATURE_HEADER} (or metadata.feature) must be 1-64 letters, digits, "_", "." or "-", starting with a letter.`, FEATURE_HEADER);
  }
  const user = req.user ?? attributes.id;
  const session = c.req.header('x-session-id') ?? req.metadata?.session_id;
  return { attributes, role: role as Caller['role'], feature, userId: user, session, userKey: user ? hashId(user) : undefined, sessionId: session ? hashId(session) : undefined };
}

function assertCallerTrusted(c: Context<AppEnv>) {
  if (c.get('auth').kind === 'secret') return;
  for (const h of [USER_HEADER, ROLE_HEADER]) {
    if (c.req.header(h) !== undefined) throw new ApiError(403, 'caller_headers_forbidden', `${h} may only be sent with a secret key (sk_…).`, h);
  }
}

/** The limiter's answer as an error: 429 for request windows (with Retry-After), 402 for budgets. */
function refusal(decision: LimitDecision, now: number): ApiError {
  const headers = { ...limitHeaders(decision.windows, now), 'retry-after': String(decision.retryAfter ?? 1) };
  if (decision.budget) {
    return new ApiError(402, 'budget_exhausted', `This deployment's ${decision.reason?.replace(/_/g, ' ')} is spent; it resets in ${decision.retryAfter} s.`, null, headers);
  }
  return new ApiError(429, 'rate_limit_exceeded', `Rate limit reached (${decision.reason?.replace(/_/g, ' ')}); retry in ${decision.retryAfter} s.`, null, headers);
}

export const chatRoutes = new Hono<AppEnv>().post('/v1/chat/completions', async (c) => {
  const t0 = performance.now();
  const now = Date.now();
  if (!c.req.header('authorization')) await authenticate(c); // 401 before anything else
  const input = normalizeRequest(await parseJson(c, chatRequestSchema));
  const caller = readCaller(c, input);
  const config = loadConfig(c.env);
  const keys = redisKeys(config.REDIS_KEY_PREFIX);
  const redis = redisClient(config);

  // The hot path's one Redis round trip: the config version, the global kill switch and every
  // target's breaker are read by the same Lua call that checks and reserves every limit window.
  const prepared: Prepared[] = [];
  let prepareError: unknown = null;
  await authenticate(c, {
    alsoRead: (deployment, k) => [k.globalKillSwitch(), ...breakerKeysOf(deployment.routing, k)],
    roundTrip: async (deployment, readKeys) => {
      let p: Prepared;
      try {
        p = prepare(input, deployment, caller, keys, now, { env: c.env as unknown as Record<string, unknown> });
      } catch (err) {
        prepareError = err;
        return readKeys.length ? redis.mget<(string | null)[]>(...readKeys) : [];
      }
      prepared.push(p);
      const { decision, reads } = await reserve(redis, p.checks, now, 'reserve', readKeys);
      p.decision = decision;
      return reads;
    },
  });
  const auth = c.get('auth');
  const { deployment, reads, redisDegraded } = auth;
  // A reservation made for a stale copy of the deployment (its config changed meanwhile) is given back.
  let prep = prepared.findLast((p) => p.deployment === deployment);
  const stale = prepared.filter((p) => p !== prep && p.decision?.reserved.length);
  if (stale.length) waitUntil(c, Promise.all(stale.map((p) => settle(redis, p.decision!.reserved, null))));
  const release = () => prep?.decision?.reserved.length && waitUntil(c, settle(redis, prep.decision.reserved, null));
  try {
    if (prepareError && !prep) throw prepareError;
    assertCallerTrusted(c);
    prep ??= prepare(input, deployment, caller, keys, now, { env: c.env as unknown as Record<string, unknown> }); // Redis unreachable: the round trip never ran
    assertInferenceEnabled(c.env, reads.get(keys.globalKillSwitch()), prep.flags.inference !== false, prep.featureSwitch);
  } catch (err) {
    release();
    throw err;
  }

  let decision = prep.decision;
  if (!decision) {
    // Redis unreachable: the deployment's explicit policy decides (fail closed for public by default).
    const policy = deployment.rateLimits.onRedisUnavailable ?? (deployment.type === 'internal' ? 'failOpen' : 'failClosed');
    c.header('x-inference-edge-limiter', 'degraded');
    log('warn', 'limiter.degraded', { requestId: c.get('requestId'), deploymentId: deployment.id, policy });
    if (policy === 'failClosed') throw new ApiError(503, 'limiter_unavailable', 'Usage limits cannot be checked right now, so this deployment refuses calls; try again shortly.', null, { 'retry-after': '5' });
    if (!emergencyAllow(deployment.id, prep.limits.requestsPerMinute ?? 60, now)) {
      throw new ApiError(429, 'rate_limit_exceeded', 'Rate limit reached (emergency limit while limits cannot be shared); retry shortly.', null, { 'retry-after': '60' });
    }
  } else if (!decision.allowed) {
    const budgets = deployment.budgets as { onBudgetExhausted?: string };
    if (!(decision.budget && budgets.onBudgetExhausted === 'downgrade')) {
      // Refusals count too: the alert policies watch 429s (any on an internal deployment, spikes).
      const p = redis.pipeline();
      const status = decision.budget ? 402 : 429;
      const latencyMs = performance.now() - t0;
      countCall(p, keys, deployment.id, now, { status, latencyMs, error: false });
      countTotals(p, keys, deployment.id, { status, latencyMs, provider: null, model: null, tokensIn: 0, tokensOut: 0, costUsd: 0, fallbacks: 0, stalled: false, empty: false });
      waitUntil(c, p.exec().catch(() => undefined));
      throw refusal(decision, now);
    }
    // Seed 004: "402: block or downgrade based on tier": serve on the cheapest tier instead.
    prep = prepare(input, deployment, caller, keys, now, { downgrade: true, env: c.env as unknown as Record<string, unknown> });
    decision = (await reserve(redis, prep.checks, now, 'reserve')).decision;
    prep.decision = decision;
    if (!decision.allowed) throw refusal(decision, now);
    c.header('x-inference-edge-budget', 'downgraded');
  }
  for (const [k, v] of Object.entries(limitHeaders(decision?.windows ?? [], now))) c.header(k, v);

  const { req, routing, plan, guard, candidates, piiRedactions, urlsRemoved } = prep;
  if (guard.droppedMessages) c.header('x-inference-edge-truncated', `dropped=${guard.droppedMessages}`);
  if (guard.maxTokensClamped) c.header('x-inference-edge-max-tokens', String(guard.maxTokens));
  if (piiRedactions) c.header('x-inference-edge-pii-redacted', String(piiRedactions));

  const policy = resolvePolicy(routing, c.env);
  if (redisDegraded) c.header('x-inference-edge-degraded', 'redis');
  const ctx: DispatchContext = {
    env: c.env,
    requestId: c.get('requestId'),
    mock: { latencyMs: Number(c.env.MOCK_LATENCY_MS ?? 0) || 0, chunkDelayMs: Number(c.env.MOCK_CHUNK_DELAY_MS ?? 0) || 0 },
    breakers: new Breakers(redis, keys),
    breakerReads: new Map(allTargets(routing).map((t) => {
      const id = breakerId(t.provider, t.model);
      return [id, reads.get(keys.breaker(id)) ?? null];
    })),
    redisDown: redisDegraded,
    background: [],
  };
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
  const after: AfterResponse = {
    config, redis, keys, deployment, caller, now, decision, flags: prep.flags,
    feature: caller.feature ?? null,
  };
  const finish = () => {
    waitUntil(c, Promise.allSettled(ctx.background));
    waitUntil(c, afterResponse(after, record).catch((err: Error) => log('warn', 'post_response.failed', { requestId: record.requestId, error: err.message })));
    log('info', 'usage', { ...record });
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
  const account = (usage: Usage | null | undefined) => {
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
    account(completion.usage);
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
          if (chunk.usage) account(chunk.usage);
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
        account(record.tokensOut ? null : { prompt_tokens: record.tokensIn, completion_tokens: Math.ceil(text.length / 4), total_tokens: 0 });
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
});

