/**
 * `npm run bench`: what the proxy's guards cost, on loopback, side by side in one run.
 *
 *   bare pass-through   a one-line Worker under Miniflare that forwards the request to the fake
 *                       OpenAI-format provider (ARCHITECTURE.md's reference point)
 *   guarded proxy       inference-proxy with every guard on (key auth, kill switch, flags, limiter
 *                       reserve and settle, breakers, routing, token guards, PII redaction, usage
 *                       buffer, metrics), through the local stack's router, to the same fake provider
 *   guarded, mock       the same with the built-in mock provider (no provider hop at all)
 *   health              GET /health through the router: the floor of the local topology
 *   portkey             the Portkey open-source gateway (@portkey-ai/gateway, pinned) as a bare
 *                       pass-through to the same fake provider: ARCHITECTURE.md's other reference.
 *                       Installed into .local/portkey on first use (not a project dependency);
 *                       BENCH_PORTKEY=0 leaves it out
 *
 * The load comes from a separate process (bench/load.ts), so timing never competes with the
 * stack's own event loop. Writes bench/results/latest.json. Benchmarks are not tests: nothing here
 * passes or fails on a number.
 *   BENCH_REQUESTS (default 2000 per run), DATABASE_URL / REDIS_URL as for npm run dev.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Miniflare } from 'miniflare';
import { ROOT } from '../local/functions';
import { freePort } from '../local/net';
import { startStack } from '../local/stack';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const run = promisify(execFile);

interface Result {
  requests: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
  headerP50?: number | null;
}

async function load(job: { url: string; method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; concurrency: number; header?: string }): Promise<Result> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', `${ROOT}/bench/load.ts`, JSON.stringify({ headers: {}, warmup: 200, requests: REQUESTS, ...job })], { cwd: ROOT, maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as Result;
}

const PORTKEY_VERSION = '1.15.2';

/** The Portkey gateway on a free port, installed on first use; null (with the reason) when it cannot be. */
async function startPortkey(): Promise<{ url: string; process: ChildProcess } | null> {
  if (process.env.BENCH_PORTKEY === '0') return null;
  const dir = `${ROOT}/.local/portkey`;
  const entry = `${dir}/node_modules/@portkey-ai/gateway/build/start-server.js`;
  try {
    if (!existsSync(entry)) {
      console.log(`installing @portkey-ai/gateway@${PORTKEY_VERSION} into .local/portkey (once) ...`);
      await run('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', dir, `@portkey-ai/gateway@${PORTKEY_VERSION}`], { cwd: ROOT });
    }
    const port = await freePort();
    const child = spawn(process.execPath, [entry, `--port=${port}`, '--headless'], { stdio: 'ignore', env: { ...process.env, NODE_ENV: 'production' } });
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      if (await fetch(url).then((r) => r.ok, () => false)) return { url, process: child };
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill();
    throw new Error('it did not answer within 10 s');
  } catch (err) {
    console.log(`Portkey left out: ${(err as Error).message}`);
    return null;
  }
}

const stack = await startStack({
  port: 0,
  databaseUrl: process.env.DATABASE_URL || undefined,
  freshDatabase: Boolean(process.env.DATABASE_URL),
  redisUrl: process.env.REDIS_URL || undefined,
  keyPrefix: `bench_${Date.now()}`,
  quiet: true,
  providersToFakes: true,
});
// The reference: a bare pass-through Worker in a Miniflare of its own, to the same fake provider.
const bare = new Miniflare({
  modules: true,
  compatibilityDate: '2026-04-01',
  bindings: { UPSTREAM: stack.fakeProviders.baseUrl('openai') },
  script: `export default { fetch(req, env) { const u = new URL(req.url); return fetch(env.UPSTREAM + u.pathname.replace(/^\\/v1/, ''), req); } };`,
  port: 0,
  host: '127.0.0.1',
});
const portkey = await startPortkey();
try {
  const bareUrl = (await bare.ready).toString().replace(/\/$/, '');
  const admin = { authorization: `Bearer ${stack.adminKey}`, 'content-type': 'application/json' };
  const limits = { requestsPerMinute: 10_000_000, requestsPerHour: 10_000_000, requestsPerDay: 10_000_000, tokensPerDay: 1_000_000_000 };
  const target = (provider: string, model: string) => ({ provider, model, priceInputPerMTok: 0.1, priceOutputPerMTok: 0.4 });
  const created = await fetch(`${stack.functionUrl('feature-toggle')}/deployments`, {
    method: 'POST',
    headers: admin,
    body: JSON.stringify({
      name: 'bench',
      type: 'internal',
      rateLimits: limits,
      features: { piiRedaction: true, smartRouting: false },
      routing: { tiers: { fake: { targets: [target('openai', 'bench-model')] }, mock: { targets: [target('mock', 'mock-flash')] } }, defaultTier: 'fake' },
    }),
  }).then((r) => r.json() as Promise<{ keys: { secret: string } }>);
  const key = created.keys.secret;
  const chatBody = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'Say hello to jane@example.com in one sentence.' }], max_tokens: 16 });
  const proxy = `${stack.functionUrl('inference-proxy')}/v1/chat/completions`;
  const json = { 'content-type': 'application/json' };

  const cases = [
    { name: 'health (router + Worker, no I/O)', job: { url: `${stack.functionUrl('inference-proxy')}/health`, method: 'GET' as const } },
    { name: 'bare pass-through Worker → fake provider', job: { url: `${bareUrl}/v1/chat/completions`, method: 'POST' as const, headers: { ...json, authorization: 'Bearer fake-openai-key' }, body: chatBody('bench-model') } },
    ...(portkey
      ? [{ name: 'Portkey gateway pass-through → fake provider', job: { url: `${portkey.url}/v1/chat/completions`, method: 'POST' as const, headers: { ...json, authorization: 'Bearer fake-openai-key', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': stack.fakeProviders.baseUrl('openai') }, body: chatBody('bench-model') } }]
      : []),
    { name: 'guarded proxy → fake provider', job: { url: proxy, method: 'POST' as const, headers: { ...json, authorization: `Bearer ${key}` }, body: chatBody('fake'), header: 'x-inference-edge-overhead-ms' } },
    { name: 'guarded proxy → built-in mock', job: { url: proxy, method: 'POST' as const, headers: { ...json, authorization: `Bearer ${key}` }, body: chatBody('mock'), header: 'x-inference-edge-overhead-ms' } },
  ];
  const runs: ({ name: string; concurrency: number } & Result)[] = [];
  for (const concurrency of [1, 32]) {
    for (const c of cases) {
      const r = await load({ ...c.job, concurrency });
      runs.push({ name: c.name, concurrency, ...r });
      console.log(`${c.name.padEnd(42)} c=${String(concurrency).padEnd(3)} p50 ${r.p50} ms  p99 ${r.p99} ms  ${r.rps} req/s${r.errors ? `  ${r.errors} errors` : ''}${r.headerP50 != null ? `  (in-Worker overhead p50 ${r.headerP50} ms)` : ''}`);
    }
  }
  const p50 = (name: string, c: number) => runs.find((r) => r.name === name && r.concurrency === c)!;
  const bareRun = p50('bare pass-through Worker → fake provider', 1);
  const guardedRun = p50('guarded proxy → fake provider', 1);
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
  const portkeyRun = (c: number) => runs.find((r) => r.name.startsWith('Portkey') && r.concurrency === c);
  const summary = {
    guardedOverBareP50Ms: Math.round((guardedRun.p50 - bareRun.p50) * 1000) / 1000,
    guardedVsBareP50Ratio: ratio(guardedRun.p50, bareRun.p50),
    guardedVsBareRpsAtC32: ratio(p50('guarded proxy → fake provider', 32).rps, p50('bare pass-through Worker → fake provider', 32).rps),
    ...(portkeyRun(1) ? { guardedVsPortkeyP50Ratio: ratio(guardedRun.p50, portkeyRun(1)!.p50), guardedVsPortkeyRpsAtC32: ratio(p50('guarded proxy → fake provider', 32).rps, portkeyRun(32)!.rps) } : {}),
  };
  const result = { date: new Date().toISOString(), node: process.version, portkey: portkey ? PORTKEY_VERSION : null, postgres: stack.databaseMode, redis: process.env.REDIS_URL ? 'REDIS_URL' : 'private', requestsPerRun: REQUESTS, summary, runs };
  writeFileSync(`${ROOT}/bench/results/latest.json`, `${JSON.stringify(result, null, 2)}\n`);
  console.log(summary);
  console.log('written to bench/results/latest.json');
} finally {
  portkey?.process.kill();
  await bare.dispose();
  await stack.stop();
}
