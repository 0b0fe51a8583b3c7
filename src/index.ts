import './dirname-shim.js';
import { run } from './action/main.js';

await run();
