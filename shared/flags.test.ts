import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bucketOf, constraintHolds, evaluateFlag, murmur3, type FlagConfig, type FlagContext } from './flags';

/**
 * The published Unleash client-specification vectors (test/fixtures/unleash, Apache-2.0), mapped to
 * our flag model: gradual rollout by userId / sessionId, flexible rollout, strategy constraints and
 * operators (semver included), and variants. Features with several strategies are outside our model
 * (one rollout per flag) and are skipped.
 */
interface UnleashStrategy {
  name: string;
  parameters?: Record<string, string>;
  constraints?: { contextName: string; operator: string; values?: string[]; value?: string; inverted?: boolean; caseInsensitive?: boolean }[];
}
interface UnleashFeature {
  name: string;
  enabled: boolean;
  strategies: UnleashStrategy[];
  variants?: { name: string; weight: number; payload?: { type: string; value: string }; stickiness?: string }[];
}
interface Spec {
  state: { features: UnleashFeature[] };
  tests?: { description: string; context: Record<string, unknown>; toggleName: string; expectedResult: boolean }[];
  variantTests?: { description: string; context: Record<string, unknown>; toggleName: string; expectedResult: { name: string; enabled: boolean; payload?: unknown } }[];
}

function toFlag(f: UnleashFeature): FlagConfig | null {
  if (f.strategies.length > 1) return null;
  const s = f.strategies[0];
  const flag: FlagConfig = { enabled: f.enabled, groupId: f.name };
  if (f.variants?.length) flag.variants = f.variants;
  if (!s) return flag;
  const p = s.parameters ?? {};
  if (s.constraints?.length) flag.constraints = s.constraints;
  switch (s.name) {
    case 'default':
      return flag;
    case 'gradualRolloutUserId':
      return { ...flag, rolloutPercentage: Number(p.percentage), stickiness: 'userId', groupId: p.groupId ?? f.name };
    case 'gradualRolloutSessionId':
      return { ...flag, rolloutPercentage: Number(p.percentage), stickiness: 'sessionId', groupId: p.groupId ?? f.name };
    case 'flexibleRollout':
      return { ...flag, rolloutPercentage: Number(p.rollout), stickiness: p.stickiness ?? 'default', groupId: p.groupId || f.name };
    default:
      return null;
  }
}

function toContext(c: Record<string, unknown>): FlagContext {
  const properties = { ...((c.properties as Record<string, string>) ?? {}) };
  for (const [k, v] of Object.entries(c)) if (!['userId', 'sessionId', 'properties', 'currentTime'].includes(k) && typeof v === 'string') properties[k] = v;
  return { userId: c.userId as string | undefined, sessionId: c.sessionId as string | undefined, currentTime: c.currentTime as string | undefined, properties };
}

const FILES = ['03-gradual-rollout-user-id-strategy', '04-gradual-rollout-session-id-strategy', '10-flexible-rollout-strategy', '09-strategy-constraints', '13-constraint-operators', '14-constraint-semver-operators', '08-variants'];

describe('Unleash client-specification vectors', () => {
  let ran = 0;
  for (const file of FILES) {
    const spec = JSON.parse(readFileSync(new URL(`../test/fixtures/unleash/${file}.json`, import.meta.url), 'utf8')) as Spec;
    const flags = new Map(spec.state.features.map((f) => [f.name, toFlag(f)]));
    describe(file, () => {
      for (const t of spec.tests ?? []) {
        const flag = flags.get(t.toggleName);
        if (flag === null) continue; // several strategies: outside our model
        it(t.description, () => {
          ran++;
          expect(evaluateFlag(t.toggleName, flag ?? false, toContext(t.context), { random: () => 0.5 }).enabled).toBe(t.expectedResult);
        });
      }
      for (const t of spec.variantTests ?? []) {
        const flag = flags.get(t.toggleName);
        if (flag === null) continue;
        it(`variant: ${t.description}`, () => {
          ran++;
          const r = evaluateFlag(t.toggleName, flag ?? false, toContext(t.context), { random: () => 0.5 });
          if (!t.expectedResult.enabled) expect(r.variant).toBeUndefined();
          else expect({ name: r.variant, payload: r.payload }).toEqual({ name: t.expectedResult.name, payload: t.expectedResult.payload });
        });
      }
    });
  }
  it('ran a meaningful number of vectors', () => expect(ran).toBeGreaterThan(60));
});

describe('sticky rollout', () => {
  it('murmur3 matches reference values', () => {
    expect(murmur3('', 0)).toBe(0);
    expect(murmur3('hello', 0)).toBe(0x248bfa47);
    expect(murmur3('Hello, world!', 1234)).toBe(0xfaf6cdb3);
  });

  it('50 % over 1,000 users: 45–55 % enabled, the same answer twice, and 60 % keeps every user of 50 %', () => {
    const users = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
    const at = (pct: number) => users.map((u) => evaluateFlag('smartRouting', { enabled: true, rolloutPercentage: pct }, { userId: u }).enabled);
    const half = at(50);
    const share = half.filter(Boolean).length / users.length;
    expect(share).toBeGreaterThanOrEqual(0.45);
    expect(share).toBeLessThanOrEqual(0.55);
    expect(at(50)).toEqual(half);
    const sixty = at(60);
    half.forEach((on, i) => on && expect(sixty[i]).toBe(true));
    expect(bucketOf('user-1', 'smartRouting')).toBeGreaterThanOrEqual(1);
  });

  it('cohorts, the kill switch and env overrides', () => {
    const flag = { enabled: true, cohorts: ['internal', 'qa'] };
    expect(evaluateFlag('beta', flag, { properties: { cohort: 'qa' } }).enabled).toBe(true);
    expect(evaluateFlag('beta', flag, { properties: { cohort: 'ga' } }).enabled).toBe(false);
    expect(evaluateFlag('beta', true, {}, { killSwitch: true })).toEqual({ enabled: false, reason: 'KILL_SWITCH' });
    expect(evaluateFlag('smartRouting', false, {}, { env: { FEATURE_FLAG_SMART_ROUTING_ENABLED: 'true' } })).toEqual({ enabled: true, reason: 'ENV_OVERRIDE' });
    expect(evaluateFlag('smartRouting', true, { userId: 'u' }, { env: { FEATURE_FLAG_SMART_ROUTING_ROLLOUT: '0' } }).enabled).toBe(false);
  });

  it('unknown operators are false; inverted flips', () => {
    expect(constraintHolds({ contextName: 'x', operator: 'REGEX_MAGIC', values: ['a'] }, { properties: { x: 'a' } })).toBe(false);
    expect(constraintHolds({ contextName: 'x', operator: 'IN', values: ['a'], inverted: true }, { properties: { x: 'a' } })).toBe(false);
    expect(constraintHolds({ contextName: 'currentTime', operator: 'DATE_AFTER', value: '2026-01-01T00:00:00Z' }, {}, () => Date.parse('2026-06-01T00:00:00Z'))).toBe(true);
  });
});
