import { Hono } from 'hono';
import * as z from 'zod/mini';
import { adminAuth } from '../../shared/admin-auth';
import type { AppEnv } from '../../shared/context';
import { rpc } from '../../shared/db';
import { loadConfig, type Bindings } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { log } from '../../shared/log';
import { parseParam } from '../../shared/validate';

const isoDate = z.iso.date({ message: 'must be a date as YYYY-MM-DD' });

/** The UTC calendar day before `epochMs`, as YYYY-MM-DD. */
export function previousUtcDay(epochMs: number): string {
  return new Date(epochMs - 86_400_000).toISOString().slice(0, 10);
}

export async function runScheduledReport(env: Bindings, scheduledTime: number): Promise<void> {
  const date = previousUtcDay(scheduledTime);
  const started = Date.now();
  try {
    const summary = await rpc<{ totals: Record<string, number> }>(loadConfig(env), 'generate_daily_report', { p_date: date });
    log('info', 'daily_report.generated', { date, totalRequests: summary.totals.totalRequests, ms: Date.now() - started });
  } catch (err) {
    log('error', 'daily_report.failed', { date, error: (err as Error).message });
    throw err;
  }
}

/** Admin HTTP: run a day's report by hand and read it back. */
export const reportRoutes = new Hono<AppEnv>()
  .use('/run', adminAuth())
  .use('/reports/*', adminAuth())
  .post('/run', async (c) => {
    const date = parseParam(isoDate, c.req.query('date') ?? previousUtcDay(Date.now()), 'date');
    const summary = await rpc<unknown>(loadConfig(c.env), 'generate_daily_report', { p_date: date });
    return c.json({ date, summary });
  })
  .get('/reports/:date', async (c) => {
    const date = parseParam(isoDate, c.req.param('date'), 'date');
    const report = await rpc<unknown>(loadConfig(c.env), 'get_daily_report', { p_date: date });
    if (!report) throw new ApiError(404, 'report_not_found', `No report for ${date}; POST /run?date=${date} generates it.`);
    return c.json(report);
  });
