/** `npm run deploy:dry`: bundles every function exactly as `wrangler deploy --env <name>` would, uploading nothing. */
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { FUNCTION_NAMES, ROOT } from './functions';

let failed = 0;
for (const name of FUNCTION_NAMES) {
  const outdir = `${ROOT}/.local/dry-run/${name}`;
  const r = spawnSync('npx', ['wrangler', 'deploy', '--dry-run', '--env', name, '--outdir', outdir], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1' },
  });
  if (r.status !== 0) {
    failed++;
    console.error(`✗ ${name}\n${r.stdout}\n${r.stderr}`);
    continue;
  }
  const size = statSync(`${outdir}/index.js`).size;
  const gzip = /gzip: ([\d.]+ KiB)/.exec(r.stdout)?.[1] ?? '?';
  console.log(`✓ ${name.padEnd(24)} ${(size / 1024).toFixed(0)} KiB bundle, ${gzip} gzipped`);
}
if (failed) {
  console.error(`${failed} function(s) failed to bundle`);
  process.exit(1);
}
