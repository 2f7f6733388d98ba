import { Hono } from 'hono';
import * as z from 'zod/mini';
import { newKeyPair } from '../../shared/api-keys';
import type { AppEnv } from '../../shared/context';
import { rpc } from '../../shared/db';
import {
  createDeploymentSchema,
  updateDeploymentSchema,
  withTypeDefaults,
  type Deployment,
} from '../../shared/deployment';
import { loadConfig } from '../../shared/env';
import { publishConfigVersion } from '../../shared/key-auth';
import { log } from '../../shared/log';
import { parseJson, parseParam } from '../../shared/validate';

interface KeyMeta {
  id: string;
  kind: 'publishable' | 'secret';
  prefix: string;
  environment: string;
  createdAt: string;
  revokedAt: string | null;
}

const uuid = z.uuid({ message: 'must be a UUID' });
const limit = z._default(z.coerce.number().check(z.int(), z.gte(1), z.lte(500)), 50);
const offset = z._default(z.coerce.number().check(z.int(), z.gte(0)), 0);
const beforeId = z.optional(z.coerce.number().check(z.int(), z.positive()));

/** The new keys, shown once: `{publishable: "pk_…", secret: "sk_…"}`. */
function shownOnce(keys: { kind: string; key: string }[]) {
  return Object.fromEntries(keys.map((k) => [k.kind, k.key])) as { publishable: string; secret: string };
}

/**
 * Makes a change visible to every isolate on its next request. The database has committed already;
 * if Redis is down the version is re-read from Postgres when isolate caches expire.
 */
async function publish(config: ReturnType<typeof loadConfig>, deploymentId: string, version: number) {
  try {
    await publishConfigVersion(config, deploymentId, version);
  } catch (err) {
    log('warn', 'config_version.publish_failed', { deploymentId, error: (err as Error).message });
  }
}

/** Admin API for deployments and their keys (mounted behind adminAuth). */
export const deploymentRoutes = new Hono<AppEnv>()
  .post('/deployments', async (c) => {
    const config = loadConfig(c.env);
    const input = withTypeDefaults(await parseJson(c, createDeploymentSchema));
    const keys = await newKeyPair(input.environment);
    const deployment = await rpc<Deployment & { keys: KeyMeta[] }>(config, 'create_deployment', {
      p_deployment: input,
      p_keys: keys.map(({ kind, keyHash, prefix }) => ({ kind, keyHash, prefix })),
      p_actor: c.get('actor'),
    });
    await publish(config, deployment.id, deployment.configVersion);
    return c.json({ deployment, keys: shownOnce(keys) }, 201);
  })
  .get('/deployments', async (c) => {
    const page = {
      p_limit: parseParam(limit, c.req.query('limit'), 'limit'),
      p_offset: parseParam(offset, c.req.query('offset'), 'offset'),
    };
    return c.json(await rpc<{ deployments: Deployment[]; total: number }>(loadConfig(c.env), 'list_deployments', page));
  })
  .get('/deployments/:id', async (c) => {
    const id = parseParam(uuid, c.req.param('id'), 'id');
    return c.json({ deployment: await rpc<Deployment>(loadConfig(c.env), 'get_deployment', { p_id: id }) });
  })
  .patch('/deployments/:id', async (c) => {
    const config = loadConfig(c.env);
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const patch = await parseJson(c, updateDeploymentSchema);
    const deployment = await rpc<Deployment>(config, 'update_deployment', { p_id: id, p_patch: patch, p_actor: c.get('actor') });
    await publish(config, deployment.id, deployment.configVersion);
    return c.json({ deployment });
  })
  .post('/deployments/:id/keys', async (c) => {
    const config = loadConfig(c.env);
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const current = await rpc<Deployment>(config, 'get_deployment', { p_id: id });
    const keys = await newKeyPair(current.environment);
    const result = await rpc<{ keys: KeyMeta[]; revokedKeyHashes: string[]; configVersion: number }>(config, 'create_api_keys', {
      p_deployment_id: id,
      p_keys: keys.map(({ kind, keyHash, prefix }) => ({ kind, keyHash, prefix })),
      p_actor: c.get('actor'),
      p_revoke_existing: true,
    });
    await publish(config, id, result.configVersion);
    return c.json({ keys: shownOnce(keys), created: result.keys, revoked: result.revokedKeyHashes.length }, 201);
  })
  .delete('/deployments/:id/keys/:keyId', async (c) => {
    const config = loadConfig(c.env);
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const keyId = parseParam(uuid, c.req.param('keyId'), 'keyId');
    const result = await rpc<{ key: KeyMeta; configVersion: number }>(config, 'revoke_api_key', {
      p_deployment_id: id,
      p_key_id: keyId,
      p_actor: c.get('actor'),
    });
    await publish(config, id, result.configVersion);
    return c.json({ key: result.key });
  })
  .get('/deployments/:id/audit', async (c) => {
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const entries = await rpc<unknown[]>(loadConfig(c.env), 'list_audit_logs', {
      p_deployment_id: id,
      p_limit: parseParam(limit, c.req.query('limit'), 'limit'),
      p_before_id: parseParam(beforeId, c.req.query('before'), 'before') ?? null,
    });
    return c.json({ entries });
  });
