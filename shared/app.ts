import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type { AppEnv } from './context';
import { ConfigError } from './env';
import { ApiError } from './errors';
import { healthRoutes } from './health';
import { log } from './log';

/**
 * The base every function builds on: request ids, one structured log line per request, health
 * routes, and the one error renderer (OpenAI error shape) for every thrown error.
 */
export function createFunctionApp(functionName: string): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(requestId({ headerName: 'x-request-id' }));
  app.use(async function requestLog(c, next) {
    const started = performance.now();
    c.set('functionName', functionName);
    await next();
    log(c.res.status >= 500 ? 'error' : 'info', 'request', {
      fn: functionName,
      requestId: c.get('requestId'),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      latencyMs: Math.round((performance.now() - started) * 100) / 100,
      deploymentId: c.get('auth')?.deployment.id,
    });
  });
  app.route('/', healthRoutes(functionName));
  app.notFound((c) => {
    const e = new ApiError(404, 'route_not_found', `No route for ${c.req.method} ${c.req.path} on ${functionName}.`);
    return c.json(e.toJSON(), 404);
  });
  app.onError((err, c) => {
    if (err instanceof ApiError) {
      for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return c.json(err.toJSON(), err.status);
    }
    if (err instanceof ConfigError) {
      log('error', 'config.invalid', { fn: functionName, requestId: c.get('requestId'), problems: err.problems });
      return c.json(new ApiError(500, 'server_misconfigured', err.message).toJSON(), 500);
    }
    const status = 'status' in err && typeof err.status === 'number' ? err.status : 500;
    if (status < 500 && 'getResponse' in err) {
      // hono's own HTTPException (e.g. from bodyLimit): keep the status, use our shape.
      return c.json(new ApiError(status as 400, 'invalid_request', err.message || 'invalid request').toJSON(), status as 400);
    }
    log('error', 'unhandled', { fn: functionName, requestId: c.get('requestId'), error: err.message, name: err.name });
    return c.json(new ApiError(500, 'internal_error', 'Internal error; the request id identifies it in the logs.').toJSON(), 500);
  });
  return app;
}
