import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { admin, clientConfig, createDeployment, eventually, sha256, sql } from './helpers';

const DEMO_PUBLIC_SK = 'sk_test_demoPublicWidget0000000000000000';
const DEMO_PUBLIC_PK = 'pk_test_demoPublicWidget0000000000000000';

/** A key inserted over SQL is seen by the next request; it must be refused with 403 and `code`. */
async function expectRefused(key: string, code: string) {
  const r = await eventually(async () => {
    const res = await clientConfig(key);
    expect(res.status).toBe(403);
    return res;
  });
  expect(r.body.error.code).toBe(code);
}

describe('deployment key auth', () => {
  it('resolves a secret key to its deployment', async () => {
    const r = await clientConfig(DEMO_PUBLIC_SK);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ deploymentId: '00000000-0000-4000-8000-000000000001', keyKind: 'secret', environment: 'sandbox' });
    expect(JSON.stringify(r.body)).not.toMatch(/sk_|pk_/);
  });

  it.each([
    ['no key', {}, 401, 'missing_api_key'],
    ['a malformed key', { authorization: 'Bearer hello' }, 401, 'invalid_api_key'],
    ['an unknown key', { authorization: `Bearer sk_test_${'Z'.repeat(32)}` }, 401, 'invalid_api_key'],
  ])('refuses %s', async (_, headers: Record<string, string>, status, code) => {
    const res = await fetch(`${(await import('./helpers')).fn('feature-toggle', '/client/config')}`, { headers });
    expect(res.status).toBe(status);
    expect((await res.json()).error.code).toBe(code);
  });

  it('accepts a publishable key only from an allowed origin', async () => {
    const none = await clientConfig(DEMO_PUBLIC_PK);
    expect(none.status).toBe(403);
    expect(none.body.error.code).toBe('origin_not_allowed');
    const wrong = await clientConfig(DEMO_PUBLIC_PK, { origin: 'https://evil.example' });
    expect(wrong.status).toBe(403);
    const ok = await clientConfig(DEMO_PUBLIC_PK, { origin: 'http://localhost:5173' });
    expect(ok.status).toBe(200);
    expect(ok.body.keyKind).toBe('publishable');
    expect(ok.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
  });

  it('answers a CORS preflight for client routes', async () => {
    const { fn } = await import('./helpers');
    const res = await fetch(fn('feature-toggle', '/client/config'), {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
  });

  it('keeps sandbox keys off production deployments and the reverse', async () => {
    const db = await sql();
    const prod = await createDeployment({ environment: 'production' });
    const sandbox = await createDeployment({ environment: 'sandbox' });
    expect((await clientConfig(prod.keys.secret)).status).toBe(200);
    // A sandbox-shaped key smuggled onto the production deployment (direct SQL) is refused...
    const smuggledTest = `sk_test_${randomBytes(24).toString('base64url').replace(/[-_]/g, 'a').slice(0, 32)}`;
    await db.query(`insert into api_keys (deployment_id, kind, key_hash, prefix, environment) values ($1, 'secret', $2, $3, 'sandbox')`, [prod.deployment.id, sha256(smuggledTest), smuggledTest.slice(0, 12)]);
    await expectRefused(smuggledTest, 'environment_mismatch');
    // ...even when its row claims the production environment.
    const smuggledLabelled = `sk_test_${'Q'.repeat(32)}`;
    await db.query(`insert into api_keys (deployment_id, kind, key_hash, prefix, environment) values ($1, 'secret', $2, $3, 'production')`, [prod.deployment.id, sha256(smuggledLabelled), smuggledLabelled.slice(0, 12)]);
    await expectRefused(smuggledLabelled, 'environment_mismatch');
    // And a live key on a sandbox deployment.
    const live = `sk_live_${'L'.repeat(32)}`;
    await db.query(`insert into api_keys (deployment_id, kind, key_hash, prefix, environment) values ($1, 'secret', $2, $3, 'production')`, [sandbox.deployment.id, sha256(live), live.slice(0, 12)]);
    await expectRefused(live, 'environment_mismatch');
  });
});

describe('direct database edits reach the next request', () => {
  it('an UPDATE deployments SET features issued over SQL is audited and served within 1 s', async () => {
    const db = await sql();
    const { deployment, keys } = await createDeployment();
    expect((await clientConfig(keys.secret)).body.features.smartRouting).toBe(true); // warm caches
    await db.query(`update deployments set features = jsonb_set(features, '{smartRouting}', 'false') where id = $1`, [deployment.id]);
    await eventually(async () => {
      expect((await clientConfig(keys.secret)).body.features.smartRouting).toBe(false);
    }, 1_000, 25);
    const audit = await admin('GET', `/deployments/${deployment.id}/audit`);
    expect(audit.body.entries[0]).toMatchObject({ action: 'deployment.updated', source: 'sql', diff: { 'features.smartRouting': { old: true, new: false } } });
  });

  it('a key revoked over SQL stops working within 1 s', async () => {
    const db = await sql();
    const { keys } = await createDeployment();
    expect((await clientConfig(keys.secret)).status).toBe(200);
    await db.query('update api_keys set revoked_at = now() where key_hash = $1', [sha256(keys.secret)]);
    await eventually(async () => {
      expect((await clientConfig(keys.secret)).status).toBe(401);
    }, 1_000, 25);
  });

  it('a deleted deployment takes its keys with it', async () => {
    const db = await sql();
    const { deployment, keys } = await createDeployment();
    expect((await clientConfig(keys.secret)).status).toBe(200);
    await db.query('delete from deployments where id = $1', [deployment.id]);
    await eventually(async () => {
      expect((await clientConfig(keys.secret)).status).toBe(401);
    }, 1_000, 25);
    const { rows } = await db.query(`select action from audit_logs where deployment_id = $1 order by id desc limit 1`, [deployment.id]);
    expect(rows[0].action).toBe('key.deleted');
  });
});
