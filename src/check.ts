import './dirname-shim.js';
import { runCheck } from './action/check.js';
import { installLastResortHandlers } from './action/step.js';

const finished = installLastResortHandlers();
await runCheck();
finished();
