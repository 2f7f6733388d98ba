import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Cron } from 'croner';
import { Miniflare } from 'miniflare';
import { buildFunctions } from './build';
import { PROVIDERS } from '../shared/providers/registry';
import { startFakeProviders, type FakeProviders } from './fake-providers';
import { FUNCTION_NAMES, ROOT, readWorkerSettings, type FunctionName } from './functions';
import { startPostgres, type LocalPostgres } from './postgres';
import { startRedis, type LocalRedis } from './redis-server';
import { startSupabaseStandIn, type SupabaseStandIn } from './supabase-standin';
import { startUpstashStandIn, type UpstashStandIn } from './upstash-standin';

export const DEFAULT_ADMIN_KEY = 'local-admin-key-0000000000000000';

export interface StackOptions {
  /** Port of the functions (0: a free one). */
  port?: number;
  /** Use this Postgres instead of embedded PGlite. */
  databaseUrl?: string;
  /** With databaseUrl: work in a new database created for this stack, dropped on stop (tests). */
  freshDatabase?: boolean;
  /** Embedded PGlite's directory; in memory when undefined. */
  dataDir?: string;
  /** Port to serve embedded PGlite on (0: a free one). */
  pgPort?: number;
  /** Use this Redis instead of a private redis-server. */
  redisUrl?: string;
  adminKey?: string;
  /** Prefix of every Redis key (tests use one per run). */
  keyPrefix?: string;
  /** Fire the crons of wrangler.toml on their schedule. */
  crons?: boolean;
  /** Swallow the Workers' console output. */
  quiet?: boolean;
  /** Extra bindings for every function (provider keys, knobs). */
  bindings?: Record<string, string>;
  /** Point every provider of the registry at the fake providers (with fake keys): tests and offline demos. */
  providersToFakes?: boolean;
}

export interface Stack {
  /** e.g. http://127.0.0.1:8787 */
  url: string;
  functionUrl(name: FunctionName): string;
  adminKey: string;
  keyPrefix: string;
  databaseUrl: string;
  databaseMode: 'external' | 'embedded';
  redisUrl: string;
  supabase: SupabaseStandIn;
  upstash: UpstashStandIn;
  /** OpenAI- and Anthropic-format providers on loopback with fault knobs. */
  fakeProviders: FakeProviders;
  postgres: LocalPostgres;
  redis: LocalRedis;
  miniflare: Miniflare;
  triggerCron(name: FunctionName, cron?: string): Promise<void>;
  stop(): Promise<void>;
}

const secret = () => randomBytes(24).toString('base64url');

/** `<NAME>_BASE_URL` and `<NAME>_API_KEY` of every registry provider, aimed at the fakes. */
export function fakeProviderBindings(fakesUrl: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of Object.values(PROVIDERS)) {
    if (spec.format === 'mock') continue;
    const n = spec.name.toUpperCase().replace(/-/g, '_');
    out[`${n}_BASE_URL`] = `${fakesUrl}/${spec.name}/${spec.format === 'gemini' ? 'v1beta' : 'v1'}`;
    if (spec.keyEnv) out[spec.keyEnv] = `fake-${spec.name}-key`;
  }
  return out;
}

/**
 * The whole local stack on loopback: Postgres (given or embedded), Redis (given or private), the
 * Supabase and Upstash stand-ins, and all five functions under Miniflare behind one port.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
    cleanups.length = 0;
  };
  try {
    const [bundles, postgres, redis] = await Promise.all([
      buildFunctions(),
      startPostgres({ databaseUrl: options.databaseUrl, freshDatabase: options.freshDatabase, dataDir: options.dataDir, port: options.pgPort }),
      startRedis(options.redisUrl),
    ]);
    cleanups.push(() => postgres.stop(), () => redis.stop());

    const serviceKey = secret();
    const upstashToken = secret();
    const [supabase, upstash, fakeProviders] = await Promise.all([
      startSupabaseStandIn(postgres.url, serviceKey, postgres.mode === 'embedded' ? 4 : 8),
      startUpstashStandIn(redis.url, upstashToken),
      startFakeProviders(),
    ]);
    cleanups.push(() => supabase.stop(), () => upstash.stop(), () => fakeProviders.stop());

    const adminKey = options.adminKey ?? DEFAULT_ADMIN_KEY;
    const keyPrefix = options.keyPrefix ?? 'ie';
    const webhookSecret = secret();
    const settings = readWorkerSettings();
    const quiet = options.quiet ?? false;

    const miniflare = new Miniflare({
      host: '127.0.0.1',
      port: options.port ?? 0,
      ...(quiet ? { handleRuntimeStdio: (out: NodeJS.ReadableStream, err: NodeJS.ReadableStream) => { out.resume(); err.resume(); } } : {}),
      workers: [
        {
          name: 'router',
          modules: [{ type: 'ESModule', path: `${ROOT}/local/router.js`, contents: readFileSync(`${ROOT}/local/router.js`, 'utf8') }],
          compatibilityDate: settings[0]!.compatibilityDate,
          bindings: { FUNCTIONS: [...FUNCTION_NAMES] },
          serviceBindings: Object.fromEntries(FUNCTION_NAMES.map((n) => [n, n])),
        },
        ...settings.map((s) => ({
          name: s.name,
          modules: [{ type: 'ESModule' as const, path: bundles[s.name] }],
          compatibilityDate: s.compatibilityDate,
          compatibilityFlags: s.compatibilityFlags,
          bindings: {
            ...s.vars,
            SUPABASE_URL: supabase.url,
            SUPABASE_SERVICE_ROLE_KEY: serviceKey,
            UPSTASH_REDIS_REST_URL: upstash.url,
            UPSTASH_REDIS_REST_TOKEN: upstashToken,
            ADMIN_API_KEY: adminKey,
            DATABASE_WEBHOOK_SECRET: webhookSecret,
            REDIS_KEY_PREFIX: keyPrefix,
            ...(options.providersToFakes ? fakeProviderBindings(fakeProviders.url) : {}),
            ...options.bindings,
          },
        })),
      ],
    });
    cleanups.push(() => miniflare.dispose());
    const url = (await miniflare.ready).origin;
    const functionUrl = (name: FunctionName) => `${url}/functions/v1/${name}`;

    // Direct edits of `deployments` reach feature-toggle as a Supabase database webhook would deliver them.
    await postgres.watchDeployments((change) => {
      const body = change.op === 'DELETE'
        ? { type: 'DELETE', table: 'deployments', schema: 'public', record: null, old_record: { id: change.id } }
        : { type: change.op, table: 'deployments', schema: 'public', record: { id: change.id, config_version: change.configVersion }, old_record: null };
      fetch(`${functionUrl('feature-toggle')}/webhooks/database`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-webhook-secret': webhookSecret },
        body: JSON.stringify(body),
      }).then((r) => r.body?.cancel()).catch(() => {});
    });

    const triggerCron = async (name: FunctionName, cron?: string) => {
      const s = settings.find((x) => x.name === name)!;
      const worker = await miniflare.getWorker(name);
      await worker.scheduled({ cron: cron ?? s.crons[0] ?? '* * * * *', scheduledTime: new Date() });
    };
    if (options.crons) {
      // Miniflare does not fire crons on its own; this schedules what wrangler.toml declares.
      for (const s of settings) {
        for (const expr of s.crons) {
          const job = new Cron(expr, { timezone: 'UTC', protect: true }, () => triggerCron(s.name, expr).catch((err) => {
            console.error(JSON.stringify({ level: 'error', event: 'cron.failed', fn: s.name, cron: expr, error: (err as Error).message }));
          }));
          cleanups.push(async () => job.stop());
        }
      }
    }

    return {
      url,
      functionUrl,
      adminKey,
      keyPrefix,
      databaseUrl: postgres.url,
      databaseMode: postgres.mode,
      redisUrl: redis.url,
      supabase,
      upstash,
      fakeProviders,
      postgres,
      redis,
      miniflare,
      triggerCron,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
