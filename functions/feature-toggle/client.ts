import { Hono } from 'hono';
import type { AppEnv } from '../../shared/context';
import { deploymentKeyAuth } from '../../shared/key-auth';

/**
 * What a client app (browser with pk_, server with sk_) may know about its deployment: the flags and
 * nothing secret. Flag evaluation per user (rollouts, cohorts) builds on this route.
 */
export const clientRoutes = new Hono<AppEnv>().get('/client/config', deploymentKeyAuth(), (c) => {
  const { deployment, kind } = c.get('auth');
  c.header('Cache-Control', 'no-store');
  return c.json({
    deploymentId: deployment.id,
    name: deployment.name,
    type: deployment.type,
    environment: deployment.environment,
    keyKind: kind,
    configVersion: deployment.configVersion,
    features: deployment.features,
  });
});
