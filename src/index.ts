import './dirname-shim.js';
import { run } from './action/main.js';
import { installLastResortHandlers } from './action/step.js';

const finished = installLastResortHandlers();
await run();
finished();
