import type { Redis } from '@upstash/redis/cloudflare';
import { rpc } from './db';
import type { Deployment } from './deployment';
import type { Config } from './env';
import type { WindowState } from './limiter';
import { log } from './log';
import type { RedisKeys } from './redis';

export interface AlertInput {
  deploymentId: string | null;
  type: string;
  severity: 'info' | 'warning' | 'critical';
  /** Alerts are deduplicated per (deployment, type, windowKey). */
  windowKey: string;
  message: string;
  data: Record<string, unknown>;
}

interface Monitoring {
  webhookUrl?: string | null;
  webhookFormat?: 'slack' | 'pagerduty';
  pagerdutyRoutingKey?: string;
  alertThresholds?: { tokenBudgetPercent?: number[] };
}

/** The webhook body: Slack-compatible JSON, or a PagerDuty Events v2 trigger. */
export function webhookBody(monitoring: Monitoring, alert: AlertInput, deploymentName: string): unknown {
  if (monitoring.webhookFormat === 'pagerduty') {
    return {
      routing_key: monitoring.pagerdutyRoutingKey ?? '',
      event_action: 'trigger',
      dedup_key: `${alert.deploymentId ?? 'global'}:${alert.type}:${alert.windowKey}`,
      payload: { summary: alert.message, severity: alert.severity, source: `inference-edge/${deploymentName}`, component: alert.type, custom_details: alert.data },
    };
  }
  return { text: `[${alert.severity.toUpperCase()}] ${deploymentName}: ${alert.message}`, attachments: [{ fields: Object.entries(alert.data).map(([title, value]) => ({ title, value: String(value), short: true })) }] };
}

/** POSTs with retries and exponential backoff; answers how many attempts it took and whether it got through. */
export async function deliverWebhook(url: string, body: unknown, attempts = 4, baseDelayMs = 250, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<{ delivered: boolean; attempts: number }> {
  for (let i = 1; i <= attempts; i++) {
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      if (res.ok) return { delivered: true, attempts: i };
      if (res.status < 500 && res.status !== 429) return { delivered: false, attempts: i }; // the receiver refuses: retrying will not help
    } catch {
      // network error: retry
    }
    if (i < attempts) await sleep(baseDelayMs * 2 ** (i - 1));
  }
  return { delivered: false, attempts };
}

/** Stores the alert once per window and delivers it to the deployment's webhook, if any. */
export async function raiseAlert(config: Config, deployment: Pick<Deployment, 'name' | 'monitoring'>, alert: AlertInput): Promise<void> {
  const stored = await rpc<{ id: number | null; created: boolean }>(config, 'record_alert', {
    p_deployment_id: alert.deploymentId,
    p_type: alert.type,
    p_severity: alert.severity,
    p_window_key: alert.windowKey,
    p_message: alert.message,
    p_data: alert.data,
  });
  if (!stored.created || stored.id === null) return;
  log(alert.severity === 'critical' ? 'error' : 'warn', 'alert', { deploymentId: alert.deploymentId, type: alert.type, window: alert.windowKey });
  const monitoring = deployment.monitoring as Monitoring;
  if (!monitoring.webhookUrl) return;
  const result = await deliverWebhook(monitoring.webhookUrl, webhookBody(monitoring, alert, deployment.name));
  await rpc(config, 'mark_alert_delivered', { p_id: stored.id, p_attempts: result.attempts, p_delivered: result.delivered });
  if (!result.delivered) log('warn', 'alert.undelivered', { deploymentId: alert.deploymentId, type: alert.type, attempts: result.attempts });
}

const DEFAULT_BUDGET_THRESHOLDS = [80, 90, 100];

/**
 * Budget warnings (seed 004 §10.8): when a token or cost budget window crosses 80, 90 or 100 % (the
 * deployment's `monitoring.alertThresholds.tokenBudgetPercent`), an alert fires exactly once per
 * window and threshold, across all isolates (SET NX in Redis, then a unique row in Postgres).
 */
export async function checkBudgetWarnings(config: Config, redis: Redis, keys: RedisKeys, deployment: Deployment, windows: WindowState[], now: number): Promise<void> {
  const monitoring = deployment.monitoring as Monitoring;
  const thresholds = (monitoring.alertThresholds?.tokenBudgetPercent ?? DEFAULT_BUDGET_THRESHOLDS).filter((t) => t > 0).sort((a, b) => b - a);
  for (const w of windows) {
    if (w.measure === 'requests' || w.name.startsWith('user') || w.name.startsWith('session') || w.limit <= 0) continue;
    const pct = (w.used / w.limit) * 100;
    const crossed = thresholds.find((t) => pct >= t);
    if (crossed === undefined) continue;
    const windowKey = `${w.name}:${new Date(w.resetAt).toISOString()}:${crossed}`;
    const first = await redis.set(keys.budgetWarning(deployment.id, windowKey), '1', { nx: true, px: Math.max(1000, w.resetAt - now + 3_600_000) });
    if (first !== 'OK') continue;
    const what = w.measure === 'cost' ? `cost budget (${w.window})` : `token budget (${w.window})`;
    await raiseAlert(config, deployment, {
      deploymentId: deployment.id,
      type: `budget_${w.measure}_${w.window}_${crossed}`,
      severity: crossed >= 100 ? 'critical' : 'warning',
      windowKey,
      message: `${crossed}% of the ${what} used (${w.used} of ${w.limit}${w.measure === 'cost' ? ' micro-USD' : ' tokens'}).`,
      data: { used: w.used, limit: w.limit, percent: Math.round(pct), window: w.window, resetsAt: new Date(w.resetAt).toISOString() },
    }).catch((err: Error) => log('warn', 'alert.failed', { deploymentId: deployment.id, error: err.message }));
  }
}
