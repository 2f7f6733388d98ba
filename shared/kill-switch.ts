import type { Deployment } from './deployment';
import type { Bindings } from './env';
import { ApiError } from './errors';

/** The user-facing message of a thrown kill switch (seed 000: "show user-facing unavailable message"). */
export const UNAVAILABLE_MESSAGE = 'AI features are temporarily unavailable. Please try again later.';

/** A flag's on/off state as stored: a boolean, or an object with `enabled`; `fallback` when missing. */
export function flagOn(features: Record<string, unknown>, name: string, fallback = true): boolean {
  const v = features[name];
  if (v === undefined) return fallback;
  if (typeof v === 'boolean') return v;
  if (v && typeof v === 'object' && 'enabled' in v) return (v as { enabled: unknown }).enabled !== false;
  return true;
}

/**
 * Throws 503 `inference_disabled` when inference is switched off: globally (INFERENCE_ENABLED=false,
 * or the Redis switch read in the auth round trip), or for this deployment (its `inference` flag).
 */
export function assertInferenceEnabled(env: Bindings, globalSwitch: string | null | undefined, deployment: Deployment): void {
  const scope =
    String(env.INFERENCE_ENABLED ?? '').toLowerCase() === 'false' || globalSwitch === 'off' ? 'global'
    : !flagOn(deployment.features, 'inference') ? 'deployment'
    : null;
  if (scope) {
    throw new ApiError(503, 'inference_disabled', UNAVAILABLE_MESSAGE, null, { 'x-inference-edge-kill-switch': scope });
  }
}
