import './dirname-shim.js';
import { runAlias } from './action/day-two.js';

await runAlias();
