import { createFunctionApp } from '../../shared/app';
import { checkRoutes } from './check';

const app = createFunctionApp('check-rate-limit');
app.route('/', checkRoutes);

export default { fetch: app.fetch };
