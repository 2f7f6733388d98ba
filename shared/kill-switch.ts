import type { Bindings } from './env';
import { ApiError } from './errors';

/** The user-facing message of a thrown kill switch (seed 000: "show user-facing unavailable message"). */
export const UNAVAILABLE_MESSAGE = 'AI features are temporarily unavailable. Please try again later.';

/** The global kill switch is thrown: by the INFERENCE_ENABLED=false binding, or by the Redis key ("off"). */
export const envSwitchOff = (env: Bindings) => String(env.INFERENCE_ENABLED ?? '').toLowerCase() === 'false';
export const globalSwitchOff = (env: Bindings, redisValue: string | null | undefined) => envSwitchOff(env) || redisValue === 'off';

/**
 * Throws 503 `inference_disabled` when inference is switched off: globally (INFERENCE_ENABLED=false,
 * or the Redis switch read in the auth round trip), or for this caller by the deployment's
 * `inference` flag (evaluated, so it can be rolled out by percentage or cohort like any flag).
 */
export function assertInferenceEnabled(env: Bindings, globalSwitch: string | null | undefined, deploymentInference: boolean): void {
  const scope = globalSwitchOff(env, globalSwitch) ? 'global' : !deploymentInference ? 'deployment' : null;
  if (scope) {
    throw new ApiError(503, 'inference_disabled', UNAVAILABLE_MESSAGE, null, { 'x-inference-edge-kill-switch': scope });
  }
}
