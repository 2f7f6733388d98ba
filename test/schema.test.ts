import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { applyMigrations } from '../local/postgres';
import { readdirSync } from 'node:fs';
import { ROOT } from '../local/functions';
import { sql, stack } from './helpers';

const migrationFiles = readdirSync(`${ROOT}/supabase/migrations`).filter((f) => f.endsWith('.sql')).sort();
const TABLES = ['deployments', 'api_keys', 'usage_events', 'deployment_usage_metrics', 'daily_reports', 'alerts', 'audit_logs'];

describe('migrations', () => {
  it('apply on an empty database, each once', async () => {
    if (stack.externalDatabaseUrl) {
      const name = `ie_mig_${Date.now()}_${process.pid}`;
      const admin = new pg.Client({ connectionString: stack.externalDatabaseUrl });
      await admin.connect();
      await admin.query(`create database ${name}`);
      const url = new URL(stack.externalDatabaseUrl);
      url.pathname = `/${name}`;
      const db = new pg.Client({ connectionString: url.toString() });
      await db.connect();
      try {
        expect(await applyMigrations((s) => db.query(s), (s) => db.query(s))).toEqual(migrationFiles);
        expect(await applyMigrations((s) => db.query(s), (s) => db.query(s))).toEqual([]);
      } finally {
        await db.end();
        await admin.query(`drop database ${name} with (force)`);
        await admin.end();
      }
    } else {
      const db = await PGlite.create();
      try {
        expect(await applyMigrations((s) => db.exec(s), (s) => db.query(s))).toEqual(migrationFiles);
        expect(await applyMigrations((s) => db.exec(s), (s) => db.query(s))).toEqual([]);
      } finally {
        await db.close();
      }
    }
  });
});

describe('schema', async () => {
  const db = await sql();

  it('has every table, with row level security enabled on each (partitions included)', async () => {
    const { rows } = await db.query<{ relname: string; relrowsecurity: boolean }>(
      `select c.relname, c.relrowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'public' and c.relkind in ('r', 'p')`,
    );
    const names = rows.map((r) => r.relname);
    for (const t of TABLES) expect(names).toContain(t);
    expect(names.some((n) => /^usage_events_\d{6}$/.test(n))).toBe(true);
    expect(rows.filter((r) => !r.relrowsecurity)).toEqual([]);
  });

  it('shows anon and authenticated nothing and lets them write nothing', async () => {
    for (const role of ['anon', 'authenticated']) {
      await db.query('begin');
      try {
        await db.query(`set local role ${role}`);
        for (const t of TABLES) {
          const { rows } = await db.query(`select count(*)::int as n from public.${t}`);
          expect(rows[0].n, `${role} reads ${t}`).toBe(0);
        }
        await expect(db.query(`insert into public.deployments (name, type) values ('x', 'public')`)).rejects.toThrow(/row-level security/);
      } finally {
        await db.query('rollback');
      }
    }
    // ... while the rows are there for the service role.
    const { rows } = await db.query(`select count(*)::int as n from public.deployments`);
    expect(rows[0].n).toBeGreaterThanOrEqual(2);
  });

  it('lets only service_role call the API functions', async () => {
    await db.query('begin');
    try {
      await db.query('set local role anon');
      await expect(db.query('select public.health_check()')).rejects.toThrow(/permission denied/);
    } finally {
      await db.query('rollback');
    }
    await db.query('begin');
    try {
      await db.query('set local role service_role');
      const { rows } = await db.query('select public.health_check() as r');
      expect(rows[0].r.ok).toBe(true);
    } finally {
      await db.query('rollback');
    }
  });

  it('refuses to update, delete or truncate audit rows, even for the owner', async () => {
    const { rows } = await db.query<{ id: string }>('select id from audit_logs order by id limit 1');
    expect(rows.length).toBe(1);
    await expect(db.query(`update audit_logs set actor = 'someone else' where id = $1`, [rows[0]!.id])).rejects.toThrow(/append-only/);
    await expect(db.query('delete from audit_logs where id = $1', [rows[0]!.id])).rejects.toThrow(/append-only/);
    await expect(db.query('truncate audit_logs')).rejects.toThrow(/append-only/);
    const after = await db.query('select count(*)::int as n from audit_logs where id = $1', [rows[0]!.id]);
    expect(after.rows[0].n).toBe(1);
  });

  it('audits a direct UPDATE of deployments with the diff and the database user, and bumps config_version', async () => {
    const { rows: before } = await db.query(
      `insert into deployments (name, type) values ('direct edit', 'public') returning id, config_version`,
    );
    const id = before[0].id as string;
    await db.query(`update deployments set features = features || '{"smartRouting": true}', name = 'direct edit 2' where id = $1`, [id]);
    const { rows } = await db.query('select action, actor, source, diff from audit_logs where deployment_id = $1 order by id desc', [id]);
    expect(rows[0]).toMatchObject({
      action: 'deployment.updated',
      source: 'sql',
      diff: { 'features.smartRouting': { old: null, new: true }, name: { old: 'direct edit', new: 'direct edit 2' } },
    });
    expect(rows[0].actor).toMatch(/^db:/);
    expect(rows[1]).toMatchObject({ action: 'deployment.created', source: 'sql' });
    const { rows: after } = await db.query('select config_version from deployments where id = $1', [id]);
    expect(Number(after[0].config_version)).toBe(Number(before[0].config_version) + 1);
  });

  it('writes no audit row for an update that changes nothing audited', async () => {
    const { rows } = await db.query(`insert into deployments (name, type) values ('noop', 'public') returning id`);
    const id = rows[0].id;
    await db.query(`update deployments set name = name where id = $1`, [id]);
    const { rows: audit } = await db.query('select action from audit_logs where deployment_id = $1', [id]);
    expect(audit.map((r) => r.action)).toEqual(['deployment.created']);
  });

  it('refuses an unknown time zone and a bad type', async () => {
    await expect(db.query(`insert into deployments (name, type, timezone) values ('tz', 'public', 'Mars/Base')`)).rejects.toThrow(/time zone/);
    await expect(db.query(`insert into deployments (name, type) values ('t', 'partner')`)).rejects.toThrow(/check constraint/);
  });

  it('stores usage events once per request id and by month', async () => {
    const dep = (await db.query(`select id from deployments limit 1`)).rows[0].id;
    const insert = `insert into usage_events (request_id, created_at, deployment_id, status) values ($1, $2, $3, 200) on conflict do nothing`;
    const at = new Date().toISOString();
    await db.query(insert, ['req-unique-1', at, dep]);
    await db.query(insert, ['req-unique-1', at, dep]);
    const { rows } = await db.query(`select tableoid::regclass::text as part, count(*)::int as n from usage_events where request_id = 'req-unique-1' group by 1`);
    expect(rows).toEqual([{ part: expect.stringMatching(/^usage_events_\d{6}$/), n: 1 }]);
  });
});
