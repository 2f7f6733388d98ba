import type { Context, MiddlewareHandler } from 'hono';
import { bearerToken, type Environment, type KeyKind, parseApiKey, sha256Hex } from './api-keys';
import type { AppEnv } from './context';
import { rpc } from './db';
import type { Deployment } from './deployment';
import { originAllowed } from './deployment';
import { loadConfig, type Config } from './env';
import { ApiError } from './errors';
import { log } from './log';
import { runScript, SET_IF_GREATER } from './lua';
import { redisClient, redisKeys, type RedisKeys } from './redis';

/** What a request authenticated with a deployment key knows about its caller. */
export interface KeyAuth {
  keyId: string;
  kind: KeyKind;
  deployment: Deployment;
  /** Values of the extra Redis keys the route asked for, read in the same round trip as the config version. */
  reads: Map<string, string | null>;
  /** Redis could not be reached during auth: callers degrade explicitly. */
  redisDegraded: boolean;
}

interface ResolvedKey {
  key: { id: string; deploymentId: string; kind: KeyKind; environment: Environment; revokedAt: string | null };
  deployment: Deployment;
}

interface CachedKey {
  resolved: ResolvedKey | null; // null: unknown key (negative cache, short-lived)
  version: number;
  cachedAt: number;
}

/** In-isolate cache: the warm path answers from here after one Redis GET of the config version. */
const isolateCache = new Map<string, CachedKey>();
const ISOLATE_CACHE_MAX = 10_000;
/** Entries are re-read from Redis/Postgres at least this often even if the version is unchanged. */
const ISOLATE_TTL_MS = 5 * 60_000;
const REDIS_KEY_TTL_S = 10 * 60;
const NEGATIVE_TTL_MS = 10_000;

function remember(hash: string, entry: CachedKey) {
  if (isolateCache.size >= ISOLATE_CACHE_MAX) isolateCache.delete(isolateCache.keys().next().value!);
  isolateCache.set(hash, entry);
}

/**
 * Publishes a deployment's config version to Redis (never moving it back). Every isolate compares
 * its cached version with this one on each request, so a change is seen on the next request.
 */
export async function publishConfigVersion(config: Config, deploymentId: string, version: number | null): Promise<void> {
  const redis = redisClient(config);
  const key = redisKeys(config.REDIS_KEY_PREFIX).configVersion(deploymentId);
  if (version === null) await redis.del(key);
  else await runScript(redis, SET_IF_GREATER, [key], [version]);
}

/**
 * Key → deployment: in-isolate cache, then Redis, then Postgres. The warm path costs one Redis
 * round trip (the config version) and no Postgres. A revoked or rotated-out key bumps the version,
 * so it stops working on the next request in every isolate.
 */
export interface KeyResolution {
  resolved: ResolvedKey | null;
  reads: Map<string, string | null>;
  redisDegraded: boolean;
}

/** Extra Redis keys a route wants read alongside the config version (kill switches, breakers, ...). */
export type AlsoRead = (deployment: Deployment, keys: RedisKeys) => string[];

/**
 * The request's one Redis round trip: reads `readKeys` (and may do more in the same call, like the
 * limiter's reserve script). Called with the deployment the reads are for; the default is an MGET.
 */
export type RoundTrip = (deployment: Deployment, readKeys: string[]) => Promise<(string | null)[]>;

export interface AuthHooks {
  alsoRead?: AlsoRead;
  roundTrip?: RoundTrip;
}

export async function resolveKey(config: Config, rawKey: string, hooks: AuthHooks = {}, now = Date.now()): Promise<KeyResolution> {
  const alsoRead = hooks.alsoRead ?? (() => []);
  const hash = await sha256Hex(rawKey);
  const redis = redisClient(config);
  const keys = redisKeys(config.REDIS_KEY_PREFIX);
  const reads = new Map<string, string | null>();
  const roundTrip: RoundTrip = hooks.roundTrip ?? ((_, readKeys) => redis.mget<(string | null)[]>(...readKeys));

  const hit = isolateCache.get(hash);
  if (hit && hit.resolved === null && now - hit.cachedAt < NEGATIVE_TTL_MS) return { resolved: null, reads, redisDegraded: false };
  let currentVersion: number | null = null;
  let redisUp = true;
  if (hit?.resolved && now - hit.cachedAt < ISOLATE_TTL_MS) {
    const extra = alsoRead(hit.resolved.deployment, keys);
    try {
      // The warm path: one round trip for the version and everything else the route needs.
      const values = await roundTrip(hit.resolved.deployment, [keys.configVersion(hit.resolved.deployment.id), ...extra]);
      const v = values[0] ?? null;
      currentVersion = v === null ? null : Number(v);
      if (currentVersion === hit.version) {
        extra.forEach((k, i) => reads.set(k, values[i + 1] ?? null));
        return { resolved: hit.resolved, reads, redisDegraded: false };
      }
    } catch (err) {
      redisUp = false;
      log('warn', 'redis.unavailable', { during: 'key_auth', error: (err as Error).message });
      // Without Redis the version cannot be checked; a short-lived isolate entry keeps serving.
      if (now - hit.cachedAt < 30_000) return { resolved: hit.resolved, reads, redisDegraded: true };
    }
  }
  const withReads = async (resolved: ResolvedKey | null): Promise<KeyResolution> => {
    const extra = resolved ? alsoRead(resolved.deployment, keys) : [];
    if (resolved && redisUp && (extra.length || hooks.roundTrip)) {
      try {
        const values = await roundTrip(resolved.deployment, extra);
        extra.forEach((k, i) => reads.set(k, values[i] ?? null));
      } catch (err) {
        redisUp = false;
        log('warn', 'redis.unavailable', { during: 'key_auth_reads', error: (err as Error).message });
      }
    }
    return { resolved, reads, redisDegraded: !redisUp };
  };

  if (redisUp) {
    try {
      const cached = await redis.get<string>(keys.apiKey(hash));
      if (cached) {
        const entry = JSON.parse(cached) as { resolved: ResolvedKey; version: number };
        const v = currentVersion ?? Number(await redis.get<string>(keys.configVersion(entry.resolved.deployment.id)));
        if (v === entry.version) {
          remember(hash, { resolved: entry.resolved, version: v, cachedAt: now });
          return withReads(entry.resolved);
        }
      }
    } catch (err) {
      redisUp = false;
      log('warn', 'redis.unavailable', { during: 'key_auth', error: (err as Error).message });
    }
  }

  const resolved = await rpc<ResolvedKey | null>(config, 'resolve_api_key', { p_key_hash: hash });
  if (!resolved) {
    remember(hash, { resolved: null, version: 0, cachedAt: now });
    return withReads(null);
  }
  const version = resolved.deployment.configVersion;
  remember(hash, { resolved, version, cachedAt: now });
  if (redisUp) {
    try {
      await Promise.all([
        publishConfigVersion(config, resolved.deployment.id, version),
        redis.set(keys.apiKey(hash), JSON.stringify({ resolved, version }), { ex: REDIS_KEY_TTL_S }),
      ]);
    } catch (err) {
      log('warn', 'redis.unavailable', { during: 'key_cache_fill', error: (err as Error).message });
    }
  }
  return withReads(resolved);
}

export interface KeyAuthOptions extends AuthHooks {
  /** Which kinds of key this route accepts. */
  kinds?: readonly KeyKind[];
  /** false: a publishable key without an Origin is accepted (flag evaluation); a sent Origin must still be allowed. */
  requireOrigin?: boolean;
}

/**
 * Authenticates a deployment key (`Authorization: Bearer pk_…|sk_…`). A publishable key is accepted
 * only from one of the deployment's allowed origins; a key never acts outside its environment.
 */
export const deploymentKeyAuth = (options: KeyAuthOptions = {}): MiddlewareHandler<AppEnv> =>
  async function deploymentKeyAuth(c, next) {
    await authenticate(c, options);
    await next();
  };

/**
 * Authenticates a deployment key (`Authorization: Bearer pk_…|sk_…`). A publishable key is accepted
 * only from one of the deployment's allowed origins; a key never acts outside its environment.
 * Sets `auth` on the context and returns it.
 */
export async function authenticate(c: Context<AppEnv>, { kinds = ['publishable', 'secret'], requireOrigin = true, ...hooks }: KeyAuthOptions = {}): Promise<KeyAuth> {
  const raw = bearerToken(c.req.header('authorization'));
  if (!raw) throw new ApiError(401, 'missing_api_key', 'Send your deployment key as "Authorization: Bearer <key>".');
  const shape = parseApiKey(raw);
  if (!shape) throw new ApiError(401, 'invalid_api_key', 'The API key is malformed; keys look like sk_test_… or pk_live_….');
  const config = loadConfig(c.env);
  const { resolved, reads, redisDegraded } = await resolveKey(config, raw, hooks);
  if (!resolved) throw new ApiError(401, 'invalid_api_key', 'The API key is not valid.');
  const { key, deployment } = resolved;
  if (key.revokedAt) throw new ApiError(401, 'revoked_api_key', 'The API key has been revoked.');
  if (key.environment !== deployment.environment || shape.environment !== deployment.environment) {
    throw new ApiError(403, 'environment_mismatch', `A ${shape.environment} key cannot act on a ${deployment.environment} deployment.`);
  }
  if (!kinds.includes(key.kind)) {
    throw new ApiError(403, 'secret_key_required', 'This endpoint needs the deployment\'s secret key (sk_…).');
  }
  if (key.kind === 'publishable' && (requireOrigin || c.req.header('origin') !== undefined)) {
    const origin = c.req.header('origin');
    if (!origin || !originAllowed(origin, deployment.allowedOrigins)) {
      throw new ApiError(403, 'origin_not_allowed', origin
        ? `Origin ${origin} is not allowed for this deployment's publishable key.`
        : 'A publishable key is only accepted from a browser Origin listed in the deployment\'s allowedOrigins.');
    }
    c.header('Access-Control-Allow-Origin', origin!);
    c.header('Vary', 'Origin', { append: true });
  }
  const auth: KeyAuth = { keyId: key.id, kind: key.kind, deployment, reads, redisDegraded };
  c.set('auth', auth);
  return auth;
}
