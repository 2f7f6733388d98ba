import type { Context } from 'hono';
import * as z from 'zod/mini';
import { en } from 'zod/v4/locales';
import { ApiError } from './errors';

// zod/mini ships no messages ("Invalid input" for everything); English only keeps bundles small.
z.config(en());

type Issue = z.core.$ZodIssue;

/** The first issue of a failed parse, as a 400 that names the field. */
export function validationError(issues: readonly Issue[], where = ''): ApiError {
  const issue = issues[0]!;
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') path.push(...issue.keys.slice(0, 1));
  const param = [where, ...path].filter(Boolean).join('.') || null;
  const message =
    issue.code === 'unrecognized_keys' ? 'is not a known field'
    : issue.code === 'invalid_type' && issue.input === undefined ? 'is required'
    : issue.message;
  return new ApiError(400, 'invalid_request', param ? `${param}: ${message}` : message, param);
}

/** Parses a JSON body with a schema: 415 unless JSON, 400 for broken JSON, 400 naming the field otherwise. */
export async function parseJson<S extends z.ZodMiniType>(c: Context, schema: S): Promise<z.infer<S>> {
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
  if (!r.success) throw validationError(r.error.issues);
  return r.data;
}

export function parseParam<S extends z.ZodMiniType>(schema: S, value: unknown, name: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(r.error.issues, name);
  return r.data;
}
