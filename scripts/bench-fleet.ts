// `npm run bench:fleet`: one release to three registry servers at once (mirrors) against the same
// release to one of them, each server behind its own delaying proxy (the round trip of
// BENCH_RTT, 50 ms by default), alternating in one invocation. Each server is a separate sshd,
// key and registry tree on loopback, so all three share this machine's cores: with links as fast
// as the machine, the three servers' own work (sshd, hashing, the convert step) competes for the
// CPU. BENCH_LINK_MBPS adds rows where each server's link carries at most that many MB/s towards
// it (each path its own, as servers in other places have), which the machine can serve three
// times over. It prints the median wall times, their ratio, the bytes the runner's process read
// against the image's size (each file is read once for every server), how busy the machine's
// CPUs were, and the peak RSS, and writes the table into docs/performance.md.
//
//   npm run bench:fleet                    1024 MiB, 50 ms, links unpaced and 25 MB/s, 3 runs
//   BENCH_SIZES=256 BENCH_RTT=150 BENCH_LINK_MBPS=0,50 BENCH_RUNS=5 npm run bench:fleet
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputEnv, inputsFor, type Inputs } from '../__tests__/harness/action.js';
import type { TestImage } from '../__tests__/harness/images.js';
import { startProxy, type TcpProxy } from '../__tests__/harness/proxy.js';
import { startRegistry, type Registry } from '../__tests__/harness/registry.js';
import {
  machineBusySeconds,
  median,
  replaceBetween,
  resetRegistry,
  runBundleMeasured,
  type MeasuredRun,
  benchImages,
} from './bench-common.js';

const MiB = 1024 * 1024;
const sizes = (process.env['BENCH_SIZES'] ?? '1024').split(',').map(Number);
const rtt = Number(process.env['BENCH_RTT'] ?? '50');
const runs = Number(process.env['BENCH_RUNS'] ?? '3');
/** Each link's pace towards its server, MB/s; 0: unpaced. */
const linkRates = (process.env['BENCH_LINK_MBPS'] ?? '0,25').split(',').map(Number);

/** The mirrors input for `servers`, each reached through its proxy's port, its key in MIRROR_k_SSH_KEY. */
function mirrorsInput(servers: Registry[], ports: number[]): { mirrors: string; env: NodeJS.ProcessEnv } {
  const mirrors = servers
    .map((server, k) =>
      [
        `- name: mirror-${k + 1}`,
        `  host: ${server.host}`,
        `  port: ${ports[k]}`,
        `  username: ${server.username}`,
        `  ssh-key-env: MIRROR_${k + 1}_SSH_KEY`,
        `  host-fingerprint: ${server.hostKeyFingerprint}`,
        `  upload-dir: ${server.uploadDir}`,
        `  simplestreams-dir: ${server.simplestreamsDir}`,
      ].join('\n'),
    )
    .join('\n');
  const env = Object.fromEntries(servers.map((server, k) => [`MIRROR_${k + 1}_SSH_KEY`, server.privateKey]));
  return { mirrors, env };
}

interface FleetRun extends MeasuredRun {
  /** How busy the machine's CPUs were during the run, 0 to 1. */
  cpuBusy: number;
}

async function publish(inputs: Inputs, env: NodeJS.ProcessEnv, work: string, label: string): Promise<FleetRun> {
  const busyBefore = machineBusySeconds();
  const measured = await runBundleMeasured({ ...env, ...inputEnv(inputs) }, path.join(work, label));
  const cpuBusy = (machineBusySeconds() - busyBefore) / measured.seconds / os.cpus().length;
  if (measured.outputs['status'] !== 'published') throw new Error(`${label}: status ${measured.outputs['status']}`);
  return { ...measured, cpuBusy };
}

interface Row {
  rate: number;
  size: number;
  single: number;
  fleet: number;
  fleetRead: number;
  imageBytes: number;
  rss: number;
  cpuSingle: number;
  cpuFleet: number;
  runnerCpuSingle: number;
  runnerCpuFleet: number;
}

const servers = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-bench-fleet-'));
const rows: Row[] = [];
try {
  const [primary, ...others] = servers;
  const images = await benchImages(sizes, work);
  for (const rate of linkRates) {
    const proxies: TcpProxy[] = [];
    try {
      for (const server of servers) {
        proxies.push(
          await startProxy({
            targetPort: server.sshPort,
            delayMs: rtt / 2,
            ...(rate > 0 ? { upBytesPerSecond: rate * 1e6 } : {}),
          }),
        );
      }
      const ports = proxies.map((proxy) => proxy.port);
      for (const size of sizes) {
        const { image, bytes } = images.get(size) as { image: TestImage; bytes: number };
        const single = inputsFor(primary, image, { port: String(ports[0]) });
        const { mirrors, env } = mirrorsInput(others, ports.slice(1));
        const fleet = { ...single, mirrors };
        const singles: FleetRun[] = [];
        const fleets: FleetRun[] = [];
        for (let n = 0; n < runs; n++) {
          // Alternate which goes first, so that a drift in the machine's load falls on both.
          const order = n % 2 === 0 ? (['single', 'fleet'] as const) : (['fleet', 'single'] as const);
          for (const which of order) {
            for (const server of servers) await resetRegistry(server);
            const label = `${which}-${rate}-${size}-${n}`;
            if (which === 'single') singles.push(await publish(single, {}, work, label));
            else fleets.push(await publish(fleet, env, work, label));
          }
          process.stderr.write(
            `${rtt} ms, links ${rate || 'unpaced'}, ${size} MiB, run ${n + 1}: one server ${singles.at(-1)?.seconds.toFixed(2)} s, ` +
              `three ${fleets.at(-1)?.seconds.toFixed(2)} s\n`,
          );
        }
        rows.push({
          rate,
          size,
          single: median(singles.map((r) => r.seconds)),
          fleet: median(fleets.map((r) => r.seconds)),
          fleetRead: median(fleets.map((r) => r.readBytes)),
          imageBytes: bytes,
          rss: Math.max(...fleets.map((r) => r.peakRss)) / MiB,
          cpuSingle: median(singles.map((r) => r.cpuBusy)),
          cpuFleet: median(fleets.map((r) => r.cpuBusy)),
          runnerCpuSingle: median(singles.map((r) => r.cpuSeconds)),
          runnerCpuFleet: median(fleets.map((r) => r.cpuSeconds)),
        });
      }
    } finally {
      await Promise.all(proxies.map((proxy) => proxy.close()));
    }
  }
} finally {
  await Promise.all(servers.map((server) => server.stop()));
  await fsp.rm(work, { recursive: true, force: true });
}

const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
const table = [
  `Measured on ${os.cpus().length} × ${cpu}, Node ${process.version}, ${runs} runs per row (medians), ` +
    `${new Date().toISOString().slice(0, 10)}: each server behind its own proxy with a ${rtt} ms round trip.`,
  '',
  "| each link | image | one server | three servers (mirrors) | three / one | read by the runner (three servers) | the runner's CPU time (one / three) | the machine's CPUs busy (one / three) | peak RSS (three) |",
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.rate > 0 ? `${r.rate} MB/s` : 'unpaced'} | ${r.size} MiB | ${r.single.toFixed(2)} s | ${r.fleet.toFixed(2)} s | ` +
      `${(r.fleet / r.single).toFixed(2)} | ${(r.fleetRead / 1e6).toFixed(0)} MB (${(r.fleetRead / r.imageBytes).toFixed(2)} × the image) | ` +
      `${r.runnerCpuSingle.toFixed(1)} s / ${r.runnerCpuFleet.toFixed(1)} s | ` +
      `${(r.cpuSingle * 100).toFixed(0)} % / ${(r.cpuFleet * 100).toFixed(0)} % | ${r.rss.toFixed(0)} MiB |`,
  ),
].join('\n');
console.log(`\n${table}\n`);
await replaceBetween(
  'docs/performance.md',
  '<!-- fleet: written by npm run bench:fleet -->',
  '<!-- fleet:end -->',
  table,
);
