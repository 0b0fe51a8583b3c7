// `npm run bench`: the action against the seed's own baseline, on the loopback registry.
//
// For each image size, alternating in one invocation (the machine is shared and noisy, so only
// ratios within a run mean much):
//   (a) baseline: OpenSSH scp of both files, then ssh … incus-simplestreams add (the seed's flow)
//   (b) the committed bundle publishing the same image to a fresh registry tree
//   (c) the bundle republishing it unchanged
// It prints the median wall times, b/a and c/a, the action's upload throughput, its peak RSS, and
// the floor of a republish (one local sha256 pass over the image), and writes the table to
// docs/benchmark.md and into README.md.
//
//   npm run bench                  64, 256 and 1024 MiB, 3 runs each
//   BENCH_SIZES=64,256 BENCH_RUNS=5 npm run bench
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputEnv, inputsFor } from '../__tests__/harness/action.js';
import { makeSplitContainerImage, type TestImage } from '../__tests__/harness/images.js';
import { startRegistry, type Registry } from '../__tests__/harness/registry.js';

const MiB = 1024 * 1024;
const sizes = (process.env['BENCH_SIZES'] ?? '64,256,1024').split(',').map(Number);
const runs = Number(process.env['BENCH_RUNS'] ?? '3');

interface ActionRun {
  seconds: number;
  peakRss: number;
  uploadMBps?: number;
  status?: string;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return [Number(process.hrtime.bigint() - started) / 1e9, value];
}

/** Empties the registry, as a fresh one. */
async function resetRegistry(registry: Registry): Promise<void> {
  for (const dir of [registry.simplestreamsDir, registry.uploadDir]) {
    for (const entry of await fsp.readdir(dir)) await fsp.rm(path.join(dir, entry), { recursive: true, force: true });
  }
}

async function baseline(registry: Registry, image: TestImage): Promise<number> {
  const [seconds] = await timed(async () => {
    for (const file of [image.metadata, image.rootfs]) {
      const copied = await registry.scp(file, path.join(registry.uploadDir, path.basename(file)));
      if (copied.code !== 0) throw new Error(`scp failed: ${copied.stderr}`);
    }
    const remote = (file: string) => path.join(registry.uploadDir, path.basename(file));
    const added = await registry.ssh(
      `cd '${registry.simplestreamsDir}' && TZ=UTC incus-simplestreams add --no-default-alias '${remote(image.metadata)}' '${remote(image.rootfs)}'`,
    );
    if (added.code !== 0) throw new Error(`incus-simplestreams add failed: ${added.stderr}`);
  });
  return seconds;
}

async function runAction(registry: Registry, image: TestImage, rssFile: string): Promise<ActionRun> {
  const outputFile = `${rssFile}.output`;
  await fsp.writeFile(outputFile, '');
  const env = {
    PATH: process.env['PATH'],
    HOME: process.env['HOME'],
    GITHUB_OUTPUT: outputFile,
    GITHUB_RUN_ID: String(Date.now()),
    LXC_PUBLISH_BENCH_RSS_FILE: rssFile,
    ...inputEnv(inputsFor(registry, image, { 'lxd-compat': 'true' })),
  };
  const preload = path.resolve('scripts/bench-rss.cjs');
  const [seconds, stdout] = await timed(
    () =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['--require', preload, 'dist/index.js'], { env });
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`the action failed:\n${out}`))));
      }),
  );
  const rates = [...stdout.matchAll(/rootfs\.squashfs: 100% .*?, ([\d.]+) MB\/s/g)].map((match) => Number(match[1]));
  const status = /status<<(\S+)\n(\w+)/.exec(await fsp.readFile(outputFile, 'utf8'))?.[2];
  return {
    seconds,
    peakRss: Number(await fsp.readFile(rssFile, 'utf8')),
    ...(rates.length ? { uploadMBps: rates.at(-1) as number } : {}),
    ...(status ? { status } : {}),
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

const registry = await startRegistry();
const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-bench-'));
const rows: string[] = [];
try {
  for (const size of sizes) {
    process.stderr.write(`building a ${size} MiB image…\n`);
    const image = await makeSplitContainerImage(path.join(work, `${size}`).concat(''), {
      rootfsBytes: size * MiB,
      compression: 'gzip',
    });
    const a: number[] = [];
    const b: ActionRun[] = [];
    const c: ActionRun[] = [];
    const floor: number[] = [];
    for (let run = 0; run < runs; run++) {
      await resetRegistry(registry);
      a.push(await baseline(registry, image));
      await resetRegistry(registry);
      b.push(await runAction(registry, image, path.join(work, `rss-b-${size}-${run}`)));
      c.push(await runAction(registry, image, path.join(work, `rss-c-${size}-${run}`)));
      floor.push(await sha256Pass([image.metadata, image.rootfs]));
      if (b.at(-1)?.status !== 'published' || c.at(-1)?.status !== 'unchanged') {
        throw new Error(`unexpected statuses: ${b.at(-1)?.status} then ${c.at(-1)?.status}`);
      }
      process.stderr.write(
        `${size} MiB run ${run + 1}: a ${a.at(-1)?.toFixed(2)} s, b ${b.at(-1)?.seconds.toFixed(2)} s, c ${c.at(-1)?.seconds.toFixed(2)} s\n`,
      );
    }
    const ma = median(a);
    const mb = median(b.map((r) => r.seconds));
    const mc = median(c.map((r) => r.seconds));
    const rss = Math.max(...b.map((r) => r.peakRss), ...c.map((r) => r.peakRss)) / MiB;
    const rate = median(b.map((r) => r.uploadMBps ?? 0));
    rows.push(
      `| ${size} MiB | ${ma.toFixed(2)} s | ${mb.toFixed(2)} s | ${mc.toFixed(2)} s | ${(mb / ma).toFixed(2)} | ` +
        `${(mc / ma).toFixed(2)} | ${median(floor).toFixed(2)} s | ${rate.toFixed(0)} MB/s | ${rss.toFixed(0)} MiB |`,
    );
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
const machine = `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, Node ${process.version}, loopback, ${runs} runs per size (medians)`;
const table = [
  `Measured on ${machine}, ${new Date().toISOString().slice(0, 10)}.`,
  '',
  '| image | (a) scp + add | (b) publish | (c) republish | b/a | c/a | sha256 pass (floor of c) | upload | peak RSS |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows,
  '',
  `A bad input (a missing file) is refused in ${badInput.toFixed(2)} s, before any connection.`,
].join('\n');
console.log(`\n${table}\n`);

await fsp.mkdir('docs', { recursive: true });
await fsp.writeFile('docs/benchmark.md', `# Benchmark\n\nWritten by \`npm run bench\`.\n\n${table}\n`);
const readme = await fsp.readFile('README.md', 'utf8');
const start = '<!-- bench:start (written by npm run bench) -->';
const end = '<!-- bench:end -->';
if (readme.includes(start) && readme.includes(end)) {
  const updated = `${readme.slice(0, readme.indexOf(start) + start.length)}\n\n${table}\n\n${readme.slice(readme.indexOf(end))}`;
  await fsp.writeFile('README.md', updated);
}
