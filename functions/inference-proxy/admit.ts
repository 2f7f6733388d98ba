import type { Redis } from '@upstash/redis/cloudflare';
import type { Context } from 'hono';
import { breakerId } from '../../shared/breaker';
import { CounterBatch } from '../../shared/counters';
import type { AppEnv } from '../../shared/context';
import { flagName, type Deployment } from '../../shared/deployment';
import { ApiError } from '../../shared/errors';
import { authenticate } from '../../shared/key-auth';
import { assertInferenceEnabled } from '../../shared/kill-switch';
import { emergencyAllow, hashId, limitHeaders, reserve, settle, type LimitDecision } from '../../shared/limiter';
import { log } from '../../shared/log';
import { countTotals } from '../../shared/metrics';
import type { ChatRequest } from '../../shared/openai-types';
import type { RedisKeys } from '../../shared/redis';
import { allTargets, effectiveRouting } from '../../shared/routing';
import { countCall } from '../../shared/usage';
import { COMPARE_HEADER, prepare, type Caller, type Prepared } from './prepare';

/**
 * Admission: everything the proxy decides before a provider is called. Who is calling (the key, the
 * end user's headers), whether the call may happen (kill switches, limits and budgets) and what it
 * will be (the prepared route, guards and reservation). CPU, plus the one Redis round trip.
 */

/** waitUntil where there is an execution context (not in app.request unit tests). */
export function waitUntil(c: Context<AppEnv>, work: Promise<unknown>) {
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
export function readCaller(c: Context<AppEnv>, req: ChatRequest): Caller {
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
  const compareRaw = c.req.header(COMPARE_HEADER);
  const compare = compareRaw?.split(',').map((m) => m.trim()).filter(Boolean);
  if (compare && (compare.length < 2 || compare.length > 4 || new Set(compare).size !== compare.length || compare.some((m) => m.length > 128))) {
    throw new ApiError(400, 'invalid_comparison', `${COMPARE_HEADER} must name 2 to 4 different models, comma-separated (tiers, aliases, provider/model or auto).`, COMPARE_HEADER);
  }
  const user = req.user ?? attributes.id;
  const session = c.req.header('x-session-id') ?? req.metadata?.session_id;
  return { attributes, role: role as Caller['role'], feature, compare, userId: user, session, userKey: user ? hashId(user) : undefined, sessionId: session ? hashId(session) : undefined };
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

/** What admission hands to the dispatch. */
export interface Admission {
  deployment: Deployment;
  prep: Prepared;
  /** The limiter's reservation (undefined when Redis was unreachable and the policy let the call through). */
  decision: LimitDecision | undefined;
  /** Values read in the auth round trip (kill switch, breakers). */
  reads: Map<string, string | null>;
  redisDegraded: boolean;
}

/**
 * Key auth and, in the same Redis round trip, the config version, the global kill switch, every
 * target's breaker and the limiter's check-and-reserve; then the kill switches, and the limiter's
 * answer: a 429/402 refusal (counted), a downgrade to the cheapest tier, or, with Redis unreachable,
 * the deployment's fail-open/fail-closed policy. Sets the rate-limit headers. A reservation is never
 * leaked: a refused or stale one is given back.
 */
export async function admit(c: Context<AppEnv>, input: ChatRequest, caller: Caller, redis: Redis, keys: RedisKeys, now: number, t0: number): Promise<Admission> {
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
  const { deployment, reads, redisDegraded } = c.get('auth');
  try {
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
      // A comparison is not downgraded: it asked for those models, so a spent budget refuses it.
      if (!(decision.budget && budgets.onBudgetExhausted === 'downgrade') || caller.compare) {
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
    return { deployment, prep, decision, reads, redisDegraded };
  } catch (err) {
    // Every refusal of a known deployment is counted in /metrics by status (one command, after the
    // answer); limit refusals also in the alert policies' 5-minute counters, which watch 429s. Never
    // as errors: a limit, a kill switch or a bad request is the gateway doing its job.
    if (err instanceof ApiError) {
      const status = err.status;
      const latencyMs = performance.now() - t0;
      const batch = new CounterBatch();
      if (status === 429 || status === 402) countCall(batch, keys, deployment.id, now, { status, latencyMs, error: false });
      countTotals(batch, keys, deployment.id, { status, latencyMs, provider: null, model: null, tokensIn: 0, tokensOut: 0, costUsd: 0, fallbacks: 0, stalled: false, empty: false });
      waitUntil(c, batch.exec(redis).catch(() => undefined));
    }
    throw err;
  }
}
