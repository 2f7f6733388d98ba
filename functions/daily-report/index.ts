import { createFunctionApp } from '../../shared/app';
import type { Bindings } from '../../shared/env';
import { reportRoutes, runScheduledReport } from './report';

const app = createFunctionApp('daily-report');
app.route('/', reportRoutes);

export default {
  fetch: app.fetch,
  /** cron `0 1 * * *`: yesterday's (UTC) summary. */
  scheduled(controller: ScheduledController, env: Bindings, ctx: ExecutionContext) {
    ctx.waitUntil(runScheduledReport(env, controller.scheduledTime));
  },
};
