import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, inject } from 'vitest';

export const stack = inject('stack');

export const fn = (name: string, path = '') => `${stack.url}/functions/v1/${name}${path}`;

/** A call to the admin API of feature-toggle. */
export async function admin(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(fn('feature-toggle', path), {
    method,
    headers: { authorization: `Bearer ${stack.adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

export interface ProxyCallOptions {
  /** Another stack's URL (a second Miniflare instance); the run's stack by default. */
  base?: string;
  headers?: Record<string, string>;
}

/** POST /v1/chat/completions through the proxy with this body as is; the answer read in full. */
export async function proxyChat(key: string, body: object, opts: ProxyCallOptions = {}) {
  const res = await fetch(`${opts.base ?? stack.url}/functions/v1/inference-proxy/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...opts.headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json: any = null; // tests read whatever shape came back
  try {
    json = JSON.parse(text);
  } catch {
    // a stream
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * POST /drain on track-deployment-usage until the usage buffer is empty. The buffer is shared with
 * every other test of the run and a drain moves at most one batch (500), so one drain is not enough
 * to be sure a test's own events reached Postgres.
 */
export async function drainAll(): Promise<{ moved: number; inserted: number }> {
  const total = { moved: 0, inserted: 0 };
  for (let i = 0; i < 200; i++) {
    const res = await fetch(fn('track-deployment-usage', '/drain'), { method: 'POST', headers: { authorization: `Bearer ${stack.adminKey}` } });
    const body = (await res.json()) as { moved: number; inserted: number; remaining: number };
    if (res.status !== 200) throw new Error(`drain: ${res.status} ${JSON.stringify(body)}`);
    total.moved += body.moved;
    total.inserted += body.inserted;
    if (body.remaining === 0) return total;
  }
  throw new Error('the usage buffer did not empty after 200 drains');
}

export async function createDeployment(overrides: Record<string, unknown> = {}) {
  const r = await admin('POST', '/deployments', { name: `test ${Math.random().toString(36).slice(2, 8)}`, type: 'internal', ...overrides });
  if (r.status !== 201) throw new Error(`create deployment: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { deployment: { id: string; environment: string; configVersion: number; keys: { id: string; kind: string }[] } & Record<string, unknown>; keys: { publishable: string; secret: string } };
}

/** GET feature-toggle's /client/config with a deployment key. */
export async function clientConfig(key: string, headers: Record<string, string> = {}) {
  const res = await fetch(fn('feature-toggle', '/client/config'), { headers: { authorization: `Bearer ${key}`, ...headers } });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** A Postgres connection to the stack's database (the same as an admin's psql), closed after the file. */
export async function sql(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: stack.databaseUrl });
  await client.connect();
  afterAll(() => client.end());
  return client;
}

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Polls until `check` passes or `timeoutMs` elapses: for what the system does on its own time
 * (post-response work, a relay, a page re-render). Generous, so a loaded CI machine is not a failure.
 */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
