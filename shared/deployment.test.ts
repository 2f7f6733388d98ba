import { describe, expect, it } from 'vitest';
import { createDeploymentSchema, originAllowed, updateDeploymentSchema, withTypeDefaults } from './deployment';

describe('deployment input', () => {
  it('fills the defaults of seed 004 §10.4 by type', () => {
    const pub = withTypeDefaults(createDeploymentSchema.parse({ name: 'w', type: 'public' }));
    expect(pub.rateLimits).toEqual({ requestsPerMinute: 10, requestsPerHour: 100, requestsPerDay: 1000, tokensPerRequest: 4000, tokensPerDay: 50000 });
    expect(pub.environment).toBe('sandbox');
    expect(pub.timezone).toBe('UTC');
    const internal = withTypeDefaults(createDeploymentSchema.parse({ name: 'i', type: 'internal', rateLimits: { requestsPerMinute: 5 } }));
    expect(internal.rateLimits).toEqual({ requestsPerMinute: 5, requestsPerHour: 1000, requestsPerDay: 10000, tokensPerRequest: 16000, tokensPerDay: 500000 });
  });

  it('refuses bad fields, naming them', () => {
    const cases: [unknown, string][] = [
      [{ type: 'public' }, 'name'],
      [{ name: 'x', type: 'partner' }, 'type'],
      [{ name: 'x', type: 'public', rateLimits: { requestsPerMinute: -1 } }, 'rateLimits.requestsPerMinute'],
      [{ name: 'x', type: 'public', rateLimits: { requestsPerFortnight: 3 } }, 'rateLimits'],
      [{ name: 'x', type: 'public', allowedOrigins: ['https://a.com/path'] }, 'allowedOrigins.0'],
      [{ name: 'x', type: 'public', timezone: 'Mars/Olympus' }, 'timezone'],
      [{ name: 'x', type: 'public', surprise: true }, ''],
    ];
    for (const [input, path] of cases) {
      const r = createDeploymentSchema.safeParse(input);
      expect(r.success, JSON.stringify(input)).toBe(false);
      expect(r.error!.issues[0]!.path.join('.')).toBe(path);
    }
  });

  it('validates routing on create and per key on patch', () => {
    const ok = { tiers: { main: { targets: [{ provider: 'openai', model: 'gpt-4o-mini' }] } } };
    expect(createDeploymentSchema.safeParse({ name: 'x', type: 'public', routing: ok }).success).toBe(true);
    const bad = createDeploymentSchema.safeParse({ name: 'x', type: 'public', routing: { tiers: { main: { targets: [{ provider: 'Open AI', model: 'x' }] } } } });
    expect(bad.error!.issues[0]!.path.join('.')).toBe('routing.tiers.main.targets.0.provider');
    expect(updateDeploymentSchema.safeParse({ routing: ok }).success).toBe(true);
    expect(updateDeploymentSchema.safeParse({ routing: { defaultTier: null } }).success).toBe(true);
    const badPatch = updateDeploymentSchema.safeParse({ routing: { tiers: { main: { targets: [] } } } });
    expect(badPatch.error!.issues[0]!.path.join('.')).toBe('routing.tiers.main.targets');
    expect(updateDeploymentSchema.safeParse({ routing: { colour: 'blue' } }).error!.issues[0]!.path.join('.')).toBe('routing.colour');
  });

  it('accepts a merge patch and refuses an empty one', () => {
    expect(updateDeploymentSchema.safeParse({ features: { smartRouting: true, old: null } }).success).toBe(true);
    expect(updateDeploymentSchema.safeParse({ rateLimits: { requestsPerMinute: null } }).success).toBe(true);
    expect(updateDeploymentSchema.safeParse({ rateLimits: { requestsPerMinute: 0 } }).success).toBe(false);
    expect(updateDeploymentSchema.safeParse({}).success).toBe(false);
  });
});

describe('originAllowed', () => {
  const allowed = ['https://app.example.com', 'https://*.example.org', 'http://localhost:5173'];
  it.each([
    ['https://app.example.com', true],
    ['https://APP.example.com', true],
    ['http://app.example.com', false],
    ['https://app.example.com.evil.io', false],
    ['https://a.example.org', true],
    ['https://a.b.example.org', true],
    ['https://example.org', false],
    ['https://evilexample.org', false],
    ['http://localhost:5173', true],
    ['http://localhost:5174', false],
    ['null', false],
  ])('%s → %s', (origin, expected) => {
    expect(originAllowed(origin, allowed)).toBe(expected);
  });
  it('* allows any origin', () => expect(originAllowed('https://x.io', ['*'])).toBe(true));
});
