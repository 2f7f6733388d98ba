import { describe, expect, it } from 'vitest';
import { createDeployment, fn, sql, stack } from './helpers';

const adminHeaders = { authorization: `Bearer ${stack.adminKey}` };

describe('daily-report', () => {
  it('summarises one UTC day of usage events in SQL, and a rerun replaces the report', async () => {
    const db = await sql();
    const { deployment } = await createDeployment({ name: 'report subject' });
    const { deployment: quiet } = await createDeployment({ name: 'report quiet' });
    const day = '2026-03-10';
    const rows: [string, string, string, number, number, number, number, number][] = [
      // request id, time, model, tokens in, tokens out, cost, latency, status
      ['r1', `${day}T00:00:00Z`, 'gpt-4o-mini', 100, 50, 0.001, 100, 200],
      ['r2', `${day}T12:00:00Z`, 'gpt-4o-mini', 200, 100, 0.002, 300, 200],
      ['r3', `${day}T23:59:59.999Z`, 'claude-3-5-haiku', 10, 5, 0.0005, 500, 502],
      ['r4', '2026-03-11T00:00:00Z', 'gpt-4o-mini', 999, 999, 9, 999, 200], // next day: excluded
      ['r5', '2026-03-09T23:59:59Z', 'gpt-4o-mini', 999, 999, 9, 999, 200], // previous day: excluded
    ];
    for (const [id, at, model, tin, tout, cost, latency, status] of rows) {
      await db.query(
        `insert into usage_events (request_id, created_at, deployment_id, model, feature, tokens_in, tokens_out, cost_usd, latency_ms, status)
         values ($1, $2, $3, $4, 'chat', $5, $6, $7, $8, $9)`,
        [`${deployment.id}-${id}`, at, deployment.id, model, tin, tout, cost, latency, status],
      );
    }
    const run = async () => fetch(fn('daily-report', `/run?date=${day}`), { method: 'POST', headers: adminHeaders });
    expect((await run()).status).toBe(200);
    expect((await run()).status).toBe(200);
    const { rows: stored } = await db.query('select count(*)::int as n from daily_reports where report_date = $1', [day]);
    expect(stored[0].n).toBe(1);

    const report = await (await fetch(fn('daily-report', `/reports/${day}`), { headers: adminHeaders })).json();
    const mine = report.summary.deployments.find((d: { deploymentId: string }) => d.deploymentId === deployment.id);
    expect(mine).toMatchObject({
      deploymentName: 'report subject',
      requests: 3,
      tokensUsed: 465,
      costEstimate: 0.0035,
      avgLatency: 300,
      errorRate: 0.333333,
      topModels: [{ model: 'gpt-4o-mini', usage: 2 }, { model: 'claude-3-5-haiku', usage: 1 }],
      topFeatures: [{ feature: 'chat', usage: 3 }],
      costByModel: { 'gpt-4o-mini': 0.003, 'claude-3-5-haiku': 0.0005 },
    });
    const idle = report.summary.deployments.find((d: { deploymentId: string }) => d.deploymentId === quiet.id);
    expect(idle).toMatchObject({ requests: 0, tokensUsed: 0, costEstimate: 0, errorRate: 0, topModels: [] });
    expect(report.summary.totals.totalRequests).toBe(3);
  });

  it('runs from its cron trigger and refuses bad input', async () => {
    const bad = await fetch(fn('daily-report', '/run?date=2026-13-45'), { method: 'POST', headers: adminHeaders });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.param).toBe('date');
    expect((await fetch(fn('daily-report', '/run'), { method: 'POST' })).status).toBe(401);
    const none = await fetch(fn('daily-report', '/reports/1999-01-01'), { headers: adminHeaders });
    expect(none.status).toBe(404);
  });
});
