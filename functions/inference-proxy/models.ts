import { Hono } from 'hono';
import type { AppEnv } from '../../shared/context';
import { ApiError } from '../../shared/errors';
import { deploymentKeyAuth } from '../../shared/key-auth';
import { effectiveRouting, listModels } from '../../shared/routing';

/** GET /v1/models: what this deployment may send as `model` (OpenAI's list shape). */
export const modelRoutes = new Hono<AppEnv>().get('/v1/models', deploymentKeyAuth(), (c) => {
  let routing;
  try {
    routing = effectiveRouting(c.get('auth').deployment.routing);
  } catch (err) {
    throw new ApiError(500, 'routing_invalid', `This deployment's routing config is invalid: ${(err as Error).message}`);
  }
  return c.json({
    object: 'list',
    data: listModels(routing).map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: m.ownedBy, kind: m.kind })),
  });
});
