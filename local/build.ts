import { mkdirSync } from 'node:fs';
import { build } from 'esbuild';
import { ROOT, readWorkerSettings, type FunctionName } from './functions';

/**
 * Bundles each function the way wrangler does (ESM, workerd conditions) so Miniflare can load it
 * as `modules: [{ type: 'ESModule', path }]`. Returns the bundle path of each function.
 */
export async function buildFunctions(outDir = `${ROOT}/.local/build`): Promise<Record<FunctionName, string>> {
  mkdirSync(outDir, { recursive: true });
  const settings = readWorkerSettings();
  const out = {} as Record<FunctionName, string>;
  await Promise.all(
    settings.map(async (s) => {
      const outfile = `${outDir}/${s.name}.mjs`;
      await build({
        entryPoints: [`${ROOT}/${s.main}`],
        outfile,
        bundle: true,
        format: 'esm',
        platform: 'neutral',
        target: 'es2022',
        conditions: ['workerd', 'worker', 'browser'],
        mainFields: ['browser', 'module', 'main'],
        external: ['node:*', 'cloudflare:*'],
        loader: { '.html': 'text' }, // as wrangler's default Text rule does
        sourcemap: 'linked',
        logLevel: 'warning',
      });
      out[s.name] = outfile;
    }),
  );
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  const out = await buildFunctions();
  for (const [name, path] of Object.entries(out)) console.log(`${name}: ${path}`);
  console.log(`built in ${Date.now() - started} ms`);
}
