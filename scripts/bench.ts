// `npm run bench`: the action against the seed's own baseline, on the loopback registry, over
// links of several round-trip times.
//
// A delaying TCP proxy (__tests__/harness/proxy.ts, `delayMs`: each chunk held half the round
// trip in each direction; this kernel has no netem) sits between the clients and sshd; at 0 ms
// they connect directly. For each round trip and image size, alternating in one invocation (the
// machine is shared and noisy, so only ratios within a run mean much):
//   (a) baseline, in its fastest honest form: one OpenSSH scp of both files, then one
//       ssh … incus-simplestreams add
//   (m) the same over one shared OpenSSH connection (ControlMaster), master set up and closed
//       inside the timing: what a careful owner could script
//   (b) the committed bundle publishing the same image to a fresh registry tree
//   (c) the bundle republishing it unchanged
// It prints the median wall times, b/a, b/m and c/a, the action's upload throughput, its peak
// RSS, the SSH connections and commands it used, and the floor of a republish (one local sha256
// pass), writes the table to docs/benchmark.md and into docs/performance.md, and draws time against round
// trip in docs/bench-latency.svg.
//
//   npm run bench                          round trips 0, 50, 150 ms; 256 and 1024 MiB; 3 runs
//   BENCH_RTTS=0,50 BENCH_SIZES=64 BENCH_RUNS=5 npm run bench
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../__tests__/harness/exec.js';
import { inputEnv, inputsFor } from '../__tests__/harness/action.js';
import { makeSplitContainerImage, type TestImage } from '../__tests__/harness/images.js';
import { startProxy, type TcpProxy } from '../__tests__/harness/proxy.js';
import { startRegistry, type Registry } from '../__tests__/harness/registry.js';
import { median, replaceBetween, resetRegistry, runBundleMeasured, timed } from './bench-common.js';

const MiB = 1024 * 1024;
const sizes = (process.env['BENCH_SIZES'] ?? '256,1024').split(',').map(Number);
const rtts = (process.env['BENCH_RTTS'] ?? '0,50,150').split(',').map(Number);
const runs = Number(process.env['BENCH_RUNS'] ?? '3');

interface ActionRun {
  seconds: number;
  peakRss: number;
  uploadMBps?: number;
  status?: string;
  /** The action's own count (its last log line): connections, commands in sequence, parallel channels. */
  ssh?: { connections: number; commands: number; parallel: number };
}

/** Where the clients connect: sshd itself, or the delaying proxy in front of it. */
interface Link {
  rtt: number;
  port: number;
  proxy?: TcpProxy;
}

/** OpenSSH's options for this registry through `link`: the host key pinned under sshd's own port. */
function sshArgs(registry: Registry, extra: string[] = []): string[] {
  // ssh takes the first value of an option: ours before the harness's (ControlPath=none).
  return [...extra, ...registry.sshOptions(), '-o', `HostKeyAlias=[${registry.host}]:${registry.sshPort}`];
}

async function must(command: string, args: string[]): Promise<void> {
  const result = await run(command, args, { timeoutMs: 1_800_000 });
  if (result.code !== 0) throw new Error(`${command} failed: ${result.stderr}`);
}

/** Polls until the ControlMaster answers (or gives up after 30 s). */
async function masterReady(check: string[]): Promise<void> {
  for (let tries = 0; tries < 3000; tries++) {
    if ((await run('ssh', check, { timeoutMs: 10_000 })).code === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the ControlMaster did not come up');
}

/** (a), or with `shared` (m): one scp of both files, then one ssh running incus-simplestreams add. */
async function baseline(registry: Registry, link: Link, image: TestImage, shared: boolean): Promise<number> {
  const target = `${registry.username}@${registry.host}`;
  const control = path.join(os.tmpdir(), `lxc-publish-bench-cm-${process.pid}`);
  const master = shared ? ['-o', `ControlPath=${control}`] : [];
  const port = ['-p', String(link.port)];
  const remote = (file: string) => path.join(registry.uploadDir, path.basename(file));
  const [seconds] = await timed(async () => {
    // The master runs in the foreground of a child of ours (-N, no -f), so that it surely ends.
    const masterProcess = shared
      ? spawn('ssh', [...port, ...sshArgs(registry, [...master, '-o', 'ControlMaster=yes']), '-N', target], {
          stdio: 'ignore',
        })
      : undefined;
    const masterExited = masterProcess ? new Promise((resolve) => masterProcess.on('close', resolve)) : undefined;
    try {
      if (shared) await masterReady([...port, ...sshArgs(registry, master), '-O', 'check', target]);
      await must('scp', [
        '-q',
        '-P',
        String(link.port),
        ...sshArgs(registry, master),
        '--',
        image.metadata,
        image.rootfs,
        `${target}:${registry.uploadDir}/`,
      ]);
      await must('ssh', [
        ...port,
        ...sshArgs(registry, master),
        '-T',
        target,
        `cd '${registry.simplestreamsDir}' && TZ=UTC incus-simplestreams add --no-default-alias '${remote(image.metadata)}' '${remote(image.rootfs)}'`,
      ]);
    } finally {
      if (masterProcess) {
        await run('ssh', [...port, ...sshArgs(registry, master), '-O', 'exit', target], { timeoutMs: 10_000 });
        masterProcess.kill();
        await masterExited;
      }
    }
  });
  return seconds;
}

async function runAction(registry: Registry, link: Link, image: TestImage, scratch: string): Promise<ActionRun> {
  const { seconds, stdout, outputs, peakRss } = await runBundleMeasured(
    inputEnv(inputsFor(registry, image, { 'lxd-compat': 'true', port: String(link.port) })),
    scratch,
  );
  const rates = [...stdout.matchAll(/Uploaded [\d.]+ MB over \d+ channels? in [\d.]+ s \(([\d.]+) MB\/s\)/g)].map(
    (match) => Number(match[1]),
  );
  const counted = /SSH: (\d+) connections?, (\d+) commands in sequence(?: \(and (\d+) upload channels)?/.exec(stdout);
  const status = outputs['status'];
  return {
    seconds,
    peakRss,
    ...(rates.length ? { uploadMBps: rates.at(-1) as number } : {}),
    ...(status ? { status } : {}),
    ...(counted
      ? { ssh: { connections: Number(counted[1]), commands: Number(counted[2]), parallel: Number(counted[3] ?? 0) } }
      : {}),
  };
}

async function sha256Pass(files: string[]): Promise<number> {
  const [seconds] = await timed(async () => {
    const hash = createHash('sha256');
    for (const file of files)
      for await (const chunk of createReadStream(file, { highWaterMark: MiB })) hash.update(chunk as Buffer);
    hash.digest();
  });
  return seconds;
}

interface Row {
  rtt: number;
  size: number;
  a: number;
  m: number;
  b: number;
  c: number;
  floor: number;
  rate: number;
  rss: number;
  ssh: string;
}

const registry = await startRegistry();
const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-bench-'));
const rows: Row[] = [];
try {
  const images = new Map<number, TestImage>();
  for (const size of sizes) {
    process.stderr.write(`building a ${size} MiB image…\n`);
    images.set(
      size,
      await makeSplitContainerImage(path.join(work, `${size}`), { rootfsBytes: size * MiB, compression: 'gzip' }),
    );
  }
  for (const rtt of rtts) {
    const proxy = rtt > 0 ? await startProxy({ targetPort: registry.sshPort, delayMs: rtt / 2 }) : undefined;
    const link: Link = { rtt, port: proxy?.port ?? registry.sshPort, ...(proxy ? { proxy } : {}) };
    try {
      for (const size of sizes) {
        const image = images.get(size) as TestImage;
        const a: number[] = [];
        const m: number[] = [];
        const b: ActionRun[] = [];
        const c: ActionRun[] = [];
        const floor: number[] = [];
        for (let n = 0; n < runs; n++) {
          await resetRegistry(registry);
          a.push(await baseline(registry, link, image, false));
          await resetRegistry(registry);
          b.push(await runAction(registry, link, image, path.join(work, `b-${rtt}-${size}-${n}`)));
          c.push(await runAction(registry, link, image, path.join(work, `c-${rtt}-${size}-${n}`)));
          await resetRegistry(registry);
          m.push(await baseline(registry, link, image, true));
          floor.push(await sha256Pass([image.metadata, image.rootfs]));
          if (b.at(-1)?.status !== 'published' || c.at(-1)?.status !== 'unchanged') {
            throw new Error(`unexpected statuses: ${b.at(-1)?.status} then ${c.at(-1)?.status}`);
          }
          process.stderr.write(
            `${rtt} ms, ${size} MiB, run ${n + 1}: a ${a.at(-1)?.toFixed(2)} s, m ${m.at(-1)?.toFixed(2)} s, ` +
              `b ${b.at(-1)?.seconds.toFixed(2)} s, c ${c.at(-1)?.seconds.toFixed(2)} s\n`,
          );
        }
        const sshOf = (r: ActionRun | undefined) =>
          r?.ssh ? `${r.ssh.connections} + ${r.ssh.commands}${r.ssh.parallel ? ` (+${r.ssh.parallel})` : ''}` : '?';
        rows.push({
          rtt,
          size,
          a: median(a),
          m: median(m),
          b: median(b.map((r) => r.seconds)),
          c: median(c.map((r) => r.seconds)),
          floor: median(floor),
          rate: median(b.map((r) => r.uploadMBps ?? 0)),
          rss: Math.max(...b.map((r) => r.peakRss), ...c.map((r) => r.peakRss)) / MiB,
          ssh: `${sshOf(b.at(-1))} / ${sshOf(c.at(-1))}`,
        });
      }
    } finally {
      await proxy?.close();
    }
  }
} finally {
  await registry.stop();
  await fsp.rm(work, { recursive: true, force: true });
}

/** How long the bundle takes to refuse a bad input (a missing file), which needs no network. */
async function badInputSeconds(): Promise<number> {
  const env = {
    PATH: process.env['PATH'],
    ...inputEnv({ metadata: 'missing.tar.xz', host: 'registry.invalid', username: 'u', 'ssh-key': 'x' }),
  };
  const [seconds] = await timed(
    () =>
      new Promise<void>((resolve) => spawn(process.execPath, ['dist/index.js'], { env }).on('close', () => resolve())),
  );
  return seconds;
}
const badInputTimes: number[] = [];
for (let run = 0; run < 3; run++) badInputTimes.push(await badInputSeconds());
const badInput = median(badInputTimes);

const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
const machine = `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, Node ${process.version}, ${runs} runs per row (medians)`;
const table = [
  `Measured on ${machine}, ${new Date().toISOString().slice(0, 10)}. Round trips other than 0 ms go through a proxy that holds every chunk half the round trip in each direction.`,
  '',
  '| round trip | image | (a) scp + add | (m) same, ControlMaster | (b) publish | (c) republish | b/a | b/m | c/a | sha256 pass (floor of c) | upload | peak RSS | SSH: connections + commands (b / c) |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.rtt} ms | ${r.size} MiB | ${r.a.toFixed(2)} s | ${r.m.toFixed(2)} s | ${r.b.toFixed(2)} s | ${r.c.toFixed(2)} s | ` +
      `${(r.b / r.a).toFixed(2)} | ${(r.b / r.m).toFixed(2)} | ${(r.c / r.a).toFixed(2)} | ${r.floor.toFixed(2)} s | ` +
      `${r.rate.toFixed(0)} MB/s | ${r.rss.toFixed(0)} MiB | ${r.ssh} |`,
  ),
  '',
  `A bad input (a missing file) is refused in ${badInput.toFixed(2)} s, before any connection. "(+n)": upload channels opened alongside, in the same round trip.`,
].join('\n');
console.log(`\n${table}\n`);

/** Time against round trip, one panel per image size: the baseline, its ControlMaster form, publish, republish. */
function chart(data: Row[]): string {
  const series = [
    { key: 'a', label: 'scp + ssh add (a)', color: '#d62728' },
    { key: 'm', label: 'same, ControlMaster (m)', color: '#ff7f0e' },
    { key: 'b', label: 'lxc-publish, publish (b)', color: '#1f77b4' },
    { key: 'c', label: 'lxc-publish, republish (c)', color: '#2ca02c' },
  ] as const;
  const panelW = 360;
  const panelH = 240;
  const pad = { left: 50, right: 20, top: 40, bottom: 40 };
  const parts: string[] = [];
  const width = sizes.length * (panelW + pad.left + pad.right);
  const height = panelH + pad.top + pad.bottom + 70;
  const maxRtt = Math.max(...rtts, 1);
  sizes.forEach((size, i) => {
    const x0 = i * (panelW + pad.left + pad.right) + pad.left;
    const y0 = pad.top;
    const own = data.filter((r) => r.size === size);
    const maxT = Math.max(...own.flatMap((r) => [r.a, r.m, r.b, r.c]), 1) * 1.1;
    const sx = (rtt: number) => x0 + (rtt / maxRtt) * panelW;
    const sy = (t: number) => y0 + panelH - (t / maxT) * panelH;
    parts.push(
      `<text x="${x0 + panelW / 2}" y="${y0 - 15}" text-anchor="middle" font-weight="bold">${size} MiB image</text>`,
    );
    parts.push(`<line x1="${x0}" y1="${y0 + panelH}" x2="${x0 + panelW}" y2="${y0 + panelH}" stroke="#333"/>`);
    parts.push(`<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y0 + panelH}" stroke="#333"/>`);
    for (const rtt of rtts) {
      parts.push(`<text x="${sx(rtt)}" y="${y0 + panelH + 16}" text-anchor="middle">${rtt}</text>`);
    }
    parts.push(`<text x="${x0 + panelW / 2}" y="${y0 + panelH + 34}" text-anchor="middle">round trip (ms)</text>`);
    for (let k = 0; k <= 4; k++) {
      const t = (maxT / 4) * k;
      parts.push(`<text x="${x0 - 6}" y="${sy(t) + 4}" text-anchor="end">${t.toFixed(0)}</text>`);
      parts.push(`<line x1="${x0}" y1="${sy(t)}" x2="${x0 + panelW}" y2="${sy(t)}" stroke="#ddd"/>`);
    }
    parts.push(
      `<text x="${x0 - 38}" y="${y0 + panelH / 2}" transform="rotate(-90 ${x0 - 38} ${y0 + panelH / 2})" text-anchor="middle">seconds</text>`,
    );
    for (const s of series) {
      const points = own.map((r) => `${sx(r.rtt).toFixed(1)},${sy(r[s.key]).toFixed(1)}`);
      parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points.join(' ')}"/>`);
      for (const point of points) {
        const [px, py] = point.split(',');
        parts.push(`<circle cx="${px}" cy="${py}" r="3" fill="${s.color}"/>`);
      }
    }
  });
  series.forEach((s, i) => {
    const x = pad.left + (i % 2) * 260;
    const y = panelH + pad.top + pad.bottom + 20 + Math.floor(i / 2) * 20;
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 24}" y2="${y - 4}" stroke="${s.color}" stroke-width="3"/>`);
    parts.push(`<text x="${x + 30}" y="${y}">${s.label}</text>`);
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

await fsp.mkdir('docs', { recursive: true });
await fsp.writeFile('docs/bench-latency.svg', chart(rows));
await fsp.writeFile('docs/benchmark.md', `# Benchmark\n\nWritten by \`npm run bench\`.\n\n${table}\n`);
await replaceBetween(
  'docs/performance.md',
  '<!-- bench:start (written by npm run bench) -->',
  '<!-- bench:end -->',
  table,
);
