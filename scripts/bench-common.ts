// What the benches share: medians, timing, running the committed bundle as the runner does, and
// emptying the loopback registry between runs.
import { spawn } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseGithubOutput } from '../__tests__/harness/action.js';
import { makeSplitContainerImage, type TestImage } from '../__tests__/harness/images.js';
import type { Registry } from '../__tests__/harness/registry.js';

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

/** Runs `fn` and returns its wall time in seconds with its value. */
export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return [Number(process.hrtime.bigint() - started) / 1e9, value];
}

/** A split container image of each size (MiB) under `work`, with the bytes of its two files. */
export async function benchImages(
  sizes: readonly number[],
  work: string,
): Promise<Map<number, { image: TestImage; bytes: number }>> {
  const images = new Map<number, { image: TestImage; bytes: number }>();
  for (const size of sizes) {
    process.stderr.write(`building a ${size} MiB image…\n`);
    const image = await makeSplitContainerImage(path.join(work, `${size}`), {
      rootfsBytes: size * 1024 * 1024,
      compression: 'gzip',
    });
    images.set(size, { image, bytes: (await fsp.stat(image.metadata)).size + (await fsp.stat(image.rootfs)).size });
  }
  return images;
}

/** Empties the registry, as a fresh one. */
export async function resetRegistry(registry: Registry): Promise<void> {
  for (const dir of [registry.simplestreamsDir, registry.uploadDir]) {
    for (const entry of await fsp.readdir(dir)) await fsp.rm(path.join(dir, entry), { recursive: true, force: true });
  }
}

/** One run of the committed bundle, measured. */
export interface MeasuredRun {
  seconds: number;
  stdout: string;
  outputs: Record<string, string>;
  /** The process's peak resident set, in bytes. */
  peakRss: number;
  /** Bytes the process read (rchar: files and sockets). */
  readBytes: number;
  /** CPU seconds the process used (user and system). */
  cpuSeconds: number;
}

/**
 * Runs dist/index.js with `env` (inputs as INPUT_* variables) as the runner does, with
 * scripts/bench-rss.cjs preloaded to record its peak RSS and bytes read on exit; `scratch` is a
 * path prefix for the files it writes. Fails with the log when the action fails.
 */
export async function runBundleMeasured(env: NodeJS.ProcessEnv, scratch: string): Promise<MeasuredRun> {
  const outputFile = `${scratch}.output`;
  const rssFile = `${scratch}.rss`;
  await fsp.writeFile(outputFile, '');
  const childEnv = {
    PATH: process.env['PATH'],
    HOME: process.env['HOME'],
    GITHUB_OUTPUT: outputFile,
    GITHUB_RUN_ID: String(Date.now()),
    LXC_PUBLISH_BENCH_RSS_FILE: rssFile,
    ...env,
  };
  const preload = path.resolve('scripts/bench-rss.cjs');
  const [seconds, stdout] = await timed(
    () =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['--require', preload, 'dist/index.js'], { env: childEnv });
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`the action failed:\n${out}`))));
      }),
  );
  const recorded = JSON.parse(await fsp.readFile(rssFile, 'utf8')) as {
    peakRss: number;
    readBytes: number;
    cpuSeconds: number;
  };
  return { seconds, stdout, outputs: parseGithubOutput(await fsp.readFile(outputFile, 'utf8')), ...recorded };
}

/** Replaces what stands between the `start` and `end` markers of `file` (when both are there) with `text`. */
export async function replaceBetween(file: string, start: string, end: string, text: string): Promise<void> {
  const content = await fsp.readFile(file, 'utf8');
  if (!content.includes(start) || !content.includes(end)) return;
  const updated = `${content.slice(0, content.indexOf(start) + start.length)}\n\n${text}\n\n${content.slice(content.indexOf(end))}`;
  await fsp.writeFile(file, updated);
}

/** CPU seconds the whole machine has spent busy since boot (all cores; /proc/stat). */
export function machineBusySeconds(): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / 100; // USER_HZ
}
