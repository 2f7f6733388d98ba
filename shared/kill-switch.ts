import type { Bindings } from './env';
import { ApiError } from './errors';

/** The user-facing message of a thrown kill switch (seed 000: "show user-facing unavailable message"). */
export const UNAVAILABLE_MESSAGE = 'AI features are temporarily unavailable. Please try again later.';

/** The global kill switch is thrown: by the INFERENCE_ENABLED=false binding, or by the Redis key ("off"). */
export const envSwitchOff = (env: Bindings) => String(env.INFERENCE_ENABLED ?? '').toLowerCase() === 'false';
export const globalSwitchOff = (env: Bindings, redisValue: string | null | undefined) => envSwitchOff(env) || redisValue === 'off';

/**
 * Throws 503 when inference is switched off for this call: globally (INFERENCE_ENABLED=false, or the
 * Redis switch read in the auth round trip), for this caller by the deployment's `inference` flag,
 * or for the application feature the call serves (`feature_disabled`, seed 000 "per-feature flags",
 * "temporarily disable non-critical features"). Flags are evaluated, so each can be rolled out or
 * back by percentage or cohort.
 */
export function assertInferenceEnabled(env: Bindings, globalSwitch: string | null | undefined, deploymentInference: boolean, feature?: { name: string; enabled: boolean }): void {
  const scope = globalSwitchOff(env, globalSwitch) ? 'global' : !deploymentInference ? 'deployment' : feature && !feature.enabled ? 'feature' : null;
  if (scope) {
    const code = scope === 'feature' ? 'feature_disabled' : 'inference_disabled';
    throw new ApiError(503, code, UNAVAILABLE_MESSAGE, null, { 'x-inference-edge-kill-switch': scope });
  }
}
