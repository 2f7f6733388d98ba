import { createFunctionApp } from '../../shared/app';

const app = createFunctionApp('inference-proxy');

export default { fetch: app.fetch };
