import './dirname-shim.js';
import { installLastResortHandlers, run } from './action/main.js';

installLastResortHandlers();
await run();
