import { Hono } from 'hono';
import * as z from 'zod/mini';
import { bearerToken, constantTimeEqual } from '../../shared/api-keys';
import type { AppEnv } from '../../shared/context';
import { loadConfig } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { publishConfigVersion } from '../../shared/key-auth';
import { log } from '../../shared/log';
import { parseJson } from '../../shared/validate';

/** Supabase database webhook payload (Database → Webhooks, table `deployments`). */
const payloadSchema = z.object({
  type: z.enum(['INSERT', 'UPDATE', 'DELETE']),
  table: z.literal('deployments'),
  schema: z.optional(z.string()),
  record: z.optional(z.nullable(z.looseObject({ id: z.uuid(), config_version: z.coerce.number().check(z.int()) }))),
  old_record: z.optional(z.nullable(z.looseObject({ id: z.uuid() }))),
});

/**
 * The receiver for direct edits of the `deployments` table (Supabase Studio, psql): the trigger bumps
 * config_version, the webhook (production) or LISTEN/NOTIFY relay (local stack) posts here, and the
 * new version reaches Redis, so the edit is seen on the next request.
 */
export const webhookRoutes = new Hono<AppEnv>().post('/webhooks/database', async (c) => {
  const config = loadConfig(c.env);
  if (!config.DATABASE_WEBHOOK_SECRET) {
    throw new ApiError(503, 'webhook_not_configured', 'DATABASE_WEBHOOK_SECRET is not set, so database webhooks are refused.');
  }
  const sent = c.req.header('x-webhook-secret') ?? bearerToken(c.req.header('authorization')) ?? '';
  if (!(await constantTimeEqual(sent, config.DATABASE_WEBHOOK_SECRET))) {
    throw new ApiError(401, 'invalid_webhook_secret', 'The webhook secret is not valid.');
  }
  const event = await parseJson(c, payloadSchema);
  if (event.type === 'DELETE') {
    const id = event.old_record?.id ?? event.record?.id;
    if (!id) throw new ApiError(400, 'invalid_request', 'old_record.id: is required', 'old_record.id');
    await publishConfigVersion(config, id, null);
    log('info', 'config.changed', { deploymentId: id, op: event.type });
    return c.json({ ok: true, deploymentId: id, configVersion: null });
  }
  if (!event.record) throw new ApiError(400, 'invalid_request', 'record: is required', 'record');
  await publishConfigVersion(config, event.record.id, event.record.config_version);
  log('info', 'config.changed', { deploymentId: event.record.id, op: event.type, configVersion: event.record.config_version });
  return c.json({ ok: true, deploymentId: event.record.id, configVersion: event.record.config_version });
});
