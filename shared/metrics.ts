import type { Redis } from '@upstash/redis/cloudflare';
import { Breakers, type BreakerState } from './breaker';
import type { CounterBatch } from './counters';
import type { Bindings } from './env';
import { globalSwitchOff } from './kill-switch';
import type { RedisKeys } from './redis';

/**
 * Prometheus metrics, cluster-wide. Every isolate adds to a few Redis hashes in the batch it
 * already sends after each answer (no round trip or command of its own); `GET /metrics` on feature-toggle
 * reads them back in one pipeline and renders the text exposition format (version 0.0.4).
 * Counters only ever grow, so Prometheus' rate() and increase() work across isolates and restarts.
 */

/** Upper bounds (seconds) of the latency histogram buckets; +Inf is implied. */
export const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

/** What one proxied call adds to the totals. */
export interface CallTotals {
  status: number;
  provider: string | null;
  model: string | null;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  latencyMs: number;
  fallbacks: number;
  stalled: boolean;
  empty: boolean;
}

/** Hash fields join labels with "|"; a label value never contains one. */
const part = (v: string | null) => (v ?? 'none').replaceAll('|', '_');

/** The histogram bucket a latency falls in: the index of the first bound it does not exceed. */
export const latencyBucket = (ms: number) => {
  const i = LATENCY_BUCKETS.findIndex((le) => ms <= le * 1000);
  return i < 0 ? '+Inf' : String(LATENCY_BUCKETS[i]);
};

/** Adds one call to its deployment's totals (same batch as the rest of the post-response work). */
export function countTotals(p: CounterBatch, keys: RedisKeys, deploymentId: string, t: CallTotals): void {
  const key = keys.totals(deploymentId);
  const pm = `${part(t.provider)}|${part(t.model)}`;
  p.hincrby(key, `req|${pm}|${t.status}`, 1);
  if (t.tokensIn) p.hincrby(key, `tin|${pm}`, t.tokensIn);
  if (t.tokensOut) p.hincrby(key, `tout|${pm}`, t.tokensOut);
  // Cost in micro-USD: HINCRBY is exact on integers, where HINCRBYFLOAT would drift.
  const micro = Math.round(t.costUsd * 1_000_000);
  if (micro) p.hincrby(key, `cost|${pm}`, micro);
  p.hincrby(key, `lat|${latencyBucket(t.latencyMs)}`, 1);
  p.hincrby(key, 'lat_sum_ms', Math.round(t.latencyMs));
  if (t.fallbacks) p.hincrby(key, 'fallbacks', t.fallbacks);
  if (t.stalled) p.hincrby(key, 'stalled', 1);
  if (t.empty) p.hincrby(key, 'empty', 1);
  p.sadd(keys.metricsIndex(), deploymentId);
}

/** A label value escaped as the exposition format asks (backslash, double quote, newline). */
const esc = (v: string) => v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
const labels = (l: Record<string, string>) => `{${Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}`;

class Exposition {
  private readonly families = new Map<string, { help: string; type: string; lines: string[] }>();

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string) {
    if (!this.families.has(name)) this.families.set(name, { help, type, lines: [] });
    return this;
  }

  /** A sample of family `name` (a histogram's `_bucket`/`_sum`/`_count` lines name their family). */
  sample(name: string, l: Record<string, string>, value: number, family = name) {
    this.families.get(family)!.lines.push(`${name}${labels(l)} ${Number.isFinite(value) ? value : 0}`);
  }

  toString() {
    const out: string[] = [];
    for (const [name, f] of this.families) out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`, ...f.lines);
    return `${out.join('\n')}\n`;
  }
}

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

/** Reads every counter (one pipelined round trip, plus one for the breakers) and renders them. */
export async function renderMetrics(env: Bindings, redis: Redis, keys: RedisKeys, now: () => number = Date.now): Promise<string> {
  const ids = ((await redis.smembers(keys.metricsIndex())) as string[]).sort();
  const p = redis.pipeline();
  for (const id of ids) p.hgetall(keys.totals(id));
  for (const id of ids) p.hgetall(keys.flagUsage(id));
  p.xlen(keys.usageStream());
  p.get(keys.globalKillSwitch());
  const replies = (await p.exec()) as unknown[];
  const totals = ids.map((_, i) => hash(replies[i]));
  const flags = ids.map((_, i) => hash(replies[ids.length + i]));
  const backlog = Number(replies[ids.length * 2] ?? 0);
  const killSwitch = replies[ids.length * 2 + 1] as string | null;
  const breakers = await new Breakers(redis, keys, now).list();

  const x = new Exposition()
    .family('inference_edge_requests_total', 'counter', 'Proxied chat completions by deployment, provider, model and HTTP status.')
    .family('inference_edge_tokens_total', 'counter', 'Tokens by deployment, provider, model and direction (input, output).')
    .family('inference_edge_cost_usd_total', 'counter', 'Estimated provider cost in USD, from the deployment price table.')
    .family('inference_edge_request_duration_seconds', 'histogram', 'Time from request to the end of the answer, as the client saw it.')
    .family('inference_edge_fallbacks_total', 'counter', 'Calls that went to another target than the first.')
    .family('inference_edge_stalled_streams_total', 'counter', 'Streams that stalled or were cut after the first byte (ended with an error event).')
    .family('inference_edge_empty_completions_total', 'counter', 'Answers with no content and no tool call.')
    .family('feature_flag_usage_total', 'counter', 'Flag evaluations by deployment, flag, variant and result (proxy and OFREP).')
    .family('inference_edge_circuit_breaker_state', 'gauge', 'Provider circuit breakers: 0 closed, 1 half-open, 2 open.')
    .family('inference_edge_usage_buffer_events', 'gauge', 'Usage events waiting in Redis to be drained into Postgres.')
    .family('inference_edge_inference_enabled', 'gauge', '1 while inference is on, 0 while the global kill switch is thrown.');

  ids.forEach((deployment, i) => {
    const h = totals[i]!;
    const buckets = new Map<string, number>();
    for (const [field, raw] of Object.entries(h)) {
      const value = Number(raw);
      const [kind, a, b, c] = field.split('|');
      if (kind === 'req') x.sample('inference_edge_requests_total', { deployment, provider: a!, model: b!, code: c! }, value);
      else if (kind === 'tin' || kind === 'tout') x.sample('inference_edge_tokens_total', { deployment, provider: a!, model: b!, direction: kind === 'tin' ? 'input' : 'output' }, value);
      else if (kind === 'cost') x.sample('inference_edge_cost_usd_total', { deployment, provider: a!, model: b! }, value / 1_000_000);
      else if (kind === 'lat') buckets.set(a!, value);
      else if (kind === 'fallbacks') x.sample('inference_edge_fallbacks_total', { deployment }, value);
      else if (kind === 'stalled') x.sample('inference_edge_stalled_streams_total', { deployment }, value);
      else if (kind === 'empty') x.sample('inference_edge_empty_completions_total', { deployment }, value);
    }
    if (buckets.size) {
      const name = 'inference_edge_request_duration_seconds';
      let cumulative = 0;
      for (const le of [...LATENCY_BUCKETS.map(String), '+Inf']) {
        cumulative += buckets.get(le) ?? 0;
        x.sample(`${name}_bucket`, { deployment, le }, cumulative, name);
      }
      x.sample(`${name}_sum`, { deployment }, Number(h.lat_sum_ms ?? 0) / 1000, name);
      x.sample(`${name}_count`, { deployment }, cumulative, name);
    }
    for (const [field, raw] of Object.entries(flags[i]!)) {
      const [flag, variant, enabled] = field.split('|');
      x.sample('feature_flag_usage_total', { deployment, flag: flag!, variant: variant ?? '', enabled: enabled ?? 'false' }, Number(raw));
    }
  });
  for (const b of breakers) x.sample('inference_edge_circuit_breaker_state', { breaker: b.id }, BREAKER_VALUE[b.state]);
  x.sample('inference_edge_usage_buffer_events', {}, backlog);
  x.sample('inference_edge_inference_enabled', {}, globalSwitchOff(env, killSwitch) ? 0 : 1);
  return x.toString();
}

/** HGETALL's reply as an object, whichever shape the client hands back (flat array or object). */
function hash(reply: unknown): Record<string, string> {
  if (!reply) return {};
  if (Array.isArray(reply)) {
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
    return out;
  }
  return Object.fromEntries(Object.entries(reply as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
}
