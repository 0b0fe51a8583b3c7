import './dirname-shim.js';
import { runRemove } from './action/day-two.js';

await runRemove();
