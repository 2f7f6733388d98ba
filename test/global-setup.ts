import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { TestProject } from 'vitest/node';
import { startStack, type Stack } from '../local/stack';

export interface StackInfo {
  url: string;
  adminKey: string;
  /** METRICS_API_KEY of every function: the read-only token of GET /metrics. */
  metricsKey: string;
  databaseUrl: string;
  databaseMode: 'external' | 'embedded';
  redisUrl: string;
  keyPrefix: string;
  /** Passed to private stacks that tests start themselves (fault tests). */
  externalDatabaseUrl: string | null;
  /** The fake providers every registry provider points at (control: POST <url>/_control). */
  fakeProvidersUrl: string;
  /** The Upstash REST stand-in, for tests that drive shared modules with the real @upstash/redis client. */
  upstashUrl: string;
  upstashToken: string;
  /** The Supabase stand-in (GET <url>/_test/broadcasts lists Realtime broadcasts). */
  supabaseUrl: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

let stack: Stack | undefined;

/**
 * One stack per test run. With DATABASE_URL the run works in a database of its own (created here,
 * dropped at the end); with REDIS_URL under a key prefix of its own (deleted at the end). Without
 * them: embedded PGlite in memory and a private redis-server.
 */
export async function setup(project: TestProject) {
  const keyPrefix = `ie_test_${randomBytes(4).toString('hex')}`;
  const databaseUrl = process.env.DATABASE_URL || undefined;
  const metricsKey = `test-metrics-${randomBytes(12).toString('hex')}`;
  stack = await startStack({
    port: 0,
    databaseUrl,
    freshDatabase: Boolean(databaseUrl),
    redisUrl: process.env.REDIS_URL || undefined,
    keyPrefix,
    adminKey: `test-admin-${randomBytes(12).toString('hex')}`,
    quiet: !process.env.STACK_LOGS,
    providersToFakes: true,
    bindings: { METRICS_API_KEY: metricsKey },
  });
  console.log(`test stack: ${stack.url} postgres=${stack.databaseMode} redis=${process.env.REDIS_URL ? 'REDIS_URL' : 'private'} prefix=${keyPrefix}`);
  project.provide('stack', {
    url: stack.url,
    adminKey: stack.adminKey,
    metricsKey,
    databaseUrl: stack.databaseUrl,
    databaseMode: stack.databaseMode,
    redisUrl: stack.redisUrl,
    keyPrefix,
    externalDatabaseUrl: databaseUrl ?? null,
    fakeProvidersUrl: stack.fakeProviders.url,
    upstashUrl: stack.upstash.url,
    upstashToken: stack.upstash.token,
    supabaseUrl: stack.supabase.url,
  });
}

export async function teardown() {
  if (!stack) return;
  if (process.env.REDIS_URL) {
    // The shared Redis keeps nothing of this run.
    const redis = new Redis(stack.redisUrl);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${stack.keyPrefix}*`, 'COUNT', 500); // the run's prefix and the ones derived from it
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }
  await stack.stop();
}
