import { Validator } from '@cfworker/json-schema';
import { Hono, type Context } from 'hono';
import type { AppEnv } from '../../shared/context';
import { loadConfig } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { Breakers, breakerId } from '../../shared/breaker';
import { CounterBatch } from '../../shared/counters';
import { authenticate } from '../../shared/key-auth';
import { log } from '../../shared/log';
import type { ChatCompletion, ChatRequest, Usage } from '../../shared/openai-types';
import { ProviderError } from '../../shared/providers/types';
import { redisClient, redisKeys } from '../../shared/redis';
import { allTargets, costUsd, type EffectiveRouting, type Target } from '../../shared/routing';
import { parseJson } from '../../shared/validate';
import { admit, readCaller, waitUntil } from './admit';
import { afterResponse, newUsageRecord, type AfterResponse } from './after';
import { compareModels } from './compare';
import { completionAsChunks, dispatch, replay, resolvePolicy, type Answer, type Candidate, type DispatchContext, type DispatchPolicy, type DispatchResult } from './dispatch';
import { chatRequestSchema, normalizeRequest } from './request';
import { relaySse } from './stream';

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

export const chatRoutes = new Hono<AppEnv>().post('/v1/chat/completions', async (c) => {
  const t0 = performance.now();
  const now = Date.now();
  if (!c.req.header('authorization')) await authenticate(c); // 401 before anything else
  const input = normalizeRequest(await parseJson(c, chatRequestSchema));
  const caller = readCaller(c, input);
  const config = loadConfig(c.env);
  const keys = redisKeys(config.REDIS_KEY_PREFIX);
  const redis = redisClient(config);

  const { deployment, prep, decision, reads, redisDegraded } = await admit(c, input, caller, redis, keys, now, t0);

  const { req, routing, plan, guard, candidates, piiRedactions } = prep;
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
    batch: new CounterBatch(),
  };
  const record = newUsageRecord(ctx.requestId, deployment.id, prep);
  const after: AfterResponse = { config, redis, keys, deployment, caller, now, decision, flags: prep.flags, batch: ctx.batch };
  const finish = () => {
    waitUntil(c, Promise.allSettled(ctx.background));
    waitUntil(c, afterResponse(after, record).catch((err: Error) => log('warn', 'post_response.failed', { requestId: record.requestId, error: err.message })));
    log('info', 'usage', { ...record });
  };
  /** No answer at all: the usage record says why, and the error goes to the client. */
  const failed = (err: unknown) => {
    record.status = err instanceof ApiError ? err.status : 500;
    record.errorCategory = err instanceof ApiError ? err.code : 'internal';
    record.latencyMs = Math.round(performance.now() - t0);
    finish();
    return err;
  };

  if (prep.comparisons) {
    let completion;
    try {
      completion = await compareModels(req, prep.comparisons, policy, ctx, record);
    } catch (err) {
      throw failed(err);
    }
    c.header('x-inference-edge-route-reason', plan.reason);
    c.header('x-inference-edge-compare', completion.choices.map((x) => `${x.requested}=${x.provider ?? 'failed'}/${x.model}`).join(', '));
    record.latencyMs = Math.round(performance.now() - t0);
    record.ttfbMs = record.latencyMs;
    finish();
    return c.json(completion);
  }

  let result: DispatchResult;
  try {
    result = await dispatchWithLastResorts(req, candidates, policy, ctx, routing);
  } catch (err) {
    throw failed(err);
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
  record.ttfbMs = Math.round(performance.now() - t0);
  const streamed = answer;
  const body = relaySse(streamed, {
    requestId: record.requestId,
    includeUsage: req.stream_options?.include_usage === true,
    onUsage: account,
    onEnd: ({ text, toolCalls, error }) => {
      if (error) {
        const e = error instanceof ProviderError ? error : null;
        record.status = 502;
        record.errorCategory = e?.category ?? 'stream';
        record.stalled = e?.category === 'stall';
        if (e) ctx.background.push(ctx.breakers.record(breakerId(streamed.target.provider, streamed.target.model), false, policy.breaker, ctx.redisDown));
      }
      record.empty = !text.trim() && toolCalls === 0;
      account(record.tokensOut ? null : { prompt_tokens: record.tokensIn, completion_tokens: Math.ceil(text.length / 4), total_tokens: 0 });
      record.latencyMs = Math.round(performance.now() - t0);
      finish();
    },
  });
  return c.body(body, 200);
});

