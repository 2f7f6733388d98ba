/**
 * `npm run dev`: the whole stack on loopback, no accounts, no keys.
 *   PORT (default 8787)        functions at http://127.0.0.1:$PORT/functions/v1/<name>/...
 *   DATABASE_URL               use this Postgres instead of embedded PGlite (data in .local/pgdata)
 *   PGPORT_EMBEDDED            port of the embedded Postgres (default 54322)
 *   REDIS_URL                  use this Redis instead of a private redis-server
 *   ADMIN_API_KEY              the admin key (a local default otherwise)
 */
import { DEFAULT_ADMIN_KEY, startStack } from './stack';
import { FUNCTION_NAMES, ROOT } from './functions';

const started = Date.now();
const env = process.env;
const stack = await startStack({
  port: Number(env.PORT ?? 8787),
  databaseUrl: env.DATABASE_URL || undefined,
  dataDir: env.DATABASE_URL ? undefined : `${ROOT}/.local/pgdata`,
  pgPort: Number(env.PGPORT_EMBEDDED ?? 54322),
  redisUrl: env.REDIS_URL || undefined,
  adminKey: env.ADMIN_API_KEY || DEFAULT_ADMIN_KEY,
  crons: true,
  bindings: Object.fromEntries(
    Object.keys(env)
      .filter((k) => /^[A-Z0-9_]+_API_KEY$|^[A-Z0-9_]+_BASE_URL$|^DISABLE_PROVIDER_|^FEATURE_FLAG_|^(INFERENCE_ENABLED|MAX_REQUEST_BYTES|MOCK_LATENCY_MS|MOCK_CHUNK_DELAY_MS|COST_ALERT_THRESHOLD|USAGE_RETENTION_DAYS)$|^PROVIDER_|^BREAKER_/.test(k) && env[k])
      .map((k) => [k, env[k]!]),
  ),
}).catch((err: Error) => {
  console.error(`inference-edge: could not start the local stack: ${err.message}`);
  process.exit(1);
});

const ft = stack.functionUrl('feature-toggle');
const lines = [
  '',
  `Inference Edge local stack ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  '',
  'Functions:',
  ...FUNCTION_NAMES.map((n) => `  ${n.padEnd(24)} ${stack.functionUrl(n)}`),
  '',
  `Postgres (${stack.databaseMode === 'embedded' ? 'embedded PGlite, data in .local/pgdata' : 'DATABASE_URL'}):`,
  `  psql '${stack.databaseUrl}'`,
  `Redis:    ${stack.redisUrl}${env.REDIS_URL ? '' : ' (private redis-server, nothing kept on disk)'}`,
  `Fake providers (fault knobs: POST ${stack.fakeProviders.url}/_control):`,
  `  OpenAI format     ${stack.fakeProviders.baseUrl('openai')}`,
  `  Anthropic format  ${stack.fakeProviders.baseUrl('anthropic')}`,
  '',
  `Dashboard: ${ft}/dashboard  (sign in with the admin key)`,
  `Metrics:   ${ft}/metrics    (Authorization: Bearer <admin key>)`,
  `Admin key: ${stack.adminKey}${env.ADMIN_API_KEY ? ' (from ADMIN_API_KEY)' : ' (local default; set ADMIN_API_KEY to choose one)'}`,
  'Demo keys (sandbox, local only, from supabase/seed.sql):',
  '  Demo public chat widget  pk_test_demoPublicWidget0000000000000000  sk_test_demoPublicWidget0000000000000000',
  '  Demo internal assistant  pk_test_demoInternalAssist00000000000000  sk_test_demoInternalAssist00000000000000',
  '',
  'Try:',
  `  curl -s -X POST ${ft}/deployments -H 'authorization: Bearer ${stack.adminKey}' -H 'content-type: application/json' -d '{"name":"My app","type":"internal"}'`,
  `  curl -s ${ft}/client/config -H 'authorization: Bearer sk_test_demoInternalAssist00000000000000'`,
  '',
  'Crons from wrangler.toml are scheduled (UTC). Ctrl-C stops everything.',
];
console.log(lines.join('\n'));

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping the local stack...`);
  const force = setTimeout(() => process.exit(1), 10_000);
  await stack.stop();
  clearTimeout(force);
  process.exit(0);
};
// Miniflare installs handlers that exit at once on a signal, before embedded Postgres is closed and
// the private redis-server stopped; this runner shuts everything down in order instead.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.removeAllListeners(signal);
  process.on(signal, () => void shutdown(signal));
}
