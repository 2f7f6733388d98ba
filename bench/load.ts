/**
 * The benchmark's load generator, run as a child process of bench/proxy.ts so that sending and
 * timing requests never competes with the local stack's own Node event loop (stand-ins, fake
 * providers). Reads one job as JSON from argv[2], prints one result as JSON.
 */
import { Agent, request } from 'undici';

interface Job {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  concurrency: number;
  requests: number;
  warmup: number;
  /** A response header whose numeric value is collected (say, the proxy's own overhead). */
  header?: string;
}

const job = JSON.parse(process.argv[2]!) as Job;
const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: job.concurrency });
const once = async () => {
  const t = performance.now();
  const res = await request(job.url, { method: job.method, headers: job.headers, body: job.body, dispatcher });
  await res.body.arrayBuffer();
  const ms = performance.now() - t;
  const h = job.header ? Number(res.headers[job.header]) : NaN;
  return { ms, ok: res.statusCode === 200, header: h };
};

for (let i = 0; i < job.warmup; i++) await once();
const latencies: number[] = [];
const headerValues: number[] = [];
let errors = 0;
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: job.concurrency }, async () => {
    while (next++ < job.requests) {
      const r = await once();
      latencies.push(r.ms);
      if (!r.ok) errors++;
      if (Number.isFinite(r.header)) headerValues.push(r.header);
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
const q = (xs: number[], p: number) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(s.length * p))]! * 1000) / 1000;
};
process.stdout.write(
  JSON.stringify({
    requests: latencies.length,
    rps: Math.round(latencies.length / seconds),
    p50: q(latencies, 0.5),
    p90: q(latencies, 0.9),
    p99: q(latencies, 0.99),
    errors,
    ...(job.header ? { headerP50: q(headerValues, 0.5) } : {}),
  }),
);
await dispatcher.close();
