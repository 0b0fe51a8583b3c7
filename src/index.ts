import './dirname-shim.js';
import { installLastResortHandlers, run } from './action/main.js';

const finished = installLastResortHandlers();
await run();
finished();
