import * as z from 'zod/mini';
import type { ChatRequest } from './openai-types';

/**
 * Routing is data (STYLE.md, Portkey's targets): a deployment's `routing` names tiers (and aliases
 * for them), each a list of provider/model targets with prices and capabilities, and a mode that
 * says how to use the list.
 */
export const CAPABILITIES = ['vision', 'tools', 'json'] as const;
export type Capability = (typeof CAPABILITIES)[number];

const conditionSchema = z.strictObject({
  /** `metadata.<key>`, `user.<attribute>` or `request.<field>` (stream, tools, images, model). */
  field: z.string().check(z.regex(/^(metadata|user|request)\.[A-Za-z0-9_.-]{1,64}$/, 'must be metadata.<key>, user.<attribute> or request.<field>')),
  op: z.enum(['eq', 'neq', 'in', 'exists']),
  value: z.optional(z.union([z.string(), z.number(), z.boolean(), z.array(z.union([z.string(), z.number(), z.boolean()]))])),
});
export type Condition = z.infer<typeof conditionSchema>;

export const targetSchema = z.strictObject({
  provider: z.string().check(z.regex(/^[a-z0-9-]{1,40}$/, 'a provider name such as openai, anthropic, gemini, groq or mock')),
  model: z.string().check(z.minLength(1), z.maxLength(200)),
  /** USD per million tokens. */
  priceInputPerMTok: z._default(z.number().check(z.gte(0)), 0),
  priceOutputPerMTok: z._default(z.number().check(z.gte(0)), 0),
  capabilities: z._default(z.array(z.enum(CAPABILITIES)), ['tools', 'json']),
  /** loadbalance: relative share of traffic. */
  weight: z._default(z.number().check(z.gt(0)), 1),
  /** conditional: the first target whose condition holds serves the call. */
  when: z.optional(conditionSchema),
});
export type Target = z.infer<typeof targetSchema>;

export const tierSchema = z.strictObject({
  mode: z._default(z.enum(['single', 'fallback', 'loadbalance', 'conditional']), 'fallback'),
  targets: z.array(targetSchema).check(z.minLength(1, 'a tier needs at least one target'), z.maxLength(20)),
});
export type Tier = z.infer<typeof tierSchema>;

const tierName = z.string().check(z.regex(/^[a-z0-9][a-z0-9._-]{0,40}$/, 'tier names are lowercase letters, digits, ".", "_" or "-"'));

const ms = (max: number) => z.optional(z.int().check(z.gte(1), z.lte(max)));

/** Deadlines per provider call (seed 000 transport tuning); env PROVIDER_*_TIMEOUT_MS sets the defaults. */
export const timeoutsSchema = z.strictObject({
  /** Until the response starts: headers for JSON, the first chunk for a stream. */
  firstByteMs: ms(600_000),
  /** Between two stream chunks (a stall). */
  stallMs: ms(600_000),
  /** The whole call, stream included. */
  totalMs: ms(3_600_000),
});

/** Retries of one target before the next: exponential backoff with full jitter, Retry-After honoured. */
export const retrySchema = z.strictObject({
  attempts: z.optional(z.int().check(z.gte(0), z.lte(5))),
  baseDelayMs: ms(60_000),
  maxDelayMs: ms(300_000),
  /** All retry waits of one request together stay under this. */
  budgetMs: ms(600_000),
});

export const breakerSchema = z.strictObject({
  failureThreshold: z.optional(z.int().check(z.gte(1), z.lte(1000))),
  windowMs: ms(3_600_000),
  cooldownMs: ms(3_600_000),
  minCalls: z.optional(z.int().check(z.gte(1), z.lte(100_000))),
  failureRatio: z.optional(z.number().check(z.gt(0), z.lte(1))),
});

export const routingSchema = z.strictObject({
  tiers: z.optional(z.record(tierName, tierSchema)),
  /** alias → tier name, or `provider/model`. */
  aliases: z.optional(z.record(z.string().check(z.minLength(1), z.maxLength(100)), z.string())),
  /** The tier for `model: "auto"` when smart routing is off for the caller. */
  defaultTier: z.optional(z.string()),
  /** Input tokens kept when a conversation is truncated; default 3/4 of tokensPerRequest. */
  contextBudgetTokens: z.optional(z.int().check(z.positive())),
  /** When non-empty, URLs in prompts outside these domains are removed before the provider sees them. */
  urlAllowlist: z.optional(z.array(z.string().check(z.regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, 'a domain such as example.com')))),
  timeouts: z.optional(timeoutsSchema),
  retry: z.optional(retrySchema),
  breaker: z.optional(breakerSchema),
  /** Upstream statuses that move on to the next target (network errors and deadlines always do). */
  fallbackOnStatus: z.optional(z.array(z.int().check(z.gte(400), z.lte(599)))),
  /** When every target of the tier failed or is open, try cheaper tiers (seed 004 playbook). Default true. */
  downgradeOnFailure: z.optional(z.boolean()),
  /** The last resort when every target failed (seed 003 "rules" fallback): answered as the assistant. */
  staticFallback: z.optional(z.strictObject({ message: z.string().check(z.minLength(1), z.maxLength(4000)) })),
});
export type RoutingConfig = z.infer<typeof routingSchema>;

const mock = (model: string, priceIn: number, priceOut: number, capabilities: Capability[]): Target =>
  ({ provider: 'mock', model, priceInputPerMTok: priceIn, priceOutputPerMTok: priceOut, capabilities, weight: 1 });

/** What a deployment without routing config gets: three tiers on the built-in mock provider. */
export const DEFAULT_TIERS: Record<string, Tier> = {
  'flash-lite': { mode: 'single', targets: [mock('mock-lite', 0.075, 0.3, ['tools', 'json'])] },
  flash: { mode: 'single', targets: [mock('mock-flash', 0.3, 2.5, ['tools', 'json', 'vision'])] },
  pro: { mode: 'single', targets: [mock('mock-pro', 1.25, 10, ['tools', 'json', 'vision'])] },
};

export interface EffectiveRouting {
  tiers: Record<string, Tier>;
  aliases: Record<string, string>;
  defaultTier: string;
  contextBudgetTokens?: number;
  urlAllowlist: string[];
  timeouts: z.infer<typeof timeoutsSchema>;
  retry: z.infer<typeof retrySchema>;
  breaker: z.infer<typeof breakerSchema>;
  fallbackOnStatus?: number[];
  downgradeOnFailure: boolean;
  staticFallback?: { message: string };
}

const parsedCache = new WeakMap<object, EffectiveRouting | Error>();

/** The deployment's routing with defaults filled in; invalid stored config is an error naming the field. */
export function effectiveRouting(raw: Record<string, unknown>): EffectiveRouting {
  let r = parsedCache.get(raw);
  if (!r) {
    const p = routingSchema.safeParse(raw);
    if (!p.success) {
      const i = p.error.issues[0]!;
      r = new Error(`routing.${i.path.join('.')}: ${i.message}`);
    } else {
      const tiers = p.data.tiers && Object.keys(p.data.tiers).length ? p.data.tiers : DEFAULT_TIERS;
      const defaultTier = p.data.defaultTier ?? (tiers.flash ? 'flash' : Object.keys(tiers)[0]!);
      r = {
        tiers,
        aliases: p.data.aliases ?? {},
        defaultTier,
        contextBudgetTokens: p.data.contextBudgetTokens,
        urlAllowlist: p.data.urlAllowlist ?? [],
        timeouts: p.data.timeouts ?? {},
        retry: p.data.retry ?? {},
        breaker: p.data.breaker ?? {},
        fallbackOnStatus: p.data.fallbackOnStatus,
        downgradeOnFailure: p.data.downgradeOnFailure ?? true,
        staticFallback: p.data.staticFallback,
      };
    }
    parsedCache.set(raw, r);
  }
  if (r instanceof Error) throw r;
  return r;
}

/** What a request's `model` names. */
export type ModelRef = { kind: 'tier'; tier: string } | { kind: 'target'; target: Target } | { kind: 'auto' };

/** Resolves `model`: `auto`, a tier, an alias (of a tier or a target), or a concrete model of some tier (`model` or `provider/model`). */
export function resolveModel(routing: EffectiveRouting, model: string): ModelRef | null {
  if (model === 'auto') return { kind: 'auto' };
  if (routing.tiers[model]) return { kind: 'tier', tier: model };
  const alias = routing.aliases[model];
  if (alias !== undefined && alias !== model) return resolveModel({ ...routing, aliases: {} }, alias);
  for (const tier of Object.values(routing.tiers)) {
    for (const t of tier.targets) {
      if (t.model === model || `${t.provider}/${t.model}` === model) return { kind: 'target', target: t };
    }
  }
  return null;
}

/** Every name a client may send as `model` (for GET /v1/models). */
export function listModels(routing: EffectiveRouting): { id: string; kind: 'tier' | 'alias' | 'model'; ownedBy: string }[] {
  const out = new Map<string, { id: string; kind: 'tier' | 'alias' | 'model'; ownedBy: string }>();
  out.set('auto', { id: 'auto', kind: 'tier', ownedBy: 'inference-edge' });
  for (const name of Object.keys(routing.tiers)) out.set(name, { id: name, kind: 'tier', ownedBy: 'inference-edge' });
  for (const name of Object.keys(routing.aliases)) out.set(name, { id: name, kind: 'alias', ownedBy: 'inference-edge' });
  for (const tier of Object.values(routing.tiers)) {
    for (const t of tier.targets) {
      const id = `${t.provider}/${t.model}`;
      if (!out.has(id)) out.set(id, { id, kind: 'model', ownedBy: t.provider });
    }
  }
  return [...out.values()];
}

export interface RequestFacts {
  metadata: Record<string, string>;
  user: Record<string, string>;
  request: { stream: boolean; tools: boolean; images: boolean; model: string };
}

export function conditionHolds(c: Condition, facts: RequestFacts): boolean {
  const [scope, ...rest] = c.field.split('.');
  const key = rest.join('.');
  const source = (scope === 'metadata' ? facts.metadata : scope === 'user' ? facts.user : facts.request) as Record<string, unknown>;
  const value = source[key];
  switch (c.op) {
    case 'exists':
      return value !== undefined && value !== null && value !== '';
    case 'eq':
      return value === c.value || String(value) === String(c.value);
    case 'neq':
      return !(value === c.value || String(value) === String(c.value));
    case 'in':
      return Array.isArray(c.value) && c.value.some((v) => v === value || String(v) === String(value));
  }
}

/**
 * The targets to try, in order, for a tier's mode: `single` one; `fallback` all in order;
 * `loadbalance` all, the first drawn by weight; `conditional` those whose condition holds (a target
 * without `when` is the default), in order. `random` is injected so tests are exact.
 */
export function orderTargets(tier: Tier, facts: RequestFacts, random: () => number = Math.random): Target[] {
  switch (tier.mode) {
    case 'single':
      return tier.targets.slice(0, 1);
    case 'fallback':
      return [...tier.targets];
    case 'loadbalance': {
      const total = tier.targets.reduce((s, t) => s + t.weight, 0);
      let pick = random() * total;
      const idx = tier.targets.findIndex((t) => (pick -= t.weight) < 0);
      const first = idx === -1 ? tier.targets.length - 1 : idx;
      return [tier.targets[first]!, ...tier.targets.filter((_, i) => i !== first)];
    }
    case 'conditional':
      return tier.targets.filter((t) => !t.when || conditionHolds(t.when, facts));
  }
}

export const hasImages = (req: Pick<ChatRequest, 'messages'>) =>
  req.messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p.type === 'image_url'));

/** The capabilities a request needs of its target. */
export function requiredCapabilities(req: ChatRequest): Capability[] {
  const caps: Capability[] = [];
  if (hasImages(req)) caps.push('vision');
  if (req.tools?.length) caps.push('tools');
  if (req.response_format && req.response_format.type !== 'text') caps.push('json');
  return caps;
}

export const supports = (t: Target, caps: readonly Capability[]) => caps.every((c) => t.capabilities.includes(c));

/** The cheapest tier whose every target supports `caps` (a vision tier for an image, say). */
export function cheapestTierWith(routing: EffectiveRouting, caps: readonly Capability[]): string | null {
  let best: { name: string; price: number } | null = null;
  for (const [name, tier] of Object.entries(routing.tiers)) {
    if (!tier.targets.every((t) => supports(t, caps))) continue;
    const price = Math.max(...tier.targets.map((t) => t.priceInputPerMTok + t.priceOutputPerMTok));
    if (!best || price < best.price) best = { name, price };
  }
  return best?.name ?? null;
}

/** Every target of every tier (for reading their breakers in the hot-path round trip). */
export function allTargets(routing: EffectiveRouting): Target[] {
  return Object.values(routing.tiers).flatMap((t) => t.targets);
}

/**
 * Targets of tiers cheaper than `tier` that support `caps`, closest in price first: where a call goes
 * when its own tier is down or rate limited (seed 004 "downgrade").
 */
export function downgradeTargets(routing: EffectiveRouting, tier: string, caps: readonly Capability[]): { tier: string; target: Target }[] {
  const price = (name: string) => Math.max(...routing.tiers[name]!.targets.map((t) => t.priceInputPerMTok + t.priceOutputPerMTok));
  const own = price(tier);
  return Object.keys(routing.tiers)
    .filter((name) => name !== tier && price(name) < own)
    .sort((a, b) => price(b) - price(a))
    .flatMap((name) => routing.tiers[name]!.targets.filter((t) => supports(t, caps)).map((target) => ({ tier: name, target })));
}

/** USD for a call at a target's prices. */
export const costUsd = (t: Target, promptTokens: number, completionTokens: number) =>
  (promptTokens * t.priceInputPerMTok + completionTokens * t.priceOutputPerMTok) / 1_000_000;
