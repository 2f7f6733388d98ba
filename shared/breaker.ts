import type { Redis } from '@upstash/redis/cloudflare';
import type { CounterBatch } from './counters';
import { log } from './log';
import { runScript, type LuaScript } from './lua';
import type { RedisKeys } from './redis';

/**
 * Circuit breakers shared by every isolate, per provider and model, with their state in Redis:
 * closed → open after `failureThreshold` failures (or a failure ratio over `minCalls` calls) within
 * `windowMs` → after `cooldownMs` half-open, where exactly one probe (a lease taken with SET NX)
 * goes through → closed on its success, open again on its failure.
 *
 * The state key holds `open:<until-epoch-ms>` while open or half-open and is absent while closed, so
 * the hot path reads every breaker of a route in the same MGET as the config version.
 */
export interface BreakerConfig {
  failureThreshold: number;
  windowMs: number;
  cooldownMs: number;
  /** With failureRatio: open when at least minCalls calls in the window failed at this ratio. */
  minCalls: number;
  failureRatio: number;
}

export const DEFAULT_BREAKER: BreakerConfig = { failureThreshold: 5, windowMs: 60_000, cooldownMs: 60_000, minCalls: 20, failureRatio: 0.5 };

export type BreakerState = 'closed' | 'open' | 'half_open';

export const breakerId = (provider: string, model: string) => `${provider}:${model}`;

/** Reads a state value: closed, open until a time, or half-open once that time has passed. */
export function breakerState(value: string | null | undefined, now: number): { state: BreakerState; until: number | null } {
  if (!value || !value.startsWith('open:')) return { state: 'closed', until: null };
  const until = Number(value.slice(5));
  return { state: now < until ? 'open' : 'half_open', until };
}

/** KEYS: state, failures, calls, probe, index, since. ARGV: ok(1|0), now, windowMs, threshold, cooldownMs, id, minCalls, ratio. */
export const RECORD_OUTCOME: LuaScript = {
  name: 'breaker_record',
  source: `local state = redis.call('GET', KEYS[1])
local now = tonumber(ARGV[2])
if ARGV[1] == '1' then
  if state then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6])
    return 'closed_from_open'
  end
  local c = redis.call('INCR', KEYS[3])
  if c == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
  return 'closed'
end
if state then
  local untilMs = tonumber(string.sub(state, 6))
  if untilMs and now >= untilMs then
    redis.call('SET', KEYS[1], 'open:' .. (now + tonumber(ARGV[5])))
    redis.call('DEL', KEYS[4])
    return 'reopened'
  end
  return 'open'
end
local f = redis.call('INCR', KEYS[2])
if f == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
local c = redis.call('INCR', KEYS[3])
if c == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
if f >= tonumber(ARGV[4]) or (c >= tonumber(ARGV[7]) and f / c >= tonumber(ARGV[8])) then
  redis.call('SET', KEYS[1], 'open:' .. (now + tonumber(ARGV[5])))
  redis.call('SET', KEYS[6], ARGV[2])
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('SADD', KEYS[5], ARGV[6])
  return 'opened'
end
return 'closed'`,
  sha1: '4cbe31e9ad4d59bd45bc3a4058dbcb1a704a490d',
};

function breakerKeys(keys: RedisKeys, id: string) {
  const state = keys.breaker(id);
  return { state, failures: `${state}:f`, calls: `${state}:c`, probe: `${state}:p`, since: `${state}:since`, index: keys.breakerIndex() };
}

/** Per-isolate breakers, used while Redis is unreachable (degraded mode: each isolate on its own). */
const local = new Map<string, { failures: number[]; until: number | null; probing: boolean }>();

export class Breakers {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly now: () => number = Date.now,
  ) {}

  /** The state keys to read in the hot-path MGET, one per target. */
  stateKeys(ids: string[]): string[] {
    return ids.map((id) => this.keys.breaker(id));
  }

  /**
   * May a call go to this target? Closed: yes. Open: no (no network call). Half-open: only the one
   * caller that wins the probe lease, across all isolates.
   */
  async admit(id: string, stateValue: string | null | undefined, cfg: BreakerConfig, redisDown: boolean): Promise<{ allowed: boolean; state: BreakerState; probe: boolean }> {
    const now = this.now();
    if (redisDown) {
      const l = local.get(id);
      if (!l?.until) return { allowed: true, state: 'closed', probe: false };
      if (now < l.until) return { allowed: false, state: 'open', probe: false };
      if (l.probing) return { allowed: false, state: 'half_open', probe: false };
      l.probing = true;
      return { allowed: true, state: 'half_open', probe: true };
    }
    const { state } = breakerState(stateValue, now);
    if (state === 'closed') return { allowed: true, state, probe: false };
    if (state === 'open') return { allowed: false, state, probe: false };
    const k = breakerKeys(this.keys, id);
    // The probe lease outlives a slow probe call but not a crashed isolate.
    const won = await this.redis.set(k.probe, String(now), { nx: true, px: Math.max(cfg.cooldownMs, 10_000) });
    return { allowed: won === 'OK', state, probe: won === 'OK' };
  }

  /**
   * A successful call on a breaker that was closed when the request read it: only its call count
   * moves (for the failure-ratio rule), so the write joins the request's post-response batch instead
   * of a script call of its own. Anything else (a probe, an open or half-open breaker, Redis down)
   * goes through `record`. Returns whether the batch took it.
   */
  recordSuccessInto(batch: CounterBatch, id: string, stateRead: string | null | undefined, cfg: BreakerConfig, redisDown: boolean): boolean {
    if (redisDown || stateRead) return false;
    batch.incrInWindow(breakerKeys(this.keys, id).calls, cfg.windowMs);
    return true;
  }

  /** Records a call's outcome; logs transitions. Never throws (a breaker must not fail a request). */
  async record(id: string, ok: boolean, cfg: BreakerConfig, redisDown: boolean): Promise<string> {
    const now = this.now();
    if (redisDown) return this.recordLocal(id, ok, cfg, now);
    const k = breakerKeys(this.keys, id);
    try {
      const result = await runScript<string>(this.redis, RECORD_OUTCOME, [k.state, k.failures, k.calls, k.probe, k.index, k.since], [
        ok ? 1 : 0, now, cfg.windowMs, cfg.failureThreshold, cfg.cooldownMs, id, cfg.minCalls, cfg.failureRatio,
      ]);
      if (result === 'opened' || result === 'reopened' || result === 'closed_from_open') {
        log(result === 'closed_from_open' ? 'info' : 'warn', 'breaker.transition', { breaker: id, to: result === 'closed_from_open' ? 'closed' : 'open', cause: result });
      }
      return result;
    } catch (err) {
      log('warn', 'breaker.record_failed', { breaker: id, error: (err as Error).message });
      return this.recordLocal(id, ok, cfg, now);
    }
  }

  private recordLocal(id: string, ok: boolean, cfg: BreakerConfig, now: number): string {
    let l = local.get(id);
    if (!l) local.set(id, (l = { failures: [], until: null, probing: false }));
    if (ok) {
      const wasOpen = l.until !== null;
      local.delete(id);
      return wasOpen ? 'closed_from_open' : 'closed';
    }
    if (l.until !== null && now >= l.until) {
      l.until = now + cfg.cooldownMs;
      l.probing = false;
      return 'reopened';
    }
    l.failures = [...l.failures.filter((t) => now - t < cfg.windowMs), now];
    if (l.failures.length >= cfg.failureThreshold) {
      l.until = now + cfg.cooldownMs;
      l.failures = [];
      log('warn', 'breaker.transition', { breaker: id, to: 'open', cause: 'opened', scope: 'isolate' });
      return 'opened';
    }
    return 'closed';
  }

  /** Every breaker that has opened, with its state now (for /health/dependencies). */
  async list(): Promise<{ id: string; state: BreakerState; openUntil: string | null; openSince: string | null }[]> {
    const ids = ((await this.redis.smembers(this.keys.breakerIndex())) as string[]).sort();
    if (!ids.length) return [];
    const values = await this.redis.mget<(string | null)[]>(...ids.flatMap((id) => [this.keys.breaker(id), `${this.keys.breaker(id)}:since`]));
    const now = this.now();
    return ids.map((id, i) => {
      const s = breakerState(values[2 * i], now);
      const since = s.state === 'closed' ? null : values[2 * i + 1];
      return { id, state: s.state, openUntil: s.until ? new Date(s.until).toISOString() : null, openSince: since ? new Date(Number(since)).toISOString() : null };
    });
  }
}
