import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'smol-toml';

export const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');

export const FUNCTION_NAMES = [
  'inference-proxy',
  'check-rate-limit',
  'track-deployment-usage',
  'daily-report',
  'feature-toggle',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

export interface WorkerSettings {
  name: FunctionName;
  main: string;
  compatibilityDate: string;
  compatibilityFlags: string[];
  vars: Record<string, string>;
  crons: string[];
  requiredSecrets: string[];
}

interface WranglerEnv {
  name?: string;
  main?: string;
  compatibility_date?: string;
  compatibility_flags?: string[];
  vars?: Record<string, string>;
  triggers?: { crons?: string[] };
  secrets?: { required?: string[] };
}

/** Reads wrangler.toml, the one source of each Worker's settings, for the local stack and the build. */
export function readWorkerSettings(): WorkerSettings[] {
  const config = parse(readFileSync(`${ROOT}/wrangler.toml`, 'utf8')) as WranglerEnv & { env?: Record<string, WranglerEnv> };
  return FUNCTION_NAMES.map((name) => {
    const env = config.env?.[name];
    if (!env) throw new Error(`wrangler.toml has no [env.${name}]`);
    return {
      name,
      main: env.main ?? config.main ?? `functions/${name}/index.ts`,
      compatibilityDate: env.compatibility_date ?? config.compatibility_date ?? '2026-04-01',
      compatibilityFlags: env.compatibility_flags ?? config.compatibility_flags ?? [],
      vars: env.vars ?? {},
      crons: env.triggers?.crons ?? [],
      requiredSecrets: env.secrets?.required ?? [],
    };
  });
}
