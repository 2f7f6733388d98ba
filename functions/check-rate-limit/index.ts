import { createFunctionApp } from '../../shared/app';

const app = createFunctionApp('check-rate-limit');

export default { fetch: app.fetch };
