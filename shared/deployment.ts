import * as z from 'zod/mini';
import type { Environment } from './api-keys';
import { routingSchema } from './routing';

export const DEPLOYMENT_TYPES = ['public', 'internal', 'hybrid'] as const;
export type DeploymentType = (typeof DEPLOYMENT_TYPES)[number];

/** A deployment as the SQL functions return it (camelCase JSON). */
export interface Deployment {
  id: string;
  name: string;
  type: DeploymentType;
  environment: Environment;
  features: Record<string, unknown>;
  rateLimits: RateLimits;
  budgets: Record<string, unknown>;
  routing: Record<string, unknown>;
  allowedOrigins: string[];
  monitoring: Record<string, unknown>;
  timezone: string;
  configVersion: number;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

const count = z.optional(z.int().check(z.positive()));

export const rateLimitsSchema = z.strictObject({
  requestsPerMinute: count,
  requestsPerHour: count,
  requestsPerDay: count,
  tokensPerRequest: count,
  tokensPerDay: count,
  userRequestsPerMinute: count,
  userTokensPerDay: count,
  sessionRequestsPerDay: count,
  /** What the limiter does while Redis is unreachable; default failOpen for internal, failClosed otherwise. */
  onRedisUnavailable: z.optional(z.enum(['failOpen', 'failClosed'])),
});
export type RateLimits = z.infer<typeof rateLimitsSchema>;

type TypeDefaults = Required<Pick<RateLimits, 'requestsPerMinute' | 'requestsPerHour' | 'requestsPerDay' | 'tokensPerRequest' | 'tokensPerDay'>>;

/**
 * Defaults by deployment type, exactly seed 004 §10.4. `hybrid` starts from the public (stricter)
 * tier; role-based tiers for hybrid callers come with the limiter.
 */
export const DEFAULT_RATE_LIMITS: Record<DeploymentType, TypeDefaults> = {
  public: { requestsPerMinute: 10, requestsPerHour: 100, requestsPerDay: 1000, tokensPerRequest: 4000, tokensPerDay: 50000 },
  internal: { requestsPerMinute: 60, requestsPerHour: 1000, requestsPerDay: 10000, tokensPerRequest: 16000, tokensPerDay: 500000 },
  hybrid: { requestsPerMinute: 10, requestsPerHour: 100, requestsPerDay: 1000, tokensPerRequest: 4000, tokensPerDay: 50000 },
};

/** Built-in flags (seed 004 §10.2) and their defaults by type; public embeds start conservative. */
export const DEFAULT_FEATURES: Record<DeploymentType, Record<string, boolean>> = {
  public: { inference: true, streaming: true, smartRouting: false, multiModelComparison: false, visionEnabled: false, piiRedaction: true },
  internal: { inference: true, streaming: true, smartRouting: true, multiModelComparison: true, visionEnabled: true, piiRedaction: false },
  hybrid: { inference: true, streaming: true, smartRouting: true, multiModelComparison: false, visionEnabled: true, piiRedaction: true },
};

export const DEFAULT_MONITORING = {
  alertThresholds: { errorRate: 0.05, avgLatencyMs: 3000, tokenBudgetPercent: [80, 90, 100] },
};

export const flagName = z.string().check(z.regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, 'flag names are letters, digits, "_", "." or "-" (at most 64)'));
const constraintSchema = z.strictObject({
  contextName: z.string().check(z.minLength(1), z.maxLength(100)),
  operator: z.string().check(z.minLength(1), z.maxLength(40)),
  values: z.optional(z.array(z.string()).check(z.maxLength(1000))),
  value: z.optional(z.string()),
  inverted: z.optional(z.boolean()),
  caseInsensitive: z.optional(z.boolean()),
});
const variantSchema = z.strictObject({
  name: z.string().check(z.minLength(1), z.maxLength(100)),
  weight: z.number().check(z.gte(0), z.lte(1000)),
  payload: z.optional(z.strictObject({ type: z.enum(['string', 'json', 'number', 'boolean']), value: z.string().check(z.maxLength(10_000)) })),
  stickiness: z.optional(z.string()),
  overrides: z.optional(z.array(z.strictObject({ contextName: z.string(), values: z.array(z.string()) }))),
});
/** A flag: on/off, or a rollout (see shared/flags.ts for how it is evaluated). */
export const flagValueSchema = z.union([
  z.boolean(),
  z.strictObject({
    enabled: z.boolean(),
    rolloutPercentage: z.optional(z.number().check(z.gte(0), z.lte(100))),
    stickiness: z.optional(z.string().check(z.minLength(1), z.maxLength(100))),
    groupId: z.optional(z.string().check(z.maxLength(200))),
    cohorts: z.optional(z.array(z.enum(['internal', 'qa', 'ga']))),
    constraints: z.optional(z.array(constraintSchema).check(z.maxLength(50))),
    variants: z.optional(z.array(variantSchema).check(z.maxLength(50))),
    description: z.optional(z.string().check(z.maxLength(500))),
  }),
]);
const flagValue = flagValueSchema;
export const featuresSchema = z.record(flagName, flagValue);

/** An origin as browsers send it (`https://app.example.com[:port]`), `*.` wildcard subdomains, or `*`. */
export const originSchema = z.string().check(
  z.refine((o) => {
    if (o === '*') return true;
    const m = /^(https?):\/\/(\*\.)?([A-Za-z0-9.-]+)(:\d{1,5})?$/.exec(o);
    return m !== null && !m[3]!.startsWith('.') && !m[3]!.endsWith('.');
  }, 'must be an origin like https://app.example.com (no path), https://*.example.com, or *'),
);

export const timezoneSchema = z.string().check(
  z.refine((tz) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  }, 'must be an IANA time zone such as UTC or Europe/Berlin'),
);

const jsonObject = z.record(z.string(), z.unknown());

export const budgetsSchema = z.strictObject({
  costPerDayUsd: z.optional(z.number().check(z.positive())),
  costPerMonthUsd: z.optional(z.number().check(z.positive())),
  /** When a token or cost budget is spent: refuse with 402 (block), or serve on the cheapest tier. */
  onBudgetExhausted: z.optional(z.enum(['block', 'downgrade'])),
});

export const monitoringSchema = z.looseObject({
  webhookUrl: z.optional(z.nullable(z.url({ protocol: /^https?$/ }))),
  webhookFormat: z.optional(z.enum(['slack', 'pagerduty'])),
  pagerdutyRoutingKey: z.optional(z.string().check(z.maxLength(64))),
  alertThresholds: z.optional(jsonObject),
});

const name = z.string().check(z.trim(), z.minLength(1), z.maxLength(100));
const deploymentType = z.enum(DEPLOYMENT_TYPES);
const environment = z.enum(['sandbox', 'production']);
const allowedOrigins = z.array(originSchema).check(z.maxLength(100));

export const createDeploymentSchema = z.strictObject({
  name,
  type: deploymentType,
  environment: z._default(environment, 'sandbox'),
  features: z.optional(featuresSchema),
  rateLimits: z.optional(rateLimitsSchema),
  budgets: z.optional(budgetsSchema),
  routing: z.optional(routingSchema),
  allowedOrigins: z.optional(allowedOrigins),
  monitoring: z.optional(monitoringSchema),
  timezone: z._default(timezoneSchema, 'UTC'),
});
export type CreateDeploymentInput = z.infer<typeof createDeploymentSchema>;

/**
 * PATCH is a JSON merge patch one level deep: `{"features": {"smartRouting": true}}` changes one
 * flag and keeps the rest; `null` for a key inside an object removes that key.
 */
export const updateDeploymentSchema = z
  .strictObject({
    name: z.optional(name),
    type: z.optional(deploymentType),
    environment: z.optional(environment),
    features: z.optional(z.record(flagName, z.nullable(flagValue))),
    rateLimits: z.optional(z.record(z.string(), z.nullable(z.unknown()))),
    budgets: z.optional(z.record(z.string(), z.unknown())),
    routing: z.optional(z.record(z.string(), z.unknown())),
    allowedOrigins: z.optional(allowedOrigins),
    monitoring: z.optional(jsonObject),
    timezone: z.optional(timezoneSchema),
  })
  .check(
    z.superRefine((patch, ctx) => {
      if (Object.keys(patch).length === 0) ctx.addIssue({ code: 'custom', message: 'patch is empty: send at least one field', input: patch });
      // Routing keys are replaced whole by the merge, so each one given must be valid on its own.
      if (patch.routing) {
        for (const [key, value] of Object.entries(patch.routing)) {
          if (value === null) continue;
          const field = (routingSchema.shape as Record<string, z.ZodMiniType | undefined>)[key];
          if (!field) {
            ctx.addIssue({ code: 'custom', message: 'is not a known routing field', path: ['routing', key], input: value });
            continue;
          }
          const r = field.safeParse(value);
          if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: ['routing', key, ...issue.path] } as never);
        }
      }
      if (patch.budgets) {
        const set = Object.fromEntries(Object.entries(patch.budgets).filter(([, v]) => v !== null));
        const r = budgetsSchema.safeParse(set);
        if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: ['budgets', ...issue.path] } as never);
      }
      // Rate limits as they will be after the merge: known names, positive integers, or null to remove.
      if (patch.rateLimits) {
        const set = Object.fromEntries(Object.entries(patch.rateLimits).filter(([, v]) => v !== null));
        const r = rateLimitsSchema.safeParse(set);
        if (!r.success) {
          for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: ['rateLimits', ...issue.path] } as never);
        }
      }
    }),
  );
export type UpdateDeploymentInput = z.infer<typeof updateDeploymentSchema>;

/** Fills what the caller left out with the defaults of the deployment's type. */
export function withTypeDefaults(input: CreateDeploymentInput) {
  return {
    ...input,
    features: { ...DEFAULT_FEATURES[input.type], ...input.features },
    // A hybrid deployment keeps only what was given: its tier comes from each caller's role.
    rateLimits: input.type === 'hybrid' ? { ...input.rateLimits } : { ...DEFAULT_RATE_LIMITS[input.type], ...input.rateLimits },
    budgets: input.budgets ?? {},
    routing: input.routing ?? {},
    allowedOrigins: input.allowedOrigins ?? [],
    monitoring: { ...DEFAULT_MONITORING, ...input.monitoring },
  };
}

/** Does a browser Origin match one of the deployment's allowed origins? */
export function originAllowed(origin: string, allowed: readonly string[]): boolean {
  const o = origin.toLowerCase();
  return allowed.some((pattern) => {
    const p = pattern.toLowerCase();
    if (p === '*' || p === o) return true;
    const star = p.indexOf('://*.');
    if (star === -1) return false;
    const scheme = p.slice(0, star + 3);
    const suffix = p.slice(star + 4); // ".example.com[:port]"
    return o.startsWith(scheme) && o.endsWith(suffix) && o.length > scheme.length + suffix.length;
  });
}
