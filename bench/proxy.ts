/**
 * `npm run bench`: latency and throughput of the proxy on loopback, every guard on (key auth, kill
 * switch, limiter reserve and settle, breakers, routing, token guards, usage buffer), against the
 * built-in mock provider (no provider latency), next to `GET /health` through the same Miniflare
 * router (the floor: what a bare Worker costs here). Writes bench/results/latest.json.
 *   BENCH_REQUESTS (default 2000 per run), DATABASE_URL / REDIS_URL as for npm run dev.
 */
import { writeFileSync } from 'node:fs';
import { Agent, setGlobalDispatcher } from 'undici';
import { ROOT } from '../local/functions';
import { startStack } from '../local/stack';

setGlobalDispatcher(new Agent({ keepAliveTimeout: 10_000, connections: 64 }));

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);

interface Run {
  name: string;
  concurrency: number;
  requests: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
}

async function measure(name: string, concurrency: number, call: () => Promise<Response>): Promise<Run> {
  for (let i = 0; i < 50; i++) await (await call()).arrayBuffer(); // warm up isolates and caches
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < REQUESTS) {
      const t = performance.now();
      const res = await call();
      await res.arrayBuffer();
      latencies.push(performance.now() - t);
      if (res.status !== 200) errors++;
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]! * 1000) / 1000;
  return { name, concurrency, requests: latencies.length, rps: Math.round(latencies.length / seconds), p50: q(0.5), p90: q(0.9), p99: q(0.99), errors };
}

const stack = await startStack({ port: 0, databaseUrl: process.env.DATABASE_URL || undefined, freshDatabase: Boolean(process.env.DATABASE_URL), redisUrl: process.env.REDIS_URL || undefined, keyPrefix: `bench_${Date.now()}`, quiet: true });
try {
  const created = await fetch(`${stack.functionUrl('feature-toggle')}/deployments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench', type: 'internal', rateLimits: { requestsPerMinute: 10_000_000, requestsPerHour: 10_000_000, requestsPerDay: 10_000_000, tokensPerDay: 1_000_000_000 }, features: { piiRedaction: true } }),
  }).then((r) => r.json() as Promise<{ keys: { secret: string } }>);
  const key = created.keys.secret;
  const body = JSON.stringify({ model: 'flash', messages: [{ role: 'user', content: 'Say hello to jane@example.com in one sentence.' }], max_tokens: 16 });
  const chat = () => fetch(`${stack.functionUrl('inference-proxy')}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
  const health = () => fetch(`${stack.functionUrl('inference-proxy')}/health`);
  const runs: Run[] = [];
  for (const c of [1, 32]) {
    runs.push(await measure('health (floor: router + Worker)', c, health));
    runs.push(await measure('chat completion, all guards, mock provider', c, chat));
  }
  const result = { date: new Date().toISOString(), node: process.version, postgres: stack.databaseMode, redis: process.env.REDIS_URL ? 'REDIS_URL' : 'private', requestsPerRun: REQUESTS, runs };
  writeFileSync(`${ROOT}/bench/results/latest.json`, `${JSON.stringify(result, null, 2)}\n`);
  console.table(runs);
  console.log(`written to bench/results/latest.json`);
} finally {
  await stack.stop();
}
