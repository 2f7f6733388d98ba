import { createFunctionApp } from '../../shared/app';

const app = createFunctionApp('track-deployment-usage');

export default { fetch: app.fetch };
