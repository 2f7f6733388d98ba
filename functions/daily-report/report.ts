import { Hono } from 'hono';
import * as z from 'zod/mini';
import { adminAuth } from '../../shared/admin-auth';
import { raiseAlert } from '../../shared/alerts';
import type { AppEnv } from '../../shared/context';
import { rpc } from '../../shared/db';
import { loadConfig, type Bindings, type Config } from '../../shared/env';
import { ApiError } from '../../shared/errors';
import { log } from '../../shared/log';
import { parseParam } from '../../shared/validate';

const isoDate = z.iso.date({ message: 'must be a date as YYYY-MM-DD' });

interface DeploymentSummary {
  deploymentId: string;
  deploymentName: string;
  requests: number;
  tokensUsed: number;
  costEstimate: number;
  avgLatency: number;
  p95Latency: number;
  errorRate: number;
  topModels: { model: string; usage: number }[];
  topFeatures: { feature: string; usage: number }[];
  costByModel: Record<string, number>;
}

/** seed 004 §10.5's DailySummary, plus p95 latency and cost per model. */
export interface DailySummary {
  date: string;
  deployments: DeploymentSummary[];
  totals: { totalRequests: number; totalTokens: number; totalCost: number; avgErrorRate: number };
}

/** The UTC calendar day before `epochMs`, as YYYY-MM-DD. */
export function previousUtcDay(epochMs: number): string {
  return new Date(epochMs - 86_400_000).toISOString().slice(0, 10);
}

const csvCell = (v: unknown) => {
  const s = String(v ?? '');
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** One row per deployment and model (seed 001's cost report), plus a totals row. */
export function summaryCsv(summary: DailySummary): string {
  const rows: unknown[][] = [['date', 'deployment_id', 'deployment_name', 'model', 'requests', 'tokens_used', 'cost_usd', 'avg_latency_ms', 'p95_latency_ms', 'error_rate']];
  for (const d of summary.deployments) {
    rows.push([summary.date, d.deploymentId, d.deploymentName, '*', d.requests, d.tokensUsed, d.costEstimate, d.avgLatency, d.p95Latency, d.errorRate]);
    for (const m of d.topModels) rows.push([summary.date, d.deploymentId, d.deploymentName, m.model, m.usage, '', d.costByModel[m.model] ?? 0, '', '', '']);
  }
  const t = summary.totals;
  rows.push([summary.date, '*', 'TOTAL', '*', t.totalRequests, t.totalTokens, t.totalCost, '', '', t.avgErrorRate]);
  return `${rows.map((r) => r.map(csvCell).join(',')).join('\r\n')}\r\n`;
}

/**
 * Generates (or regenerates) a day's report, then alerts when the day's cost passed
 * COST_ALERT_THRESHOLD (all deployments) or a deployment's `monitoring.alertThresholds.dailyCostUsd`.
 */
export async function generateReport(config: Config, env: Bindings, date: string): Promise<DailySummary> {
  const summary = await rpc<DailySummary>(config, 'generate_daily_report', { p_date: date });
  const global = Number(env.COST_ALERT_THRESHOLD);
  if (env.COST_ALERT_THRESHOLD && Number.isFinite(global) && summary.totals.totalCost > global) {
    await raiseAlert(config, { name: 'all deployments', monitoring: {} }, {
      deploymentId: null, type: 'daily_cost', severity: 'warning', windowKey: date,
      message: `Daily cost exceeded $${global}: $${summary.totals.totalCost.toFixed(2)} on ${date}.`, data: { totalCost: summary.totals.totalCost, threshold: global },
    });
  }
  const spending = summary.deployments.filter((d) => d.costEstimate > 0).map((d) => d.deploymentId);
  const briefs = spending.length
    ? await rpc<{ id: string; name: string; monitoring: { alertThresholds?: { dailyCostUsd?: number } } }[]>(config, 'get_deployments_brief', { p_ids: spending })
    : [];
  for (const b of briefs) {
    const limit = b.monitoring.alertThresholds?.dailyCostUsd;
    const cost = summary.deployments.find((d) => d.deploymentId === b.id)?.costEstimate ?? 0;
    if (typeof limit === 'number' && cost > limit) {
      await raiseAlert(config, b, {
        deploymentId: b.id, type: 'daily_cost', severity: 'warning', windowKey: date,
        message: `Daily cost $${cost.toFixed(2)} on ${date} exceeded this deployment's $${limit}.`, data: { cost, threshold: limit },
      });
    }
  }
  return summary;
}

/** cron `0 1 * * *`: yesterday's report, then retention (old usage partitions dropped). */
export async function runScheduledReport(env: Bindings, scheduledTime: number): Promise<void> {
  const config = loadConfig(env);
  const date = previousUtcDay(scheduledTime);
  const started = Date.now();
  try {
    const summary = await generateReport(config, env, date);
    log('info', 'daily_report.generated', { date, totalRequests: summary.totals.totalRequests, ms: Date.now() - started });
  } catch (err) {
    log('error', 'daily_report.failed', { date, error: (err as Error).message });
    throw err;
  }
  const keepDays = Number(env.USAGE_RETENTION_DAYS) || 90;
  const purged = await rpc<{ droppedPartitions: string[]; deletedRows: number }>(config, 'purge_usage_events', { p_keep_days: keepDays });
  log('info', 'usage.retention', { keepDays, ...purged });
}

/** Admin HTTP: run a day's report by hand and read it back (JSON, or CSV with ?format=csv). */
export const reportRoutes = new Hono<AppEnv>()
  .use('/run', adminAuth())
  .use('/reports/*', adminAuth())
  .post('/run', async (c) => {
    const date = parseParam(isoDate, c.req.query('date') ?? previousUtcDay(Date.now()), 'date');
    return c.json({ date, summary: await generateReport(loadConfig(c.env), c.env, date) });
  })
  .get('/reports/:date', async (c) => {
    const date = parseParam(isoDate, c.req.param('date'), 'date');
    const format = parseParam(z._default(z.enum(['json', 'csv']), 'json'), c.req.query('format'), 'format');
    const report = await rpc<{ date: string; generatedAt: string; summary: DailySummary } | null>(loadConfig(c.env), 'get_daily_report', { p_date: date });
    if (!report) throw new ApiError(404, 'report_not_found', `No report for ${date}; POST /run?date=${date} generates it.`);
    if (format === 'csv') {
      c.header('content-disposition', `attachment; filename="inference-edge-${date}.csv"`);
      return c.body(summaryCsv(report.summary), 200, { 'content-type': 'text/csv; charset=utf-8' });
    }
    return c.json(report);
  });
