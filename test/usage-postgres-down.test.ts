import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../local/stack';
import { eventually } from './helpers';
import { privatePostgresAvailable, startPrivatePostgres, type PrivatePostgres } from './private-postgres';

/**
 * Postgres stopped during a burst of calls, then restarted: the calls are served from cached config,
 * their usage waits in Redis, and after the restart the counts in Postgres equal the calls served.
 * The database is a private cluster this test starts and stops itself.
 */
const INTERNAL_SK = 'sk_test_demoInternalAssist00000000000000';
let pg: PrivatePostgres;
let own: Stack;

describe.skipIf(!privatePostgresAvailable())('usage while Postgres is down', () => {
  beforeAll(async () => {
    pg = await startPrivatePostgres();
    own = await startStack({ port: 0, databaseUrl: pg.url, quiet: true });
  }, 120_000);
  afterAll(async () => {
    await own?.stop();
    pg?.destroy();
  });

  const chat = () =>
    fetch(`${own.functionUrl('inference-proxy')}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${INTERNAL_SK}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'flash', messages: [{ role: 'user', content: 'hi' }] }),
    }).then((r) => r.status);
  const drain = () =>
    fetch(`${own.functionUrl('track-deployment-usage')}/drain`, { method: 'POST', headers: { authorization: `Bearer ${own.adminKey}` } }).then(async (r) => ({ status: r.status, body: await r.json() }));
  /** Usage events waiting in this stack's Redis buffer. */
  const buffered = async () => {
    const redis = new Redis(own.redisUrl);
    try {
      return await redis.xlen(`${own.keyPrefix}:usage`);
    } finally {
      redis.disconnect();
    }
  };
  const count = async () => {
    const { default: pgLib } = await import('pg');
    const client = new pgLib.Client({ connectionString: pg.url });
    await client.connect();
    try {
      return (await client.query(`select count(*)::int as n from usage_events where deployment_id = '00000000-0000-4000-8000-000000000002'`)).rows[0].n as number;
    } finally {
      await client.end();
    }
  };

  it('loses nothing and counts nothing twice', async () => {
    expect(await chat()).toBe(200); // warm caches while the database is up
    await eventually(async () => expect(await buffered()).toBe(1)); // post-response work lands after the answer
    expect((await drain()).body.moved).toBe(1);

    pg.stop();
    const statuses = [];
    for (let i = 0; i < 12; i++) statuses.push(await chat());
    expect(statuses.every((s) => s === 200)).toBe(true);
    await eventually(async () => expect(await buffered()).toBe(12));
    const failed = await drain();
    expect(failed.status).toBe(503); // nothing acknowledged: the events stay buffered

    pg.start();
    const drained = await drain();
    expect(drained.status).toBe(200);
    expect(drained.body).toMatchObject({ moved: 12, inserted: 12, remaining: 0 });
    expect(await count()).toBe(13);
    expect((await drain()).body.moved).toBe(0);
    expect(await count()).toBe(13);
  }, 120_000);
});
