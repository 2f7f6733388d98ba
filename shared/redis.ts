import { Redis } from '@upstash/redis/cloudflare';
import type { Config } from './env';

const clients = new Map<string, Redis>();

/**
 * One Upstash client per isolate. Auto-pipelining folds the commands issued in one tick into a
 * single HTTP round trip, which is how the hot path keeps to one Redis round trip.
 */
export function redisClient(config: Config): Redis {
  const id = `${config.UPSTASH_REDIS_REST_URL}|${config.UPSTASH_REDIS_REST_TOKEN}`;
  let client = clients.get(id);
  if (!client) {
    client = new Redis({
      url: config.UPSTASH_REDIS_REST_URL,
      token: config.UPSTASH_REDIS_REST_TOKEN,
      enableAutoPipelining: true,
      enableTelemetry: false,
      automaticDeserialization: false,
      // Fail fast: callers decide how to degrade; a retry storm against a dead Redis helps no one.
      retry: { retries: 1, backoff: () => 25 },
    });
    clients.set(id, client);
  }
  return client;
}

/** Every Redis key the project uses is built here, under one prefix. */
export function redisKeys(prefix: string) {
  return {
    /** The deployment's config version; any change to config or keys moves it. */
    configVersion: (deploymentId: string) => `${prefix}:cfg:${deploymentId}:v`,
    /** key hash → resolved key and deployment, tagged with the config version it was read at. */
    apiKey: (keyHash: string) => `${prefix}:key:${keyHash}`,
    /** "off" while the global kill switch (inference.enabled = false) is thrown. */
    globalKillSwitch: () => `${prefix}:kill:global`,
    /** A circuit breaker's state (`open:<until>`, absent while closed); `:f`, `:c`, `:p` beside it. */
    breaker: (id: string) => `${prefix}:br:${id}`,
    /** Every breaker that ever opened, for /health/dependencies. */
    breakerIndex: () => `${prefix}:br-index`,
    /** A limiter window counter of a deployment (`<scope>:<measure>:<window id>`). */
    limitCounter: (deploymentId: string, suffix: string) => `${prefix}:rl:${deploymentId}:${suffix}`,
    /** Set once when a budget warning fired for a window and threshold. */
    budgetWarning: (deploymentId: string, suffix: string) => `${prefix}:warn:${deploymentId}:${suffix}`,
    /** The usage buffer: a stream of events waiting to be drained into Postgres. */
    usageStream: () => `${prefix}:usage`,
    /** A deployment's call counters for one 5-minute bucket (requests, errors, r429, latency_ms). */
    metrics: (deploymentId: string, bucket: number) => `${prefix}:mt:${deploymentId}:${bucket}`,
    /** Deployments that had calls in a 5-minute bucket. */
    activeDeployments: (bucket: number) => `${prefix}:mt-active:${bucket}`,
    /** feature_flag_usage_total: a hash of "<flag>|<variant>|<enabled>" → count, per deployment. */
    flagUsage: (deploymentId: string) => `${prefix}:flag-usage:${deploymentId}`,
    /** Prometheus totals of one deployment: a hash of "<kind>|<labels>" → count (shared/metrics.ts). */
    totals: (deploymentId: string) => `${prefix}:tot:${deploymentId}`,
    /** Deployments that have totals or flag usage, for GET /metrics. */
    metricsIndex: () => `${prefix}:tot-index`,
    /** Failed admin/metrics key checks of one client address (hashed) in one minute. */
    adminFailures: (addressHash: string, minute: number) => `${prefix}:admin-fail:${addressHash}:${minute}`,
    /** A daily counter of one deployment, e.g. empty completions. */
    dailyCounter: (name: string, deploymentId: string, day: string) => `${prefix}:count:${name}:${deploymentId}:${day}`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
