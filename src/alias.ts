import './dirname-shim.js';
import { runAlias } from './action/day-two.js';
import { installLastResortHandlers } from './action/step.js';

const finished = installLastResortHandlers();
await runAlias();
finished();
