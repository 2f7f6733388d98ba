import type { Deployment, DeploymentType } from '../../shared/deployment';
import { ApiError } from '../../shared/errors';
import { evaluateFlag } from '../../shared/flags';
import { effectiveLimits, planChecks, type EffectiveLimits, type LimitCheck, type LimitDecision } from '../../shared/limiter';
import type { ChatRequest } from '../../shared/openai-types';
import { filterMessageUrls, redactMessages } from '../../shared/pii';
import type { RedisKeys } from '../../shared/redis';
import { cheapestTierWith, downgradeTargets, effectiveRouting, hasImages, requiredCapabilities, type EffectiveRouting } from '../../shared/routing';
import type { Candidate } from './dispatch';
import { applyTokenGuards, type TokenGuardResult } from './guards';
import { planRoute, type RoutePlan } from './route';

/** What the caller's headers say about the end user (validated; trust is checked after auth). */
export interface Caller {
  /** The end user's id as sent (for sticky rollouts), and the session's. */
  userId?: string;
  session?: string;
  /** End-user attributes for conditional routing (X-Inference-Edge-User). */
  attributes: Record<string, string>;
  /** A hybrid deployment's tier for this caller (X-Inference-Edge-Role). */
  role?: DeploymentType;
  /** The application feature this call serves (X-Inference-Edge-Feature or metadata.feature). */
  feature?: string;
  /** Models to answer side by side (X-Inference-Edge-Compare), when the caller asks for a comparison. */
  compare?: string[];
  /** Hashed, for per-user limits. */
  userKey?: string;
  sessionId?: string;
}

/** Everything decided before the provider call; CPU only, so it can run inside the key check's round trip. */
export interface Prepared {
  deployment: Deployment;
  req: ChatRequest;
  routing: EffectiveRouting;
  plan: RoutePlan;
  guard: TokenGuardResult;
  candidates: Candidate[];
  limits: EffectiveLimits;
  checks: LimitCheck[];
  piiRedactions: number;
  urlsRemoved: number;
  /** Set by the round trip that reserved (undefined when Redis was unreachable). */
  decision?: LimitDecision;
  /** The built-in flags as evaluated for this caller, and the call's own feature when it has a flag. */
  flags: Record<string, boolean>;
  /** The call's application feature, when the deployment has a flag of that name: its kill switch. */
  featureSwitch?: { name: string; enabled: boolean };
  /** A multi-model comparison: one route per model asked for, answered side by side. */
  comparisons?: Comparison[];
}

export interface Comparison {
  /** The model as the caller named it (tier, alias, provider/model or auto). */
  model: string;
  plan: RoutePlan;
  candidates: Candidate[];
}

export const COMPARE_HEADER = 'x-inference-edge-compare';

export interface PrepareOptions {
  /** Budget exhausted with `onBudgetExhausted: "downgrade"`: the cheapest tier, budgets not enforced. */
  downgrade?: boolean;
  /** Bindings, for FEATURE_FLAG_<NAME>_* overrides. */
  env?: Record<string, unknown>;
}

/** Built-in flags the proxy honours, and their value when a deployment does not set them. */
const FLAG_DEFAULTS: Record<string, boolean> = { inference: true, streaming: true, visionEnabled: false, smartRouting: false, piiRedaction: false, multiModelComparison: false };

/**
 * The flags for this caller: sticky rollouts by user (or session), cohorts from trusted attributes.
 * The built-in ones always; the call's application feature (say `summary`) too when the deployment
 * has a flag of that name, which makes that flag the feature's kill switch.
 */
export function callerFlags(features: Record<string, unknown>, caller: Caller, env: Record<string, unknown> = {}): Record<string, boolean> {
  const ctx = { userId: caller.userId, sessionId: caller.session, properties: caller.attributes };
  const names = Object.keys(FLAG_DEFAULTS);
  if (caller.feature && Object.hasOwn(features, caller.feature) && !names.includes(caller.feature)) names.push(caller.feature);
  return Object.fromEntries(names.map((name) => [name, evaluateFlag(name, features[name] ?? FLAG_DEFAULTS[name], ctx, { env }).enabled]));
}

export function prepare(input: ChatRequest, deployment: Deployment, caller: Caller, keys: RedisKeys, now: number, opts: PrepareOptions = {}): Prepared {
  let req = input;
  const flags = callerFlags(deployment.features, caller, opts.env);
  const feature = caller.feature;
  const featureSwitch = feature !== undefined && !Object.hasOwn(FLAG_DEFAULTS, feature) && Object.hasOwn(flags, feature) ? { name: feature, enabled: flags[feature]! } : undefined;
  if (req.stream && !flags.streaming) throw new ApiError(400, 'streaming_disabled', 'Streaming is switched off for this deployment; send stream: false.', 'stream');
  if (caller.compare) {
    if (!flags.multiModelComparison) throw new ApiError(403, 'comparison_disabled', 'Multi-model comparison is switched off for this caller (the deployment\'s multiModelComparison flag).', COMPARE_HEADER);
    if (req.stream) throw new ApiError(400, 'comparison_stream_unsupported', 'A comparison answers with every model at once; send stream: false.', 'stream');
  }
  if (hasImages(req) && !flags.visionEnabled) throw new ApiError(400, 'vision_disabled', 'Image input is switched off for this deployment.', 'messages');

  let routing: EffectiveRouting;
  try {
    routing = effectiveRouting(deployment.routing);
  } catch (err) {
    throw new ApiError(500, 'routing_invalid', `This deployment's routing config is invalid: ${(err as Error).message}`);
  }
  if (opts.downgrade) {
    const cheapest = cheapestTierWith(routing, requiredCapabilities(req));
    if (cheapest) req = { ...req, model: cheapest };
  }
  const facts = {
    metadata: req.metadata ?? {},
    user: { ...(req.user ? { id: req.user } : {}), ...caller.attributes },
    request: { stream: Boolean(req.stream), tools: Boolean(req.tools?.length), images: hasImages(req), model: req.model },
  };
  const comparisons = caller.compare?.map((model) => {
    try {
      return { model, plan: planRoute({ ...req, model }, routing, flags.smartRouting!, facts) };
    } catch (err) {
      if (err instanceof ApiError && err.param === 'model') throw new ApiError(err.status, err.code, `${COMPARE_HEADER}: ${err.message}`, COMPARE_HEADER);
      throw err;
    }
  });
  const plan = comparisons ? { ...comparisons[0]!.plan, reason: `compare:${comparisons.map((x) => x.plan.reason).join(' | ')}` } : planRoute(req, routing, flags.smartRouting!, facts);
  if (opts.downgrade) plan.reason += ' budget->cheapest';

  const limits = effectiveLimits(deployment, caller.role);
  const guard = applyTokenGuards(req, { tokensPerRequest: limits.tokensPerRequest, contextBudgetTokens: routing.contextBudgetTokens });
  req = guard.request;

  // URLs first: redaction would turn https://user:pw@host into something the URL filter no longer sees.
  let urlsRemoved = 0;
  let piiRedactions = 0;
  if (routing.urlAllowlist.length) {
    const r = filterMessageUrls(req.messages, routing.urlAllowlist);
    urlsRemoved = r.removed;
    req = { ...req, messages: r.messages };
  }
  if (flags.piiRedaction) {
    const r = redactMessages(req.messages);
    piiRedactions = Object.values(r.counts).reduce<number>((a, b) => a + (b ?? 0), 0);
    req = { ...req, messages: r.messages };
  }

  const candidatesOf = (p: RoutePlan): Candidate[] => [
    ...p.targets.map((target) => ({ target })),
    ...(routing.downgradeOnFailure && p.tier
      ? downgradeTargets(routing, p.tier, requiredCapabilities(req)).map(({ tier, target }) => ({ target, downgradedTo: tier }))
      : []),
  ];
  const candidates = candidatesOf(plan);
  // Reserve the worst case: the prompt plus every token the answer may use, at the first target's
  // prices; a comparison is one provider call (and one request) per model.
  const routes = comparisons?.map((x) => x.plan) ?? [plan];
  const maxOut = guard.maxTokens ?? 0;
  const costUsd = routes.reduce((sum, p) => sum + (guard.promptTokens * p.targets[0]!.priceInputPerMTok + maxOut * p.targets[0]!.priceOutputPerMTok) / 1_000_000, 0);
  const usage = { requests: routes.length, tokens: routes.length * (guard.promptTokens + maxOut), costUsd, userId: caller.userKey, sessionId: caller.sessionId };
  const checks = planChecks(deployment, limits, usage, keys, now, { skipBudgets: opts.downgrade });
  return {
    deployment, req, routing, plan, guard, candidates, limits, checks, piiRedactions, urlsRemoved, flags, featureSwitch,
    comparisons: comparisons?.map((x) => ({ ...x, candidates: candidatesOf(x.plan) })),
  };
}
