import { Hono } from 'hono';
import type { AppEnv } from '../../shared/context';
import page from './dashboard.html';

/**
 * GET /dashboard: the admin page (one self-contained HTML file: no build step, no third-party
 * script). It holds no data of its own: it asks for the admin key and drives the admin API of this
 * function, so it can do nothing the API would not let the key do. A strict Content-Security-Policy
 * with a per-response nonce allows only its own inline script and style, and calls to this origin.
 */
export const dashboardRoutes = new Hono<AppEnv>().get('/dashboard', (c) => {
  const nonce = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  return c.html(page.replaceAll('__NONCE__', nonce), 200, {
    'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  });
});
