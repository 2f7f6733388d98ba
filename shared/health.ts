import { Hono } from 'hono';
import type { AppEnv } from './context';
import { rpc } from './db';
import { ConfigError, loadConfig, type Bindings } from './env';
import { Breakers } from './breaker';
import { providerAvailability } from './providers/registry';
import { redisClient, redisKeys } from './redis';
import { VERSION } from './version';

const CHECK_TIMEOUT_MS = 2_000;

export interface DependencyStatus {
  status: 'ok' | 'down' | 'misconfigured';
  latencyMs: number;
  error?: string;
}

async function timed(check: () => Promise<unknown>): Promise<DependencyStatus> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: 'ok', latencyMs: Math.round(performance.now() - started) };
  } catch (err) {
    return { status: 'down', latencyMs: Math.round(performance.now() - started), error: (err as Error).message };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Postgres (through the Supabase RPC endpoint) and Redis (through the Upstash REST endpoint), checked in parallel. */
export async function checkDependencies(env: Bindings): Promise<Record<string, DependencyStatus>> {
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    const error = err instanceof ConfigError ? err.message : String(err);
    return { postgres: { status: 'misconfigured', latencyMs: 0, error }, redis: { status: 'misconfigured', latencyMs: 0, error } };
  }
  const [postgres, redis] = await Promise.all([
    timed(() => rpc(config, 'health_check')),
    timed(() => redisClient(config).ping()),
  ]);
  return { postgres, redis };
}

/** GET /health (liveness), /health/ready (503 naming what is down), /health/dependencies. */
export function healthRoutes(functionName: string) {
  const app = new Hono<AppEnv>();
  app.get('/health', (c) => c.json({ status: 'ok', function: functionName, version: VERSION }));
  app.get('/health/ready', async (c) => {
    const deps = await checkDependencies(c.env);
    const down = Object.entries(deps).filter(([, d]) => d.status !== 'ok').map(([name]) => name);
    if (down.length === 0) return c.json({ status: 'ready', function: functionName });
    return c.json(
      {
        status: 'not_ready',
        function: functionName,
        down,
        error: { message: `not ready: ${down.join(', ')} ${down.length > 1 ? 'are' : 'is'} unreachable`, type: 'service_unavailable', code: 'dependency_unavailable', param: null },
      },
      503,
    );
  });
  app.get('/health/dependencies', async (c) => {
    const deps = await checkDependencies(c.env);
    const ok = Object.values(deps).every((d) => d.status === 'ok');
    // Provider circuit breakers (shared in Redis): which providers are open, half-open or closed.
    let breakers: Awaited<ReturnType<Breakers['list']>> | null = null;
    if (deps.redis?.status === 'ok') {
      const config = loadConfig(c.env);
      breakers = await new Breakers(redisClient(config), redisKeys(config.REDIS_KEY_PREFIX)).list().catch(() => null);
    }
    const openBreakers = breakers?.filter((b) => b.state !== 'closed').length ?? 0;
    // The proxy's providers, from configuration (never probed: a probe would cost money and latency).
    const providers = functionName === 'inference-proxy' ? providerAvailability(c.env as unknown as Record<string, unknown>) : undefined;
    return c.json({ status: ok ? 'ok' : 'degraded', function: functionName, version: VERSION, dependencies: deps, openBreakers, breakers, providers });
  });
  return app;
}
