import { createServer, type ServerResponse } from 'node:http';
import pg from 'pg';
import { close, listen, readBody } from './net';

/**
 * Test and dev plumbing, not product code: the slice of Supabase the Workers use, PostgREST's
 * `POST /rest/v1/rpc/<function>`, over a real Postgres. Each call runs as `service_role` in its own
 * transaction, as PostgREST does, and errors come back in PostgREST's shape and status.
 */
export interface SupabaseStandIn {
  url: string;
  serviceKey: string;
  /** Realtime broadcasts received (POST /realtime/v1/api/broadcast), oldest first. */
  broadcasts: { topic: string; event: string; payload: unknown }[];
  stop(): Promise<void>;
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

/** PostgREST's SQLSTATE → HTTP mapping (the subset that can occur here). */
function httpStatus(code: string | undefined): number {
  if (!code) return 500;
  if (code === '23503' || code === '23505') return 409;
  if (code === 'P0001') return 400;
  if (code === '42883' || code === '42P01') return 404;
  if (code === '42501') return 403;
  if (code.startsWith('53')) return 503;
  if (code.startsWith('54')) return 413;
  if (/^(25|2D|38|39|3B|40|55|57|58|F0|HV|P0|XX)/.test(code)) return 500;
  return 400;
}

/** A JSON argument as Postgres text for its parameter's type: arrays of a SQL array type become array literals. */
function param(value: unknown, type: string | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value) && type?.endsWith('[]')) {
    return `{${value.map((v) => (v === null ? 'NULL' : `"${String(v).replace(/(["\\])/g, '\\$1')}"`)).join(',')}}`;
  }
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export async function startSupabaseStandIn(databaseUrl: string, serviceKey: string, poolSize = 4): Promise<SupabaseStandIn> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, connectionTimeoutMillis: 3_000 });
  pool.on('error', () => {}); // a dropped idle connection; the next checkout reconnects
  // Argument types by function, as PostgREST reads them from the catalog.
  const argTypes = new Map<string, Map<string, string>>();
  const typesOf = async (client: pg.PoolClient, fn: string) => {
    let t = argTypes.get(fn);
    if (!t) {
      const { rows } = await client.query<{ name: string; type: string }>(
        `select unnest(proargnames) as name, unnest(proargtypes::regtype[]::text[]) as type
         from pg_proc where pronamespace = 'public'::regnamespace and proname = $1`, [fn]);
      t = new Map(rows.map((r) => [r.name, r.type]));
      argTypes.set(fn, t);
    }
    return t;
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body === undefined ? 'null' : JSON.stringify(body));
  };

  const broadcasts: SupabaseStandIn['broadcasts'] = [];
  let rpcCount = 0; // RPC calls received (GET /_test/rpc-count): tests check the warm path makes none
  const server = createServer(async (req, res) => {
    try {
      if (req.url === '/_test/broadcasts' && req.method === 'GET') return send(res, 200, broadcasts);
      if (req.url === '/_test/rpc-count' && req.method === 'GET') return send(res, 200, { count: rpcCount });
      const key = req.headers.apikey ?? String(req.headers.authorization ?? '').replace(/^Bearer\s+/i, '');
      if (key !== serviceKey) return send(res, 401, { code: 'PGRST301', message: 'invalid API key', details: null, hint: null });
      // Realtime's REST broadcast: recorded, so the local stack and tests can see what clients would get.
      if (req.url === '/realtime/v1/api/broadcast' && req.method === 'POST') {
        const body = JSON.parse(await readBody(req)) as { messages?: { topic: string; event: string; payload: unknown }[] };
        broadcasts.push(...(body.messages ?? []));
        if (broadcasts.length > 1000) broadcasts.splice(0, broadcasts.length - 1000);
        res.writeHead(202).end();
        return;
      }
      const m = /^\/rest\/v1\/rpc\/([^/?]+)/.exec(req.url ?? '');
      if (!m || req.method !== 'POST') return send(res, 404, { code: 'PGRST202', message: `no route ${req.method} ${req.url}`, details: null, hint: null });
      const fn = m[1]!;
      rpcCount++;
      const raw = await readBody(req);
      const args = (raw ? JSON.parse(raw) : {}) as Record<string, unknown>;
      if (!IDENT.test(fn) || !Object.keys(args).every((a) => IDENT.test(a))) {
        return send(res, 400, { code: 'PGRST100', message: 'invalid function or argument name', details: null, hint: null });
      }
      const names = Object.keys(args);
      const sql = `select public.${fn}(${names.map((n, i) => `${n} => $${i + 1}`).join(', ')}) as result`;
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        return send(res, 503, { code: 'PGRST000', message: `database unreachable: ${(err as Error).message}`, details: null, hint: null });
      }
      try {
        const types = await typesOf(client, fn);
        await client.query('begin; set local role service_role');
        const result = await client.query(sql, names.map((n) => param(args[n], types.get(n))));
        await client.query('commit');
        client.release();
        return send(res, 200, result.rows[0]?.result ?? null);
      } catch (err) {
        const e = err as pg.DatabaseError;
        await client.query('rollback').catch(() => {});
        client.release(!e.code); // drop a broken connection
        return send(res, httpStatus(e.code), { code: e.code ?? 'PGRST000', message: e.message, details: e.detail ?? null, hint: e.hint ?? null });
      }
    } catch (err) {
      send(res, 500, { code: 'PGRST000', message: (err as Error).message, details: null, hint: null });
    }
  });
  const url = await listen(server);
  return {
    url,
    serviceKey,
    broadcasts,
    async stop() {
      await close(server);
      await pool.end();
    },
  };
}
