import type { Context } from 'hono';
import type { z } from 'zod';
import { ApiError } from './errors';

/** The first issue of a failed parse, as a 400 that names the field. */
export function validationError(error: z.ZodError, where = ''): ApiError {
  const issue = error.issues[0]!;
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') path.push(...issue.keys.slice(0, 1));
  const param = [where, ...path].filter(Boolean).join('.') || null;
  const message = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
  return new ApiError(400, 'invalid_request', param ? `${param}: ${message}` : message, param);
}

/** Parses a JSON body with a schema: 415/400 for a body that is not JSON, 400 naming the field otherwise. */
export async function parseJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const type = c.req.header('content-type') ?? '';
  if (!type.toLowerCase().includes('application/json')) {
    throw new ApiError(415, 'unsupported_media_type', 'Send the body as JSON with "Content-Type: application/json".');
  }
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new ApiError(400, 'invalid_json', 'The body is not valid JSON.');
  }
  const r = schema.safeParse(body);
  if (!r.success) throw validationError(r.error);
  return r.data;
}

export function parseParam<S extends z.ZodType>(schema: S, value: unknown, name: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(r.error, name);
  return r.data;
}
