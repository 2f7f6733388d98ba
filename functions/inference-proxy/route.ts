import { ApiError } from '../../shared/errors';
import type { ChatRequest } from '../../shared/openai-types';
import {
  cheapestTierWith,
  hasImages,
  orderTargets,
  requiredCapabilities,
  resolveModel,
  supports,
  type EffectiveRouting,
  type RequestFacts,
  type Target,
} from '../../shared/routing';
import { classifyRequest, explainDecision } from '../../shared/smart-routing';

export interface RoutePlan {
  /** Targets to try, in order. */
  targets: Target[];
  tier: string | null;
  /** One header-safe line: why these targets (seed 004 "decision graph"). */
  reason: string;
}

/**
 * Picks the targets for a request: the model it names (tier, alias, concrete model, or `auto` with
 * smart routing), then a tier that has what the request needs (an image goes to a vision tier).
 */
export function planRoute(req: ChatRequest, routing: EffectiveRouting, smartRouting: boolean, facts: RequestFacts, random?: () => number): RoutePlan {
  const ref = resolveModel(routing, req.model);
  if (!ref) {
    throw new ApiError(404, 'model_not_found', `The model \`${req.model}\` does not exist for this deployment; GET /v1/models lists the ones it may use.`, 'model');
  }
  const caps = requiredCapabilities(req);
  if (ref.kind === 'target') {
    if (!supports(ref.target, caps)) {
      throw new ApiError(400, 'unsupported_capability', `${ref.target.provider}/${ref.target.model} does not support ${caps.filter((c) => !ref.target.capabilities.includes(c)).join(', ')}; use a tier or \`auto\`.`, 'model');
    }
    return { targets: [ref.target], tier: null, reason: `model:${ref.target.provider}/${ref.target.model}` };
  }

  let tier: string;
  let reason: string;
  if (ref.kind === 'auto') {
    if (smartRouting) {
      const decision = classifyRequest(req.messages);
      tier = routing.tiers[decision.tier] ? decision.tier : routing.defaultTier;
      reason = explainDecision(decision) + (tier !== decision.tier ? ` tier=${tier}(default)` : '');
    } else {
      tier = routing.defaultTier;
      reason = 'auto:default';
    }
  } else {
    tier = ref.tier;
    reason = `tier:${tier}`;
  }

  if (!routing.tiers[tier]!.targets.every((t) => supports(t, caps))) {
    const better = cheapestTierWith(routing, caps);
    if (!better) throw new ApiError(400, 'unsupported_capability', `No tier of this deployment supports ${caps.join(', ')}.`, hasImages(req) ? 'messages' : null);
    reason += ` needs=${caps.join('+')}->${better}`;
    tier = better;
  }
  const targets = orderTargets(routing.tiers[tier]!, facts, random).filter((t) => supports(t, caps));
  if (!targets.length) throw new ApiError(400, 'no_route', `No target of tier ${tier} matches this request's conditions.`, 'model');
  return { targets, tier, reason };
}
