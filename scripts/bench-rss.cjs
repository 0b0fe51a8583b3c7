// Preloaded into the benchmarked action (node --require): records the process's peak RSS, the
// bytes it read (rchar of /proc/self/io: files and sockets) and its CPU time on exit.
const { readFileSync, writeFileSync } = require('node:fs');
process.on('exit', () => {
  const file = process.env.LXC_PUBLISH_BENCH_RSS_FILE;
  if (!file) return;
  const io = readFileSync('/proc/self/io', 'utf8');
  const readBytes = Number(/rchar: (\d+)/.exec(io)?.[1] ?? 0);
  const usage = process.resourceUsage();
  const cpuSeconds = (usage.userCPUTime + usage.systemCPUTime) / 1e6;
  writeFileSync(file, JSON.stringify({ peakRss: usage.maxRSS * 1024, readBytes, cpuSeconds }));
});
