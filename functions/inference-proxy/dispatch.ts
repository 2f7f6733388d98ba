import { breakerId, DEFAULT_BREAKER, type BreakerConfig, type Breakers } from '../../shared/breaker';
import type { CounterBatch } from '../../shared/counters';
import type { Bindings } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { log } from '../../shared/log';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../../shared/openai-types';
import { callProvider } from '../../shared/providers/call';
import type { MockOptions } from '../../shared/providers/mock';
import { resolveProvider } from '../../shared/providers/registry';
import { ProviderError, type ResolvedProvider } from '../../shared/providers/types';
import type { EffectiveRouting, Target } from '../../shared/routing';

/** How hard to try: deadlines, retries, breakers, which failures move on (resolved from routing + env). */
export interface DispatchPolicy {
  firstByteMs: number;
  stallMs: number;
  totalMs: number;
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  budgetMs: number;
  breaker: BreakerConfig;
  fallbackOn: ReadonlySet<number>;
}

const DEFAULT_FALLBACK_STATUSES = [429, 500, 502, 503, 504, 529];
/** Never retried, never a reason to try elsewhere: the request itself is wrong. */
const NEVER_RETRY = new Set([400, 401, 403, 404, 413, 422]);

const num = (v: string | undefined, fallback: number) => {
  const n = Number(v);
  return v !== undefined && v !== '' && Number.isFinite(n) && n >= 0 ? n : fallback;
};

export function resolvePolicy(routing: EffectiveRouting, env: Bindings): DispatchPolicy {
  const t = routing.timeouts;
  const r = routing.retry;
  const b = routing.breaker;
  return {
    firstByteMs: t.firstByteMs ?? num(env.PROVIDER_FIRST_BYTE_TIMEOUT_MS, 30_000),
    stallMs: t.stallMs ?? num(env.PROVIDER_STALL_TIMEOUT_MS, 10_000),
    totalMs: t.totalMs ?? num(env.PROVIDER_TOTAL_TIMEOUT_MS, 300_000),
    attempts: 1 + (r.attempts ?? num(env.PROVIDER_RETRY_ATTEMPTS, 1)),
    baseDelayMs: r.baseDelayMs ?? 250,
    maxDelayMs: r.maxDelayMs ?? 4_000,
    budgetMs: r.budgetMs ?? 10_000,
    breaker: {
      failureThreshold: b.failureThreshold ?? num(env.BREAKER_FAILURE_THRESHOLD, DEFAULT_BREAKER.failureThreshold),
      windowMs: b.windowMs ?? DEFAULT_BREAKER.windowMs,
      cooldownMs: b.cooldownMs ?? num(env.BREAKER_COOLDOWN_MS, DEFAULT_BREAKER.cooldownMs),
      minCalls: b.minCalls ?? DEFAULT_BREAKER.minCalls,
      failureRatio: b.failureRatio ?? DEFAULT_BREAKER.failureRatio,
    },
    fallbackOn: new Set(routing.fallbackOnStatus ?? DEFAULT_FALLBACK_STATUSES),
  };
}

export interface DispatchContext {
  env: Bindings;
  requestId: string;
  mock: MockOptions;
  breakers: Breakers;
  /** Breaker state values read in the hot-path MGET, by breaker id. */
  breakerReads: Map<string, string | null>;
  redisDown: boolean;
  /** Background work (breaker outcomes) to hand to waitUntil. */
  background: Promise<unknown>[];
  /** The request's post-response writes (sent as one command after the answer). */
  batch: CounterBatch;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** One candidate: a target and, when it comes from a cheaper tier, that tier. */
export interface Candidate {
  target: Target;
  downgradedTo?: string;
}

/** A call that answered: JSON, or a stream whose first chunk has arrived. */
export interface Answer {
  target: Target;
  provider: ResolvedProvider | null;
  downgradedTo?: string;
  completion?: ChatCompletion;
  /** Streams: the next chunk, under the stall deadline. */
  next?: () => Promise<IteratorResult<ChatCompletionChunk>>;
  first?: IteratorResult<ChatCompletionChunk>;
  /** Stops the upstream call (a client that went away, a stall). */
  abort: () => void;
  providerMs: number;
  /** The stream was served by a non-streamed call re-emitted as SSE. */
  reemitted?: boolean;
}

export interface DispatchResult {
  answer: Answer;
  /** Targets tried and failed (or skipped for an open breaker) before the one that answered. */
  fallbacks: number;
  retries: number;
  /** Why targets were passed over, for logs and the 503 message. */
  skipped: string[];
}

const sleepFor = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Full-jitter backoff (AWS architecture blog), or the provider's own Retry-After when it sent one. */
export function retryDelay(err: ProviderError, attempt: number, policy: DispatchPolicy, random: () => number): number {
  if (err.retryAfterMs !== null) return err.retryAfterMs;
  return Math.floor(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt));
}

/** A failure that says something about the provider's health (counts against its breaker). */
const providerFault = (err: ProviderError) => err.category !== 'http' || err.status >= 500 || err.status === 429;

/**
 * Races a stream's next chunk against a deadline. On timeout the upstream is aborted and the call
 * fails as a stall (or a first-byte timeout), so a silent provider never hangs the client.
 */
function withDeadline<T>(next: Promise<T>, ms: number, onTimeout: () => ProviderError, abort: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  next.catch(() => {}); // a read that fails after we gave up is not an unhandled rejection
  return Promise.race([
    next,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => {
        abort();
        reject(onTimeout());
      }, ms);
    }),
  ]).finally(() => {
    if (timer !== undefined) clearTimeout(timer);
  });
}

/** One call to one target under the policy's deadlines. */
async function attempt(provider: ResolvedProvider, target: Target, req: ChatRequest, policy: DispatchPolicy, ctx: DispatchContext): Promise<Answer> {
  const controller = new AbortController();
  const abort = (message: string) => controller.abort(new Error(message));
  const total = setTimeout(() => abort(`exceeded the total deadline of ${policy.totalMs} ms`), policy.totalMs);
  const started = performance.now();
  let firstByte: ReturnType<typeof setTimeout> | undefined = setTimeout(
    () => abort(`sent nothing within the first-byte deadline of ${policy.firstByteMs} ms`),
    policy.firstByteMs,
  );
  const clearFirstByte = () => {
    if (firstByte !== undefined) clearTimeout(firstByte);
    firstByte = undefined;
  };
  try {
    const result = await callProvider(provider, req, target.model, {
      requestId: ctx.requestId,
      signal: controller.signal,
      onHeaders: req.stream ? undefined : clearFirstByte,
      mock: ctx.mock,
    });
    if (result.kind === 'json') {
      clearFirstByte();
      clearTimeout(total);
      return { target, provider, completion: result.completion, abort: () => controller.abort(), providerMs: performance.now() - started };
    }
    const iterator = result.chunks[Symbol.asyncIterator]();
    const stop = () => {
      clearTimeout(total);
      controller.abort(new Error('stopped'));
    };
    const remaining = Math.max(1, policy.firstByteMs - (performance.now() - started));
    clearFirstByte();
    const first = await withDeadline(iterator.next(), remaining,
      () => new ProviderError(provider.name, 504, `${provider.name} sent no chunk within the first-byte deadline of ${policy.firstByteMs} ms`, null, 'timeout'), stop);
    const providerMs = performance.now() - started;
    const next = async () => {
      try {
        const r = await withDeadline(iterator.next(), policy.stallMs,
          () => new ProviderError(provider.name, 504, `${provider.name} stalled: no chunk for ${policy.stallMs} ms`, null, 'stall'), stop);
        if (r.done) clearTimeout(total);
        return r;
      } catch (err) {
        clearTimeout(total);
        throw err instanceof ProviderError ? err : new ProviderError(provider.name, 502, `${provider.name} stream failed: ${(err as Error).message}`, null, 'stream');
      }
    };
    if (first.done) clearTimeout(total);
    return { target, provider, first, next, abort: stop, providerMs };
  } catch (err) {
    clearFirstByte();
    clearTimeout(total);
    if (err instanceof ProviderError) throw err;
    if (controller.signal.aborted) {
      throw new ProviderError(provider.name, 504, `${provider.name} ${(controller.signal.reason as Error)?.message ?? 'timed out'}`, null, 'timeout');
    }
    throw err;
  }
}

/**
 * Tries candidates in order: skips providers without keys and targets whose breaker is open (no
 * network call), retries a target on retryable failures with backoff (Retry-After honoured, within a
 * total budget), moves to the next target on the policy's statuses, network errors and deadlines,
 * and records every outcome in the target's shared breaker. A 4xx that is the request's own fault
 * ends the dispatch at once.
 */
export async function dispatch(req: ChatRequest, candidates: Candidate[], policy: DispatchPolicy, ctx: DispatchContext): Promise<DispatchResult> {
  const random = ctx.random ?? Math.random;
  const sleep = ctx.sleep ?? sleepFor;
  const env = ctx.env as unknown as Record<string, unknown>;
  const skipped: string[] = [];
  let fallbacks = 0;
  let retries = 0;
  let retryBudget = policy.budgetMs;
  let lastError: ProviderError | null = null;

  for (const { target, downgradedTo } of candidates) {
    const provider = resolveProvider(target.provider, env);
    if ('unavailable' in provider) {
      skipped.push(provider.unavailable);
      continue;
    }
    const id = breakerId(target.provider, target.model);
    const gate = await ctx.breakers.admit(id, ctx.breakerReads.get(id), policy.breaker, ctx.redisDown).catch(() => ({ allowed: true, state: 'closed' as const, probe: false }));
    if (!gate.allowed) {
      skipped.push(`${id} breaker ${gate.state}`);
      fallbacks++;
      continue;
    }
    for (let i = 0; i < policy.attempts; i++) {
      try {
        const answer = await attempt(provider, target, req, policy, ctx);
        if (!ctx.breakers.recordSuccessInto(ctx.batch, id, ctx.breakerReads.get(id), policy.breaker, ctx.redisDown)) {
          ctx.background.push(ctx.breakers.record(id, true, policy.breaker, ctx.redisDown));
        }
        return { answer: { ...answer, downgradedTo }, fallbacks, retries, skipped };
      } catch (err) {
        if (!(err instanceof ProviderError)) throw err;
        lastError = err;
        if (providerFault(err)) ctx.background.push(ctx.breakers.record(id, false, policy.breaker, ctx.redisDown));
        log('warn', 'provider.failed', { requestId: ctx.requestId, provider: target.provider, model: target.model, status: err.status, category: err.category, attempt: i + 1 });
        if (err.category === 'http' && NEVER_RETRY.has(err.status)) throw providerFailure(err);
        const movesOn = err.category !== 'http' || policy.fallbackOn.has(err.status) || err.status >= 500;
        if (!movesOn) throw providerFailure(err);
        // A half-open probe gets one try; a breaker that just opened is not retried into.
        if (gate.probe || i + 1 >= policy.attempts) break;
        const delay = retryDelay(err, i, policy, random);
        if (delay > policy.maxDelayMs || delay > retryBudget) break; // cheaper to try the next target
        retryBudget -= delay;
        retries++;
        await sleep(delay);
      }
    }
    fallbacks++;
  }
  if (lastError) throw providerFailure(lastError, skipped);
  throw new ApiError(503, 'no_provider_available', `The AI service is temporarily unavailable; please try again shortly. (${skipped.join('; ') || 'no targets'})`);
}

/** Upstream errors mapped in one place: upstream 4xx kept, auth failures and 5xx → 502, deadlines → 504. */
export function providerFailure(err: ProviderError, skipped: string[] = []): ApiError {
  const also = skipped.length ? ` Also unavailable: ${skipped.join('; ')}.` : '';
  if (err.category === 'timeout' || err.category === 'stall') return new ApiError(504, 'provider_timeout', `${err.message}.${also}`);
  if (err.status === 429) {
    const headers: Record<string, string> = err.retryAfterMs !== null ? { 'retry-after': String(Math.ceil(err.retryAfterMs / 1000)) } : {};
    return new ApiError(429, 'provider_rate_limited', `${err.provider} is rate limiting this deployment; retry later.${also}`, null, headers);
  }
  if (err.status === 401 || err.status === 403) return new ApiError(502, 'provider_auth_failed', `${err.provider} refused the gateway's credentials.${also}`);
  if (err.status >= 400 && err.status < 500) return new ApiError(err.status as 400, 'provider_rejected_request', err.message);
  return new ApiError(502, 'provider_error', `The AI provider failed (${err.message}).${also}`);
}

/** A JSON completion replayed as the chunks a stream would have sent (the non-streamed fallback). */
export function completionAsChunks(c: ChatCompletion): ChatCompletionChunk[] {
  const base = { id: c.id, object: 'chat.completion.chunk' as const, created: c.created, model: c.model };
  const choice = c.choices[0];
  const out: ChatCompletionChunk[] = [{ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }];
  if (choice?.message.content) out.push({ ...base, choices: [{ index: 0, delta: { content: choice.message.content }, finish_reason: null }] });
  if (choice?.message.tool_calls?.length) {
    out.push({ ...base, choices: [{ index: 0, delta: { tool_calls: choice.message.tool_calls.map((t, index) => ({ index, ...t })) }, finish_reason: null }] });
  }
  out.push({ ...base, choices: [{ index: 0, delta: {}, finish_reason: choice?.finish_reason ?? 'stop' }] });
  if (c.usage) out.push({ ...base, choices: [], usage: c.usage });
  return out;
}

/** An answer whose "stream" replays chunks already in hand. */
export function replay(target: Target, provider: ResolvedProvider | null, chunks: ChatCompletionChunk[], providerMs: number): Answer {
  let i = 1;
  return {
    target,
    provider,
    first: chunks.length ? { done: false, value: chunks[0]! } : { done: true, value: undefined },
    next: async () => (i < chunks.length ? { done: false, value: chunks[i++]! } : { done: true, value: undefined }),
    abort: () => {},
    providerMs,
    reemitted: true,
  };
}
