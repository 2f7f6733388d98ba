import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OpenFeature } from '@openfeature/server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../local/stack';
import { admin, createDeployment, eventually, fn, proxyChat, sql, stack, type ProxyCallOptions } from './helpers';

const chat = (key: string, body: object = {}, opts?: ProxyCallOptions) => proxyChat(key, { model: 'auto', messages: [{ role: 'user', content: 'hi!' }], ...body }, opts);

describe('feature admin API', () => {
  it('PUT a flag: audited with actor and diff, broadcast, and effective on the next proxied call', async () => {
    const { deployment, keys } = await createDeployment({ type: 'internal' });
    expect((await chat(keys.secret)).headers.get('x-inference-edge-route-reason')).toMatch(/^smart:/);
    const r = await admin('PUT', `/deployments/${deployment.id}/features/smartRouting`, { enabled: false }, { 'x-inference-edge-actor': 'pm@example.com' });
    expect(r.status).toBe(200);
    expect(r.body.value).toEqual({ enabled: false });
    expect((await chat(keys.secret)).headers.get('x-inference-edge-route-reason')).toBe('auto:default');
    const audit = (await admin('GET', `/deployments/${deployment.id}/audit`)).body.entries[0];
    expect(audit).toMatchObject({ action: 'feature.updated', actor: 'admin:pm@example.com', diff: { 'features.smartRouting': { old: true, new: { enabled: false } } } });
    const broadcasts = await (await fetch(`${stack.supabaseUrl}/_test/broadcasts`)).json();
    expect(broadcasts).toContainEqual({ topic: 'deployment-updates', event: 'feature_toggle', payload: { deploymentId: deployment.id, feature: 'smartRouting', enabled: false } });
    expect((await admin('GET', `/deployments/${deployment.id}/features`)).body.features.smartRouting).toEqual({ enabled: false });
  });

  it('rolls a built-in flag out by percentage, sticky per user', async () => {
    const { deployment, keys } = await createDeployment({ type: 'internal' });
    await admin('PUT', `/deployments/${deployment.id}/features/smartRouting`, { enabled: true, rolloutPercentage: 50 });
    const reasons = new Map<string, string>();
    for (let i = 0; i < 20; i++) reasons.set(`u${i}`, (await chat(keys.secret, { user: `u${i}` })).headers.get('x-inference-edge-route-reason')!);
    const smart = [...reasons.values()].filter((r) => r.startsWith('smart:')).length;
    expect(smart).toBeGreaterThan(2);
    expect(smart).toBeLessThan(18);
    for (const [u, reason] of [...reasons].slice(0, 5)) expect((await chat(keys.secret, { user: u })).headers.get('x-inference-edge-route-reason')).toBe(reason);
    // Every evaluation is counted for feature_flag_usage_total{flag,variant,enabled}.
    const { Redis } = await import('ioredis');
    const redis = new Redis(stack.redisUrl);
    const read = () => redis.hgetall(`${stack.keyPrefix}:flag-usage:${deployment.id}`);
    await eventually(async () => {
      const c = await read();
      expect(Number(c['smartRouting||true'] ?? 0) + Number(c['smartRouting||false'] ?? 0)).toBe(25);
    });
    const counts = await read();
    redis.disconnect();
    expect(Number(counts['smartRouting||true'])).toBe(smart + [...reasons].slice(0, 5).filter(([, r]) => r.startsWith('smart:')).length);
  });

  it('refuses a malformed flag, naming the field', async () => {
    const { deployment } = await createDeployment({ type: 'internal' });
    const r = await admin('PUT', `/deployments/${deployment.id}/features/smartRouting`, { enabled: true, rolloutPercentage: 150 });
    expect(r.status).toBe(400);
    const bad = await admin('PUT', `/deployments/${deployment.id}/features/bad flag`, { enabled: true });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('flag');
  });

  it('applies a preset and reverts a change in one click', async () => {
    const { deployment } = await createDeployment({ type: 'public' });
    const p = await admin('POST', `/deployments/${deployment.id}/presets/healthcare`);
    expect(p.status).toBe(200);
    expect(p.body.features).toMatchObject({ piiRedaction: true, medicalImagingEnabled: true, smartRouting: true });
    const [presetEntry] = (await admin('GET', `/deployments/${deployment.id}/audit`)).body.entries;
    expect(presetEntry.action).toBe('preset.healthcare');
    const rev = await admin('POST', `/deployments/${deployment.id}/revert/${presetEntry.id}`);
    expect(rev.status).toBe(200);
    expect(rev.body.deployment.features.smartRouting).toBe(false);
    expect(rev.body.deployment.features).not.toHaveProperty('medicalImagingEnabled');
    expect((await admin('GET', `/deployments/${deployment.id}/audit`)).body.entries[0].action).toBe('deployment.reverted');
    expect((await admin('POST', `/deployments/${deployment.id}/presets/turbo`)).status).toBe(400);
    const firstKeyEvent = (await admin('GET', `/deployments/${deployment.id}/audit`)).body.entries.find((e: { action: string }) => e.action === 'key.created');
    expect((await admin('POST', `/deployments/${deployment.id}/revert/${firstKeyEvent.id}`)).status).toBe(400);
  });

  it('a flag named like an application feature is that feature\'s kill switch on the proxy', async () => {
    const { deployment, keys } = await createDeployment({ type: 'internal', features: { summary: true, riskAlerts: { enabled: true, rolloutPercentage: 0 } } });
    const tagged = (feature: string) => chat(keys.secret, {}, { headers: { 'x-inference-edge-feature': feature } });
    expect((await tagged('summary')).status).toBe(200);
    expect((await admin('PUT', `/deployments/${deployment.id}/features/summary`, { enabled: false })).status).toBe(200);
    const off = await tagged('summary');
    expect(off.status).toBe(503);
    expect(off.json.error.code).toBe('feature_disabled');
    expect(off.headers.get('x-inference-edge-kill-switch')).toBe('feature');
    // The same through metadata.feature; a rollout at 0 % is off for everyone.
    expect((await chat(keys.secret, { metadata: { feature: 'summary' } })).status).toBe(503);
    expect((await tagged('riskAlerts')).status).toBe(503);
    // Calls for other features, for features without a flag, and untagged calls go on.
    expect((await tagged('chat')).status).toBe(200);
    expect((await chat(keys.secret)).status).toBe(200);
    // A built-in flag's name is not an application feature: streaming off does not refuse a JSON call tagged "streaming".
    await admin('PUT', `/deployments/${deployment.id}/features/streaming`, { enabled: false });
    expect((await tagged('streaming')).status).toBe(200);
    const bad = await tagged('not a feature!');
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe('x-inference-edge-feature');
    expect((await admin('PUT', `/deployments/${deployment.id}/features/summary`, { enabled: true })).status).toBe(200);
    expect((await tagged('summary')).status).toBe(200);
  });

  it('a psql UPDATE that turns a flag off changes the very next call, audited; revert brings it back', async () => {
    const db = await sql();
    const { deployment, keys } = await createDeployment({ type: 'internal' });
    expect((await chat(keys.secret)).status).toBe(200);
    await db.query(`update deployments set features = features || '{"inference": false}' where id = $1`, [deployment.id]);
    const { rows } = await db.query(`select id, diff from audit_logs where deployment_id = $1 order by id desc limit 1`, [deployment.id]);
    expect(rows[0].diff).toEqual({ 'features.inference': { old: true, new: false } });
    // "Very next call": the relay carries the change within the local stack's polling interval (100 ms).
    await eventually(async () => expect((await chat(keys.secret)).status).toBe(503));
    expect((await admin('POST', `/deployments/${deployment.id}/revert/${rows[0].id}`)).status).toBe(200);
    expect((await chat(keys.secret)).status).toBe(200);
  });

  it('previews a caller (POST /deployments/:id/evaluate) with the proxy\'s evaluation: cohorts, rollouts, reasons; refuses a bad context', async () => {
    const { deployment } = await createDeployment({
      type: 'internal',
      features: { beta: { enabled: true, cohorts: ['internal', 'qa'] }, half: { enabled: true, rolloutPercentage: 50 }, off: false },
    });
    const preview = async (body: object) => (await admin('POST', `/deployments/${deployment.id}/evaluate`, body)).body.flags;
    expect((await preview({ userId: 'u1', properties: { cohort: 'qa' } })).beta).toMatchObject({ enabled: true });
    expect((await preview({ userId: 'u1', properties: { cohort: 'ga' } })).beta).toMatchObject({ enabled: false });
    expect((await preview({ userId: 'u1' })).off).toMatchObject({ enabled: false, reason: 'DISABLED' });
    // Sticky: the same user gets the same answer as shared/flags.ts computes, whatever the order of calls.
    const { evaluateFlag } = await import('../shared/flags');
    for (const userId of ['a', 'b', 'c', 'd']) expect((await preview({ userId })).half.enabled).toBe(evaluateFlag('half', { enabled: true, rolloutPercentage: 50 }, { userId }).enabled);
    const bad = await admin('POST', `/deployments/${deployment.id}/evaluate`, { userId: 'u1', properties: { 'bad key!': 'x' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toMatch(/^properties/);
    expect((await admin('POST', `/deployments/${deployment.id}/evaluate`, { userId: 'u1', extra: true })).status).toBe(400);
  });

  it('embed and SDK config never carry a secret key', async () => {
    const { deployment, keys } = await createDeployment({ type: 'public' });
    const embed = await admin('GET', `/deployments/${deployment.id}/embed?publishableKey=${keys.publishable}`);
    expect(embed.status).toBe(200);
    expect(embed.body.snippet).toContain(keys.publishable);
    expect(embed.body.snippet).toContain(deployment.id);
    const sdk = await admin('GET', `/deployments/${deployment.id}/sdk-config`);
    expect(sdk.body).toMatchObject({ deploymentId: deployment.id, apiKeyEnv: 'INFERENCE_EDGE_API_KEY' });
    for (const body of [embed.body, sdk.body]) {
      expect(JSON.stringify(body)).not.toContain(keys.secret);
      expect(JSON.stringify(body)).not.toMatch(/sk_(test|live)_[A-Za-z0-9]{32}/);
    }
    expect((await admin('GET', `/deployments/${deployment.id}/embed?publishableKey=${keys.secret}`)).status).toBe(400);
  });
});

describe('seed 003 API', () => {
  it('lists, checks per user and per user in bulk; changes with the admin key', async () => {
    const { deployment, keys } = await createDeployment({ type: 'internal', features: { summary: { enabled: true, rolloutPercentage: 50 } } });
    const get = (path: string) => fetch(fn('feature-toggle', path), { headers: { authorization: `Bearer ${keys.secret}` } }).then((r) => r.json());
    expect((await get('/api/v1/feature-flags')).flags.summary).toEqual({ enabled: true, rolloutPercentage: 50 });
    const check = await get('/api/v1/feature-flags/check/summary?user_id=u-1');
    expect(check).toMatchObject({ flag: 'summary', enabled: expect.any(Boolean), user_id: 'u-1' });
    expect((await get('/api/v1/feature-flags/user/u-1')).flags.summary).toBe(check.enabled);
    const put = await admin('PUT', `/api/v1/feature-flags/summary?deployment_id=${deployment.id}`, { enabled: false });
    expect(put.status).toBe(200);
    expect((await get('/api/v1/feature-flags/check/summary?user_id=u-1')).enabled).toBe(false);
    expect((await admin('POST', `/api/v1/feature-flags/refresh?deployment_id=${deployment.id}`)).body.refreshed).toBe(true);
  });
});

describe('OFREP with the OpenFeature SDK', () => {
  it('evaluates a deployment\'s flags for a context, single and bulk (with ETag / 304)', async () => {
    const { deployment, keys } = await createDeployment({
      type: 'public',
      features: {
        newChat: { enabled: true, constraints: [{ contextName: 'plan', operator: 'IN', values: ['pro'] }] },
        theme: { enabled: true, variants: [{ name: 'dark', weight: 1, payload: { type: 'string', value: 'dark' } }] },
      },
    });
    OpenFeature.setProvider(deployment.id, new OFREPProvider({ baseUrl: fn('feature-toggle'), headers: [['Authorization', `Bearer ${keys.publishable}`]] }));
    const client = OpenFeature.getClient(deployment.id);
    expect(await client.getBooleanValue('newChat', false, { targetingKey: 'user-1', plan: 'pro' })).toBe(true);
    expect(await client.getBooleanValue('newChat', true, { targetingKey: 'user-1', plan: 'free' })).toBe(false);
    const details = await client.getBooleanDetails('missingFlag', true, { targetingKey: 'user-1' });
    expect(details.value).toBe(true);
    expect(details.errorCode).toBe('FLAG_NOT_FOUND');
    const theme = await client.getBooleanDetails('theme', false, { targetingKey: 'user-1' });
    expect(theme.variant).toBe('dark');

    const bulk = (headers: Record<string, string> = {}) => fetch(fn('feature-toggle', '/ofrep/v1/evaluate/flags'), {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.publishable}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ context: { targetingKey: 'user-1', plan: 'pro' } }),
    });
    const first = await bulk();
    expect(first.status).toBe(200);
    const flags = (await first.json()).flags as { key: string; value: boolean }[];
    expect(Object.fromEntries(flags.map((f) => [f.key, f.value]))).toMatchObject({ newChat: true, theme: true, inference: true });
    const etag = first.headers.get('etag')!;
    expect((await bulk({ 'if-none-match': etag })).status).toBe(304);
    await admin('PUT', `/deployments/${deployment.id}/features/newChat`, { enabled: false });
    expect((await bulk({ 'if-none-match': etag })).status).toBe(200);
  });
});

describe('the global kill switch turns every flag off (a stack of its own)', () => {
  let own: Stack;
  beforeAll(async () => {
    own = await startStack({ port: 0, databaseUrl: stack.databaseUrl, redisUrl: stack.redisUrl, keyPrefix: `${stack.keyPrefix}_ks2`, adminKey: stack.adminKey, quiet: true });
  }, 60_000);
  afterAll(async () => {
    await own?.stop();
  });

  it('POST /kill-switch {enabled:false}: the next proxied call is 503 and OFREP says off; re-enabling restores both', async () => {
    const adminCall = (body: unknown) => fetch(`${own.functionUrl('feature-toggle')}/kill-switch`, { method: 'POST', headers: { authorization: `Bearer ${stack.adminKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const ofrep = () => fetch(`${own.functionUrl('feature-toggle')}/ofrep/v1/evaluate/flags/inference`, { method: 'POST', headers: { authorization: 'Bearer sk_test_demoInternalAssist00000000000000', 'content-type': 'application/json' }, body: '{}' }).then((r) => r.json());
    try {
      expect((await adminCall({ enabled: false })).status).toBe(200);
      expect((await chat('sk_test_demoInternalAssist00000000000000', { model: 'flash' }, { base: own.url })).status).toBe(503);
      expect((await ofrep()).value).toBe(false);
    } finally {
      await adminCall({ enabled: true });
    }
    expect((await chat('sk_test_demoInternalAssist00000000000000', { model: 'flash' }, { base: own.url })).status).toBe(200);
    expect((await ofrep()).value).toBe(true);
  });
});
