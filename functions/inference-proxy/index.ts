import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { createFunctionApp } from '../../shared/app';
import { ApiError } from '../../shared/errors';
import { chatRoutes } from './chat';
import { modelRoutes } from './models';

const DEFAULT_MAX_BODY = 1024 * 1024;
const MAX_DRAIN = 32 * 1024 * 1024;

const app = createFunctionApp('inference-proxy');

// Browsers call with a publishable key; the key check decides which origins may.
app.use('/v1/*', cors({
  origin: (origin) => origin,
  allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id', 'X-Inference-Edge-Feature', 'X-Inference-Edge-Compare', 'X-Session-Id'],
  exposeHeaders: ['x-request-id', 'x-inference-edge-model', 'x-inference-edge-provider', 'x-inference-edge-route-reason', 'x-inference-edge-overhead-ms', 'x-inference-edge-truncated', 'x-inference-edge-kill-switch', 'x-inference-edge-compare', 'retry-after'],
  maxAge: 600,
}));
app.use('/v1/*', async function requestBodyLimit(c, next) {
  const maxSize = Number(c.env.MAX_REQUEST_BYTES) || DEFAULT_MAX_BODY;
  const tooLarge = () => new ApiError(413, 'request_too_large', `The request body is larger than ${maxSize} bytes.`);
  const declared = Number(c.req.header('content-length') ?? NaN);
  if (declared > maxSize) {
    // Read and discard what the client is sending (up to a cap) so it can read the 413 instead of a
    // connection reset halfway through its upload.
    const reader = c.req.raw.body?.getReader();
    let drained = 0;
    while (reader && drained < MAX_DRAIN) {
      const { done, value } = await reader.read();
      if (done) break;
      drained += value.byteLength;
    }
    throw tooLarge();
  }
  return bodyLimit({ maxSize, onError: () => { throw tooLarge(); } })(c, next);
});
app.route('/', chatRoutes);
app.route('/', modelRoutes);

export default { fetch: app.fetch };
