import { describe, expect, it } from 'vitest';
import { admin, clientConfig, createDeployment, fn, sha256, sql, stack } from './helpers';

describe('admin auth', () => {
  it.each([
    ['no header', {}],
    ['a wrong key', { authorization: 'Bearer not-the-admin-key' }],
    ['a deployment key', { authorization: 'Bearer sk_test_demoInternalAssist00000000000000' }],
    ['a non-bearer scheme', { authorization: `Basic ${stack.adminKey}` }],
  ])('answers 401 JSON for %s', async (_, headers: Record<string, string>) => {
    const res = await fetch(fn('feature-toggle', '/deployments'), { headers });
    expect(res.status).toBe(401);
    const body = await res.json();
    expect(body.error.type).toBe('authentication_error');
    expect(body.error.code).toMatch(/admin_key/);
    expect(res.headers.get('x-request-id')).toBeTruthy();
  });

  it('throttles key guessing per client address: 429 after 20 failures in a minute, even for the right key; others unaffected', async () => {
    // Addresses of this test's own (Cloudflare sets CF-Connecting-IP; clients cannot), so no other test shares the count.
    const guesser = `203.0.113.${Math.floor(Math.random() * 250) + 1}`;
    const bystander = `198.51.100.${Math.floor(Math.random() * 250) + 1}`;
    const get = (key: string, ip: string, path = '/deployments') => fetch(fn('feature-toggle', path), { headers: { authorization: `Bearer ${key}`, 'cf-connecting-ip': ip } });
    // Stay inside one minute window, so the count is not split across two.
    const s = new Date().getUTCSeconds();
    if (s >= 50) await new Promise((r) => setTimeout(r, (61 - s) * 1000));
    for (let i = 0; i < 20; i++) expect((await get(`wrong-key-${i}`, guesser)).status).toBe(401);
    const refused = await get(stack.adminKey, guesser);
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.code).toBe('too_many_failed_attempts');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await get(stack.adminKey, guesser, '/metrics')).status).toBe(429); // the metrics key shares the throttle
    expect((await get(stack.adminKey, bystander)).status).toBe(200);
  }, 60_000);
});

describe('POST /deployments', () => {
  it('creates a sandbox deployment with type defaults and shows its keys once', async () => {
    const { status, body } = await admin('POST', '/deployments', { name: 'Widget', type: 'public', allowedOrigins: ['https://shop.example.com'] });
    expect(status).toBe(201);
    expect(body.keys.publishable).toMatch(/^pk_test_[A-Za-z0-9]{32}$/);
    expect(body.keys.secret).toMatch(/^sk_test_[A-Za-z0-9]{32}$/);
    expect(body.deployment).toMatchObject({
      name: 'Widget',
      type: 'public',
      environment: 'sandbox',
      timezone: 'UTC',
      createdBy: 'admin',
      allowedOrigins: ['https://shop.example.com'],
      rateLimits: { requestsPerMinute: 10, requestsPerHour: 100, requestsPerDay: 1000, tokensPerRequest: 4000, tokensPerDay: 50000 },
      features: { inference: true, smartRouting: false },
    });
    expect(body.deployment.id).toMatch(/^[0-9a-f-]{36}$/);
    // Listed keys carry metadata only.
    expect(body.deployment.keys.map((k: { kind: string }) => k.kind).sort()).toEqual(['publishable', 'secret']);
    const listed = JSON.stringify(body.deployment);
    expect(listed).not.toContain(body.keys.secret);
    expect(listed).not.toContain(sha256(body.keys.secret));
    // Only the SHA-256 is stored.
    const db = await sql();
    const { rows } = await db.query('select key_hash, prefix, kind, environment from api_keys where deployment_id = $1 order by kind', [body.deployment.id]);
    expect(rows).toEqual([
      { key_hash: sha256(body.keys.publishable), prefix: body.keys.publishable.slice(0, 12), kind: 'publishable', environment: 'sandbox' },
      { key_hash: sha256(body.keys.secret), prefix: body.keys.secret.slice(0, 12), kind: 'secret', environment: 'sandbox' },
    ]);
    const keyText = JSON.stringify((await db.query('select * from api_keys')).rows);
    expect(keyText).not.toContain(body.keys.secret);
  });

  it('creates production deployments with live keys and internal defaults', async () => {
    const { status, body } = await admin('POST', '/deployments', { name: 'Ops', type: 'internal', environment: 'production', timezone: 'Europe/Berlin' });
    expect(status).toBe(201);
    expect(body.keys.publishable).toMatch(/^pk_live_/);
    expect(body.keys.secret).toMatch(/^sk_live_/);
    expect(body.deployment.rateLimits.requestsPerMinute).toBe(60);
    expect(body.deployment.rateLimits.tokensPerDay).toBe(500000);
    expect(body.deployment.timezone).toBe('Europe/Berlin');
  });

  it.each([
    [{ type: 'public' }, 'name'],
    [{ name: 'x', type: 'partner' }, 'type'],
    [{ name: 'x', type: 'public', environment: 'staging' }, 'environment'],
    [{ name: 'x', type: 'public', rateLimits: { requestsPerMinute: 0 } }, 'rateLimits.requestsPerMinute'],
    [{ name: 'x', type: 'public', allowedOrigins: ['not an origin'] }, 'allowedOrigins.0'],
    [{ name: 'x', type: 'public', timezone: 'Nowhere/Land' }, 'timezone'],
    [{ name: 'x', type: 'public', features: { smartRouting: 'yes' } }, 'features.smartRouting'],
    [{ name: 'x', type: 'public', monitoring: { webhookUrl: 'ftp://x' } }, 'monitoring.webhookUrl'],
    [{ name: 'x', type: 'public', color: 'blue' }, 'color'],
  ])('answers 400 naming the field for %j', async (input, param) => {
    const { status, body } = await admin('POST', '/deployments', input);
    expect(status).toBe(400);
    expect(body.error.param).toBe(param);
    expect(body.error.message).toContain(param);
    expect(body.error.type).toBe('invalid_request_error');
  });

  it('answers 400 for broken JSON and 415 for a body that is not JSON, creating nothing', async () => {
    const db = await sql();
    const count = async () => Number((await db.query('select count(*) from deployments')).rows[0].count);
    const before = await count();
    const broken = await fetch(fn('feature-toggle', '/deployments'), {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.adminKey}`, 'content-type': 'application/json' },
      body: '{"name": "x",',
    });
    expect(broken.status).toBe(400);
    expect((await broken.json()).error.code).toBe('invalid_json');
    const form = await fetch(fn('feature-toggle', '/deployments'), {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.adminKey}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=x&type=public',
    });
    expect(form.status).toBe(415);
    expect(await count()).toBe(before);
  });
});

describe('reading, changing and auditing deployments', () => {
  it('lists and gets deployments; 404 for an unknown id, 400 for a malformed one', async () => {
    const { deployment } = await createDeployment({ name: 'listed' });
    const list = await admin('GET', '/deployments?limit=500');
    expect(list.status).toBe(200);
    expect(list.body.total).toBeGreaterThanOrEqual(3);
    expect(list.body.deployments.some((d: { id: string }) => d.id === deployment.id)).toBe(true);
    const one = await admin('GET', `/deployments/${deployment.id}`);
    expect(one.status).toBe(200);
    expect(one.body.deployment.keys).toHaveLength(2);
    for (const k of one.body.deployment.keys) {
      expect(Object.keys(k).sort()).toEqual(['createdAt', 'environment', 'id', 'kind', 'lastUsedAt', 'prefix', 'revokedAt']);
    }
    expect((await admin('GET', '/deployments/00000000-0000-4000-8000-00000000ffff')).status).toBe(404);
    const bad = await admin('GET', '/deployments/not-a-uuid');
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('id');
    expect((await admin('GET', '/deployments?limit=0')).body.error.param).toBe('limit');
  });

  it('PATCH merges one level deep, bumps the version and audits the diff with the actor', async () => {
    const { deployment } = await createDeployment({ features: { custom: true } });
    const r = await admin('PATCH', `/deployments/${deployment.id}`, { features: { smartRouting: false, custom: null }, rateLimits: { requestsPerMinute: 7 } }, { 'x-inference-edge-actor': 'ops@example.com' });
    expect(r.status).toBe(200);
    expect(r.body.deployment.features.smartRouting).toBe(false);
    expect(r.body.deployment.features.inference).toBe(true);
    expect(r.body.deployment.features).not.toHaveProperty('custom');
    expect(r.body.deployment.rateLimits.requestsPerMinute).toBe(7);
    expect(r.body.deployment.rateLimits.requestsPerHour).toBe(1000);
    expect(r.body.deployment.configVersion).toBeGreaterThan(deployment.configVersion);

    const audit = await admin('GET', `/deployments/${deployment.id}/audit`);
    expect(audit.status).toBe(200);
    const [latest] = audit.body.entries;
    expect(latest).toMatchObject({
      action: 'deployment.updated',
      actor: 'admin:ops@example.com',
      source: 'api',
      diff: {
        'features.smartRouting': { old: true, new: false },
        'features.custom': { old: true, new: null },
        'rate_limits.requestsPerMinute': { old: 60, new: 7 },
      },
    });
    expect(latest.id).toEqual(expect.any(Number));
    expect(latest.createdAt).toEqual(expect.any(String));
    // Newest first.
    const ids = audit.body.entries.map((e: { id: number }) => e.id);
    expect(ids).toEqual([...ids].sort((a: number, b: number) => b - a));
    expect(audit.body.entries.at(-1).action).toBe('deployment.created');
  });

  it('refuses to move a deployment between environments and an empty patch', async () => {
    const { deployment } = await createDeployment();
    const env = await admin('PATCH', `/deployments/${deployment.id}`, { environment: 'production' });
    expect(env.status).toBe(400);
    expect(env.body.error.param).toBe('environment');
    const empty = await admin('PATCH', `/deployments/${deployment.id}`, {});
    expect(empty.status).toBe(400);
    expect((await admin('PATCH', '/deployments/00000000-0000-4000-8000-00000000ffff', { name: 'x' })).status).toBe(404);
  });

  it('a failed change leaves neither the change nor an audit row', async () => {
    const { deployment } = await createDeployment();
    const before = (await admin('GET', `/deployments/${deployment.id}/audit`)).body.entries.length;
    const r = await admin('PATCH', `/deployments/${deployment.id}`, { name: 'renamed', rateLimits: { requestsPerMinute: -5 } });
    expect(r.status).toBe(400);
    const after = await admin('GET', `/deployments/${deployment.id}`);
    expect(after.body.deployment.name).toBe(deployment.name);
    expect((await admin('GET', `/deployments/${deployment.id}/audit`)).body.entries.length).toBe(before);
  });
});

describe('key rotation and revocation', () => {
  it('rotation answers a new pair; the old pair stops on the next request; both are audited', async () => {
    const { deployment, keys: old } = await createDeployment();
    expect((await clientConfig(old.secret)).status).toBe(200);
    const r = await admin('POST', `/deployments/${deployment.id}/keys`);
    expect(r.status).toBe(201);
    expect(r.body.keys.secret).toMatch(/^sk_test_/);
    expect(r.body.keys.secret).not.toBe(old.secret);
    expect(r.body.revoked).toBe(2);
    const stale = await clientConfig(old.secret);
    expect(stale.status).toBe(401);
    expect(stale.body.error.code).toBe('revoked_api_key');
    expect((await clientConfig(r.body.keys.secret)).status).toBe(200);
    const actions = (await admin('GET', `/deployments/${deployment.id}/audit`)).body.entries.map((e: { action: string }) => e.action);
    expect(actions.filter((a: string) => a === 'key.revoked')).toHaveLength(2);
    expect(actions.filter((a: string) => a === 'key.created')).toHaveLength(4);
  });

  it('revocation stops a warm key on the very next request', async () => {
    const { deployment, keys } = await createDeployment();
    for (let i = 0; i < 3; i++) expect((await clientConfig(keys.secret)).status).toBe(200); // warm every cache
    const secretKey = deployment.keys.find((k) => k.kind === 'secret')!;
    const r = await admin('DELETE', `/deployments/${deployment.id}/keys/${secretKey.id}`);
    expect(r.status).toBe(200);
    expect(r.body.key.revokedAt).toEqual(expect.any(String));
    expect((await clientConfig(keys.secret)).status).toBe(401);
    const again = await admin('DELETE', `/deployments/${deployment.id}/keys/${secretKey.id}`);
    expect(again.status).toBe(200); // idempotent
    expect((await admin('DELETE', `/deployments/${deployment.id}/keys/00000000-0000-4000-8000-00000000ffff`)).status).toBe(404);
  });
});
