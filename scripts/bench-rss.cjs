// Preloaded into the benchmarked action (node --require): records the process's peak RSS on exit.
const { writeFileSync } = require('node:fs');
process.on('exit', () => {
  const file = process.env.LXC_PUBLISH_BENCH_RSS_FILE;
  if (file) writeFileSync(file, String(process.resourceUsage().maxRSS * 1024));
});
