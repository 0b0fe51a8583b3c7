import './dirname-shim.js';
import { runRemove } from './action/day-two.js';
import { installLastResortHandlers } from './action/step.js';

const finished = installLastResortHandlers();
await runRemove();
finished();
