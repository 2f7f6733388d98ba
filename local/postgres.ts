import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { ROOT } from './functions';

/** The local database: the machine's Postgres (DATABASE_URL) or an embedded PGlite served on a port. */
export interface LocalPostgres {
  /** A connection string any Postgres client (psql, pg) can use. */
  url: string;
  mode: 'external' | 'embedded';
  /** Calls `callback` for every committed change of a `deployments` row (API or direct SQL). */
  watchDeployments(callback: (change: DeploymentChange) => void): Promise<void>;
  stop(): Promise<void>;
}

export interface DeploymentChange {
  op: 'INSERT' | 'UPDATE' | 'DELETE';
  id: string;
  configVersion: number | null;
}

export interface PostgresOptions {
  /** Use this server instead of the embedded one. */
  databaseUrl?: string;
  /** With databaseUrl: create a new, uniquely named database on that server and drop it on stop. */
  freshDatabase?: boolean;
  /** Embedded only: where PGlite keeps its files; in memory when undefined. */
  dataDir?: string;
  /** Embedded only: the port to serve it on (0 picks a free one). */
  port?: number;
  seed?: boolean;
}

const MIGRATIONS_DIR = `${ROOT}/supabase/migrations`;

/** Applies supabase/migrations in order, each once, each in its own transaction. */
export async function applyMigrations(exec: (sql: string) => Promise<unknown>, query: (sql: string) => Promise<{ rows: { version: string }[] }>) {
  await exec(`create schema if not exists inference_edge_meta;
    create table if not exists inference_edge_meta.migrations (version text primary key, name text not null, applied_at timestamptz not null default now());`);
  const applied = new Set((await query('select version from inference_edge_meta.migrations')).rows.map((r) => r.version));
  const files = readdirSync(MIGRATIONS_DIR).filter((f) => /^\d{14}_.+\.sql$/.test(f)).sort();
  const ran: string[] = [];
  for (const file of files) {
    const version = file.slice(0, 14);
    if (applied.has(version)) continue;
    const sql = readFileSync(`${MIGRATIONS_DIR}/${file}`, 'utf8');
    await exec(`begin;\n${sql}\n;insert into inference_edge_meta.migrations (version, name) values ('${version}', '${file.replace(/'/g, "''")}');\ncommit;`);
    ran.push(file);
  }
  return ran;
}

export function seedSql(): string {
  return readFileSync(`${ROOT}/supabase/seed.sql`, 'utf8');
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function startPostgres(options: PostgresOptions = {}): Promise<LocalPostgres> {
  return options.databaseUrl ? startExternal(options.databaseUrl, options) : startEmbedded(options);
}

async function startExternal(databaseUrl: string, options: PostgresOptions): Promise<LocalPostgres> {
  let url = databaseUrl;
  let dropOnStop: string | null = null;
  if (options.freshDatabase) {
    const name = `ie_test_${process.pid}_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    url = withDatabase(databaseUrl, name);
    dropOnStop = name;
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await applyMigrations((sql) => client.query(sql), (sql) => client.query(sql));
    if (options.seed !== false) await client.query(seedSql());
  } finally {
    await client.end();
  }
  const listeners: pg.Client[] = [];
  return {
    url,
    mode: 'external',
    async watchDeployments(callback) {
      // The trigger's pg_notify on 'deployment_changes', as a Supabase database webhook would see it.
      const l = new pg.Client({ connectionString: url });
      await l.connect();
      l.on('notification', (n) => {
        if (n.channel === 'deployment_changes' && n.payload) callback(JSON.parse(n.payload) as DeploymentChange);
      });
      l.on('error', () => {}); // the stack is shutting down or the server went away
      await l.query('listen deployment_changes');
      listeners.push(l);
    },
    async stop() {
      await Promise.all(listeners.map((l) => l.end().catch(() => {})));
      if (dropOnStop) {
        const admin = new pg.Client({ connectionString: databaseUrl });
        await admin.connect();
        await admin.query(`drop database if exists ${dropOnStop} with (force)`);
        await admin.end();
      }
    },
  };
}

async function startEmbedded(options: PostgresOptions): Promise<LocalPostgres> {
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const db = await PGlite.create(options.dataDir ? { dataDir: options.dataDir } : {});
  await applyMigrations((sql) => db.exec(sql), (sql) => db.query<{ version: string }>(sql));
  if (options.seed !== false) await db.exec(seedSql());
  // Served on a port so the Supabase stand-in, tests and an admin's psql reach it like a real server.
  // maxConnections above 1: the default of 1 drops a second client.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: options.port ?? 0, maxConnections: 16 });
  await server.start();
  const conn = server.getServerConn(); // "host:port"
  const url = `postgres://postgres@${conn}/postgres?sslmode=disable`;
  const timers: NodeJS.Timeout[] = [];
  return {
    url,
    mode: 'embedded',
    async watchDeployments(callback) {
      // PGlite runs every socket client on one backend and streams their raw protocol, so a NOTIFY
      // from a psql session reaches neither an in-process listener nor another socket client. The
      // audit log sees the same changes (every config or key change writes a row, append-only), so
      // the embedded stack follows it instead: no change is missed, even one undone within a poll.
      let lastId = Number((await db.query<{ id: number | null }>('select max(id)::bigint as id from audit_logs')).rows[0]?.id ?? 0);
      let busy = false;
      timers.push(setInterval(async () => {
        // Never inside a socket client's open transaction (one backend): its role and state are not ours.
        if (busy || db.isInTransaction()) return;
        busy = true;
        try {
          const { rows } = await db.query<{ max_id: number; deployment_id: string; v: number | null }>(
            `select max(a.id)::bigint as max_id, a.deployment_id, d.config_version::bigint as v
             from audit_logs a left join deployments d on d.id = a.deployment_id
             where a.id > $1 and a.deployment_id is not null
             group by a.deployment_id, d.config_version order by 1`, [lastId]);
          for (const r of rows) {
            lastId = Math.max(lastId, Number(r.max_id));
            callback(r.v === null
              ? { op: 'DELETE', id: r.deployment_id, configVersion: null }
              : { op: 'UPDATE', id: r.deployment_id, configVersion: Number(r.v) });
          }
        } catch {
          // stopping, or a query interleaved with a client's failed transaction: the next poll retries
        } finally {
          busy = false;
        }
      }, 100));
    },
    async stop() {
      for (const t of timers) clearInterval(t);
      await server.stop();
      await db.close();
    },
  };
}
