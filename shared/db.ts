import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import type { Config } from './env';
import { ApiError } from './errors';

const DB_TIMEOUT_MS = 5_000;

const clients = new Map<string, SupabaseClient>();

/** One supabase-js client per isolate and project (module scope, never per request). */
export function database(config: Config): SupabaseClient {
  const id = `${config.SUPABASE_URL}|${config.SUPABASE_SERVICE_ROLE_KEY}`;
  let client = clients.get(id);
  if (!client) {
    client = createClient(config.SUPABASE_URL, config.SUPABASE_SERVICE_ROLE_KEY, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      global: {
        // A deadline on every call: a hung database must not hang a request.
        fetch: (input, init) => fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(DB_TIMEOUT_MS) }),
      },
    });
    clients.set(id, client);
  }
  return client;
}

interface PostgrestErrorLike {
  code?: string;
  message: string;
  details?: string | null;
  hint?: string | null;
}

/**
 * Calls one SQL function (RPC-first data access) and maps its SQLSTATE to an ApiError, in one place:
 * P0002 → 404, class 22 (data exceptions)/23514/P0001 → 400 (hint names the field), 23505 → 409, anything else → 503.
 */
export async function rpc<T>(config: Config, fn: string, args: Record<string, unknown> = {}): Promise<T> {
  let result;
  try {
    result = await database(config).rpc(fn, args);
  } catch (err) {
    throw new ApiError(503, 'database_unavailable', `database unreachable: ${(err as Error).message}`);
  }
  if (result.error) throw databaseError(result.error as PostgrestErrorLike);
  return result.data as T;
}

export function databaseError(e: PostgrestErrorLike): ApiError {
  const code = e.code ?? '';
  if (code === 'P0002') return new ApiError(404, 'not_found', e.message);
  if (code === '23505') return new ApiError(409, 'conflict', e.message);
  if (code.startsWith('22') || code === '23514' || code === '23502' || code === 'P0001') {
    return new ApiError(400, 'invalid_value', e.message, e.hint || null);
  }
  if (code === '23503') return new ApiError(409, 'conflict', e.message);
  // A network failure inside supabase-js has no SQLSTATE.
  return new ApiError(503, 'database_unavailable', `database error${code ? ` ${code}` : ''}: ${e.message}`);
}
