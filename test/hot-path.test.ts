import { describe, expect, it } from 'vitest';
import { createDeployment, eventually, proxyChat, stack } from './helpers';

/**
 * What one warm proxied call costs in Redis, counted by the Upstash stand-in as Upstash would bill
 * it: the key check's round trip (config version, kill switch and breakers read by the same script
 * that checks and reserves every limit window) and the post-response batch. Two commands, two round
 * trips; Postgres is not touched (no Supabase call).
 */
const upstashStats = async () => (await (await fetch(`${stack.upstashUrl}/_stats`, { headers: { authorization: `Bearer ${stack.upstashToken}` } })).json()) as { requests: number; commands: number; byCommand: Record<string, number> };
const supabaseRpcs = async () => ((await (await fetch(`${stack.supabaseUrl}/_test/rpc-count`)).json()) as { count: number }).count;

describe('the hot path', () => {
  it('a warm proxied call is two Redis commands in two round trips, and no Postgres', async () => {
    const { keys } = await createDeployment({ type: 'internal', features: { piiRedaction: true } });
    const call = () => proxyChat(keys.secret, { model: 'flash', messages: [{ role: 'user', content: 'Say hello to jane@example.com.' }], max_tokens: 16 });
    // Warm: the key in the isolate cache, both scripts loaded in Redis.
    for (let i = 0; i < 3; i++) expect((await call()).status).toBe(200);
    // Start counting once the warm-up's post-response work has landed (the count stops moving).
    let before = await upstashStats();
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = await upstashStats();
      if (now.commands === before.commands) break;
      before = now;
    }
    const rpcsBefore = await supabaseRpcs();

    expect((await call()).status).toBe(200);
    await eventually(async () => expect((await upstashStats()).commands - before.commands).toBeGreaterThanOrEqual(2));
    await new Promise((r) => setTimeout(r, 300)); // and nothing comes late
    const after = await upstashStats();
    const delta = Object.fromEntries(Object.entries(after.byCommand).map(([k, v]) => [k, v - (before.byCommand[k] ?? 0)]).filter(([, v]) => v));
    expect(delta).toEqual({ EVALSHA: 2 }); // the reserve script, the post-response batch
    expect(after.commands - before.commands).toBe(2);
    expect(after.requests - before.requests).toBe(2);
    expect(await supabaseRpcs()).toBe(rpcsBefore);
  });
});
