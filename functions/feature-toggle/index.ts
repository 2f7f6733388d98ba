import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { adminAuth } from '../../shared/admin-auth';
import { createFunctionApp } from '../../shared/app';
import { ApiError } from '../../shared/errors';
import { clientRoutes } from './client';
import { dashboardRoutes } from './dashboard';
import { deploymentRoutes } from './deployments';
import { featureAdminRoutes, ofrepRoutes, seed003Routes } from './features';
import { killSwitchRoutes } from './kill-switch';
import { metricsRoutes } from './metrics';
import { webhookRoutes } from './webhooks';

const app = createFunctionApp('feature-toggle');

app.use(
  bodyLimit({
    maxSize: 256 * 1024,
    onError: () => {
      throw new ApiError(413, 'body_too_large', 'The body is larger than 256 KiB.');
    },
  }),
);
// Browsers call /client/* with a publishable key; the key check decides which origins may.
app.use('/ofrep/*', cors({ origin: (origin) => origin, allowHeaders: ['Authorization', 'Content-Type', 'If-None-Match'], exposeHeaders: ['ETag', 'x-request-id'], maxAge: 600 }));
app.use('/client/*', cors({ origin: (origin) => origin, allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'], exposeHeaders: ['x-request-id'], maxAge: 600 }));
app.use('/deployments/*', adminAuth());
app.use('/deployments', adminAuth());
app.use('/kill-switch', adminAuth());

app.route('/', deploymentRoutes);
app.route('/', clientRoutes);
app.route('/', webhookRoutes);
app.route('/', killSwitchRoutes);
app.route('/', featureAdminRoutes);
app.route('/', ofrepRoutes);
app.route('/', seed003Routes);
app.route('/', metricsRoutes);
app.route('/', dashboardRoutes);

export default { fetch: app.fetch };
