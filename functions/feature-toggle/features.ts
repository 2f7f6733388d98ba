import { Hono, type Context } from 'hono';
import * as z from 'zod/mini';
import { adminAuth } from '../../shared/admin-auth';
import type { AppEnv } from '../../shared/context';
import { CounterBatch } from '../../shared/counters';
import { rpc } from '../../shared/db';
import { flagName, flagValueSchema, type Deployment } from '../../shared/deployment';
import { loadConfig, type Config } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { evaluateAll, evaluateFlag, PRESETS, type FlagContext, type FlagResult } from '../../shared/flags';
import { authenticate, publishConfigVersion } from '../../shared/key-auth';
import { envSwitchOff, globalSwitchOff } from '../../shared/kill-switch';
import { hashId } from '../../shared/limiter';
import { log } from '../../shared/log';
import { redisClient, redisKeys } from '../../shared/redis';
import { parseJson, parseParam } from '../../shared/validate';

const uuid = z.uuid({ message: 'must be a UUID' });
const auditId = z.coerce.number().check(z.int(), z.positive());
const contextValue = z.string().check(z.maxLength(256));
const evaluateBody = z.strictObject({
  userId: z.optional(contextValue),
  sessionId: z.optional(contextValue),
  properties: z.optional(z.record(z.string().check(z.regex(/^[A-Za-z][\w.-]{0,63}$/, 'property names are letters, digits, "_", "." or "-"')), contextValue)),
  currentTime: z.optional(z.iso.datetime()),
});

/**
 * Seed 004 §10.6: every flag change is also broadcast on Supabase Realtime (`deployment-updates`,
 * event `feature_toggle`) so connected clients update without polling. Best effort: the change is
 * already committed and visible to the proxy through the config version.
 */
async function broadcast(config: Config, payload: { deploymentId: string; feature: string; enabled: boolean }) {
  try {
    const res = await fetch(`${config.SUPABASE_URL}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: { apikey: config.SUPABASE_SERVICE_ROLE_KEY, authorization: `Bearer ${config.SUPABASE_SERVICE_ROLE_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ topic: 'deployment-updates', event: 'feature_toggle', payload }] }),
      signal: AbortSignal.timeout(3_000),
    });
    await res.body?.cancel();
    if (!res.ok) log('warn', 'realtime.broadcast_failed', { deploymentId: payload.deploymentId, status: res.status });
  } catch (err) {
    log('warn', 'realtime.broadcast_failed', { deploymentId: payload.deploymentId, error: (err as Error).message });
  }
}

const enabledOf = (v: unknown) => (typeof v === 'boolean' ? v : Boolean(v && typeof v === 'object' && (v as { enabled?: unknown }).enabled));

/** Applies a features patch (audited with `action`), publishes the version, broadcasts each flag. */
async function changeFeatures(c: Context<AppEnv>, id: string, features: Record<string, unknown>, action: string): Promise<Deployment> {
  const config = loadConfig(c.env);
  const deployment = await rpc<Deployment>(config, 'update_deployment', { p_id: id, p_patch: { features }, p_actor: c.get('actor'), p_action: action });
  await publishConfigVersion(config, id, deployment.configVersion).catch((err: Error) => log('warn', 'config_version.publish_failed', { deploymentId: id, error: err.message }));
  c.executionCtx.waitUntil(Promise.all(Object.entries(features).map(([feature, v]) => broadcast(config, { deploymentId: id, feature, enabled: enabledOf(v) }))));
  return deployment;
}

/** Counts evaluations for `feature_flag_usage_total{flag,variant,enabled}` (cluster-wide, in Redis). */
function countUsage(c: Context<AppEnv>, deploymentId: string, results: Record<string, FlagResult>) {
  const config = loadConfig(c.env);
  const keys = redisKeys(config.REDIS_KEY_PREFIX);
  const key = keys.flagUsage(deploymentId);
  const p = new CounterBatch().sadd(keys.metricsIndex(), deploymentId);
  for (const [flag, r] of Object.entries(results)) p.hincrby(key, `${flag}|${r.variant ?? ''}|${r.enabled}`, 1);
  c.executionCtx.waitUntil(p.exec(redisClient(config)).catch(() => undefined));
}

const isKillSwitchOn = async (c: Context<AppEnv>) => {
  if (envSwitchOff(c.env)) return true;
  const config = loadConfig(c.env);
  return globalSwitchOff(c.env, await redisClient(config).get<string>(redisKeys(config.REDIS_KEY_PREFIX).globalKillSwitch()).catch(() => null));
};

/** Admin routes (behind adminAuth): the features of one deployment. */
export const featureAdminRoutes = new Hono<AppEnv>()
  .get('/deployments/:id/features', async (c) => {
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const d = await rpc<Deployment>(loadConfig(c.env), 'get_deployment', { p_id: id });
    return c.json({ deploymentId: id, configVersion: d.configVersion, features: d.features });
  })
  .put('/deployments/:id/features/:flag', async (c) => {
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const flag = parseParam(flagName, c.req.param('flag'), 'flag');
    const value = await parseJson(c, flagValueSchema);
    const d = await changeFeatures(c, id, { [flag]: value }, 'feature.updated');
    return c.json({ deploymentId: id, flag, value: d.features[flag], configVersion: d.configVersion });
  })
  /**
   * What a caller with this context gets, flag by flag, by the very evaluation the proxy and OFREP
   * run (the dashboard's preview). Not counted as flag usage: nobody was served.
   */
  .post('/deployments/:id/evaluate', async (c) => {
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const ctx = await parseJson(c, evaluateBody);
    const d = await rpc<Deployment>(loadConfig(c.env), 'get_deployment', { p_id: id });
    const results = evaluateAll(d.features, ctx, { killSwitch: await isKillSwitchOn(c), env: c.env as unknown as Record<string, unknown> });
    return c.json({ deploymentId: id, context: ctx, flags: results });
  })
  .post('/deployments/:id/presets/:preset', async (c) => {
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const preset = parseParam(z.enum(Object.keys(PRESETS) as [string, ...string[]]), c.req.param('preset'), 'preset');
    const d = await changeFeatures(c, id, PRESETS[preset]!, `preset.${preset}`);
    return c.json({ deploymentId: id, preset, features: d.features, configVersion: d.configVersion });
  })
  .post('/deployments/:id/revert/:auditId', async (c) => {
    const config = loadConfig(c.env);
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const audit = parseParam(auditId, c.req.param('auditId'), 'auditId');
    const d = await rpc<Deployment>(config, 'revert_audit', { p_deployment_id: id, p_audit_id: audit, p_actor: c.get('actor') });
    await publishConfigVersion(config, id, d.configVersion).catch(() => undefined);
    return c.json({ deployment: d, revertedAuditId: audit });
  })
  /** Seed 004 §10.7: the embed snippet, with the publishable key (never the secret one). */
  .get('/deployments/:id/embed', async (c) => {
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const pk = c.req.query('publishableKey');
    if (pk !== undefined && !/^pk_(test|live)_[A-Za-z0-9]{32}$/.test(pk)) throw new ApiError(400, 'invalid_request', 'publishableKey: must be a publishable key (pk_…)', 'publishableKey');
    const d = await rpc<Deployment>(loadConfig(c.env), 'get_deployment', { p_id: id });
    const base = new URL(c.req.url).origin;
    const publicFeatures = evaluateAll(d.features, {}, { env: c.env as unknown as Record<string, unknown> });
    const features = Object.fromEntries(Object.entries(publicFeatures).map(([k, r]) => [k, r.enabled]));
    const key = pk ?? '<your publishable key: keys are shown once, at creation or rotation>';
    const snippet = `<script src="${base}/embed.js"></script>
<script>
  InferenceEdge.init({
    deploymentId: '${d.id}',
    apiKey: '${key}',
    endpoint: '${base.replace(/feature-toggle$/, 'inference-proxy')}/v1',
    features: ${JSON.stringify(features, null, 2).replace(/\n/g, '\n    ')}
  });
</script>
<div id="inference-edge-chat"></div>`;
    return c.json({ deploymentId: d.id, snippet, features });
  })
  /** Seed 004 §10.7: the SDK config for internal apps (the secret key goes in the app's own secret store). */
  .get('/deployments/:id/sdk-config', async (c) => {
    const id = parseParam(uuid, c.req.param('id'), 'id');
    const d = await rpc<Deployment>(loadConfig(c.env), 'get_deployment', { p_id: id });
    const origin = new URL(c.req.url).origin;
    return c.json({
      deploymentId: d.id,
      environment: d.environment,
      endpoint: `${origin.replace(/feature-toggle$/, 'inference-proxy')}/v1`,
      ofrepEndpoint: `${origin}/ofrep/v1`,
      apiKeyEnv: 'INFERENCE_EDGE_API_KEY',
      keys: (d as Deployment & { keys?: { kind: string; prefix: string; revokedAt: string | null }[] }).keys
        ?.filter((k) => !k.revokedAt).map((k) => ({ kind: k.kind, prefix: k.prefix })) ?? [],
      features: d.features,
    });
  });

const ofrepContext = z.looseObject({ targetingKey: z.optional(z.string()) });
const ofrepBody = z.optional(z.looseObject({ context: z.optional(ofrepContext) }));

function toFlagContext(ctx: Record<string, unknown> = {}): FlagContext {
  const properties: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx)) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') properties[k] = String(v);
  return { userId: (ctx.userId as string) ?? (ctx.targetingKey as string) ?? undefined, sessionId: ctx.sessionId as string | undefined, properties };
}

const ofrepValue = (name: string, r: FlagResult) => ({
  key: name,
  value: r.enabled,
  reason: r.reason === 'KILL_SWITCH' || r.reason === 'ENV_OVERRIDE' ? 'STATIC' : r.reason,
  variant: r.variant ?? (r.enabled ? 'on' : 'off'),
  metadata: r.payload ? { payload: r.payload.value, payloadType: r.payload.type } : {},
});

async function ofrepSetup(c: Context<AppEnv>) {
  // Browsers and servers alike: a publishable key needs no Origin here, since evaluating flags costs nothing.
  const { deployment } = await authenticate(c, { requireOrigin: false });
  const raw = c.req.header('content-type')?.includes('json') ? await c.req.json().catch(() => undefined) : undefined;
  const body = ofrepBody.safeParse(raw);
  if (!body.success) throw new ApiError(400, 'invalid_request', 'context: must be an object', 'context');
  const ctx = toFlagContext(body.data?.context as Record<string, unknown> | undefined);
  const opts = { killSwitch: await isKillSwitchOn(c), env: c.env as unknown as Record<string, unknown> };
  return { deployment, ctx, opts };
}

/** OpenFeature Remote Evaluation Protocol: any OFREP provider evaluates a deployment's flags here. */
export const ofrepRoutes = new Hono<AppEnv>()
  .post('/ofrep/v1/evaluate/flags/:key', async (c) => {
    const { deployment, ctx, opts } = await ofrepSetup(c);
    const key = c.req.param('key');
    if (!(key in deployment.features)) return c.json({ key, errorCode: 'FLAG_NOT_FOUND', errorDetails: `flag ${key} is not defined for this deployment` }, 404);
    const r = evaluateFlag(key, deployment.features[key], ctx, opts);
    countUsage(c, deployment.id, { [key]: r });
    return c.json(ofrepValue(key, r));
  })
  .post('/ofrep/v1/evaluate/flags', async (c) => {
    const { deployment, ctx, opts } = await ofrepSetup(c);
    const results = evaluateAll(deployment.features, ctx, opts);
    // The answer depends on the config version, the kill switch and the context: that is the ETag.
    const etag = `W/"${deployment.configVersion}-${opts.killSwitch ? 0 : 1}-${hashContext(ctx)}"`;
    c.header('ETag', etag);
    if (c.req.header('if-none-match') === etag) return c.body(null, 304);
    countUsage(c, deployment.id, results);
    return c.json({ flags: Object.entries(results).map(([k, r]) => ofrepValue(k, r)) });
  });

const hashContext = (ctx: FlagContext) => hashId(JSON.stringify([ctx.userId ?? '', ctx.sessionId ?? '', Object.entries(ctx.properties ?? {}).sort()]));

/**
 * Seed 003's API, scoped to the deployment of the secret key that calls it (reads), or named by
 * `?deployment_id=` with the admin key (changes).
 */
export const seed003Routes = new Hono<AppEnv>()
  .get('/api/v1/feature-flags', async (c) => {
    const { deployment } = await authenticate(c, { kinds: ['secret'] });
    return c.json({ deploymentId: deployment.id, flags: deployment.features });
  })
  .get('/api/v1/feature-flags/check/:flag', async (c) => {
    const { deployment } = await authenticate(c, { kinds: ['secret'] });
    const flag = c.req.param('flag');
    if (!(flag in deployment.features)) throw new ApiError(404, 'flag_not_found', `Flag ${flag} is not defined for this deployment.`, 'flag');
    const r = evaluateFlag(flag, deployment.features[flag], { userId: c.req.query('user_id') }, { killSwitch: await isKillSwitchOn(c), env: c.env as unknown as Record<string, unknown> });
    return c.json({ flag, enabled: r.enabled, variant: r.variant ?? null, reason: r.reason, user_id: c.req.query('user_id') ?? null });
  })
  .get('/api/v1/feature-flags/user/:userId', async (c) => {
    const { deployment } = await authenticate(c, { kinds: ['secret'] });
    const results = evaluateAll(deployment.features, { userId: c.req.param('userId') }, { killSwitch: await isKillSwitchOn(c), env: c.env as unknown as Record<string, unknown> });
    return c.json({ user_id: c.req.param('userId'), flags: Object.fromEntries(Object.entries(results).map(([k, r]) => [k, r.enabled])) });
  })
  .put('/api/v1/feature-flags/:flag', adminAuth(), async (c) => {
    const id = parseParam(uuid, c.req.query('deployment_id'), 'deployment_id');
    const flag = parseParam(flagName, c.req.param('flag'), 'flag');
    const value = await parseJson(c, flagValueSchema);
    const d = await changeFeatures(c, id, { [flag]: value }, 'feature.updated');
    return c.json({ flag, value: d.features[flag] });
  })
  .post('/api/v1/feature-flags/refresh', adminAuth(), async (c) => {
    // Flags are read through the config version on every request; a refresh republishes it.
    const config = loadConfig(c.env);
    const id = parseParam(uuid, c.req.query('deployment_id'), 'deployment_id');
    const d = await rpc<Deployment>(config, 'get_deployment', { p_id: id });
    await publishConfigVersion(config, id, d.configVersion);
    return c.json({ refreshed: true, configVersion: d.configVersion });
  });
