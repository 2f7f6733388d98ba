import { createFunctionApp } from '../../shared/app';
import type { Bindings } from '../../shared/env';
import { runMinuteJobs, trackRoutes } from './track';

const app = createFunctionApp('track-deployment-usage');
app.route('/', trackRoutes);

export default {
  fetch: app.fetch,
  /** cron `* * * * *`: drain the usage buffer into Postgres, evaluate alert policies. */
  scheduled(controller: ScheduledController, env: Bindings, ctx: ExecutionContext) {
    ctx.waitUntil(runMinuteJobs(env, controller.scheduledTime));
  },
};
