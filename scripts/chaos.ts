// npm run chaos [-- --seed N --faults N --minutes N --max-stalls N]: a randomized fault campaign
// against a loopback registry (__tests__/harness/chaos.ts); prints each step, then a summary as
// JSON. Exits 1 on a violation, after printing the seed, the step and the history that led to it.
// Needs root (tmpfs mounts, the harness's sshd) and a build of dist/ (npm run build).
import { FAULT_KINDS, runCampaign } from '../__tests__/harness/chaos.js';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`--${name} wants a whole number`);
  return value;
}

const seed = option('seed', Math.floor(Math.random() * 2 ** 31));
const faults = option('faults', 500);
const minutes = option('minutes', 240);
const maxStalls = option('max-stalls', Math.max(1, Math.floor(faults / FAULT_KINDS.length)));
console.log(
  `chaos: seed ${seed}, ${faults} faults, at most ${minutes} minutes (rerun: npm run chaos -- --seed ${seed})`,
);
const report = await runCampaign({ seed, faults, maxMinutes: minutes, maxStalls, log: (line) => console.log(line) });
const { history, ...summary } = report;
console.log(JSON.stringify(summary, null, 2));
if (report.violations.length > 0) {
  console.log(`history of seed ${seed}:`);
  for (const step of history) console.log(JSON.stringify(step));
  process.exit(1);
}
