// `npm run bench:deltas`: what a delta costs the publisher and saves the clients, on the loopback
// registry. For each image size, two releases a small change apart (the same random payload, with
// `BENCH_CHANGE_KIB` KiB of it rewritten in the middle, and a new creation date):
//   (x) xdelta3 -e -9 of B against A, as the server runs it, then the decode check, timed alone
//   (0) the committed bundle publishing B onto a registry holding A, with delta-bases 0
//   (1) the same with delta-bases 1 (the default): the delta made, checked and published
// alternating (0) and (1) in one invocation (the machine is shared and noisy: the ratio 1/0 is
// what means something). It prints the delta's size, the bytes a client holding A downloads to
// update to B with and without it, and writes the table into docs/performance.md.
//
//   npm run bench:deltas                         256 and 1024 MiB, 3 runs, 1024 KiB changed
//   BENCH_SIZES=64 BENCH_RUNS=1 npm run bench:deltas
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle, type BundleRun } from '../__tests__/harness/action.js';
import { run } from '../__tests__/harness/exec.js';
import { makeSplitContainerImage, writeRandomFile, type TestImage } from '../__tests__/harness/images.js';
import { startRegistry, type Registry } from '../__tests__/harness/registry.js';
import { median, resetRegistry, timed } from './bench-common.js';

const MiB = 1024 * 1024;
const sizes = (process.env['BENCH_SIZES'] ?? '256,1024').split(',').map(Number);
const runs = Number(process.env['BENCH_RUNS'] ?? '3');
const changeKiB = Number(process.env['BENCH_CHANGE_KIB'] ?? '1024');

/** Releases A and B of one line: the same payload but `changeKiB` KiB in its middle. */
async function releasePair(dir: string, size: number): Promise<[TestImage, TestImage]> {
  const payloadA = path.join(dir, 'payload-a.bin');
  const payloadB = path.join(dir, 'payload-b.bin');
  await fsp.mkdir(dir, { recursive: true });
  await writeRandomFile(payloadA, size * MiB);
  await fsp.copyFile(payloadA, payloadB);
  const handle = await fsp.open(payloadB, 'r+');
  try {
    await handle.write(randomBytes(changeKiB * 1024), 0, changeKiB * 1024, Math.floor((size * MiB) / 2));
  } finally {
    await handle.close();
  }
  const now = Math.floor(Date.now() / 60_000) * 60 - 86400;
  const common = { compression: 'gzip' as const, variant: `bench${size}` };
  const a = await makeSplitContainerImage(path.join(dir, 'a'), { ...common, payloadFile: payloadA, creationDate: now });
  const b = await makeSplitContainerImage(path.join(dir, 'b'), {
    ...common,
    payloadFile: payloadB,
    creationDate: now + 60,
  });
  await fsp.rm(payloadA);
  await fsp.rm(payloadB);
  return [a, b];
}

async function must(command: string, args: string[]): Promise<void> {
  const result = await run(command, args, { timeoutMs: 3_600_000 });
  if (result.code !== 0) throw new Error(`${command} failed: ${result.stderr}`);
}

/** (x): the server's two xdelta3 runs, alone: encode at -9, then decode and hash the result. */
async function xdelta(a: TestImage, b: TestImage, out: string): Promise<{ encode: number; decode: number }> {
  const [encode] = await timed(() => must('xdelta3', ['-e', '-9', '-f', '-s', a.rootfs, b.rootfs, out]));
  const [decode] = await timed(() => must('sh', ['-c', 'xdelta3 -d -c -s "$1" "$2" | sha256sum', 'x', a.rootfs, out]));
  return { encode, decode };
}

async function publish(registry: Registry, image: TestImage, deltaBases: number): Promise<[number, BundleRun]> {
  const [seconds, result] = await timed(() =>
    runBundle(inputsFor(registry, image, { 'delta-bases': String(deltaBases) })),
  );
  if (result.code !== 0) throw new Error(`the bundle failed:\n${result.stdout}\n${result.stderr}`);
  return [seconds, result];
}

interface DeltaOutput {
  base: string;
  size: number;
  share: number;
}

interface Row {
  size: number;
  squashfs: number;
  metadata: number;
  delta: number;
  encode: number;
  decode: number;
  without: number;
  withDelta: number;
}

const registry = await startRegistry();
const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-bench-deltas-'));
const rows: Row[] = [];
try {
  for (const size of sizes) {
    process.stderr.write(`building two ${size} MiB releases ${changeKiB} KiB apart…\n`);
    const [a, b] = await releasePair(path.join(work, String(size)), size);
    const encode: number[] = [];
    const decode: number[] = [];
    const without: number[] = [];
    const withDelta: number[] = [];
    let delta: DeltaOutput | undefined;
    for (let n = 0; n < runs; n++) {
      const x = await xdelta(a, b, path.join(work, 'x.vcdiff'));
      encode.push(x.encode);
      decode.push(x.decode);
      // Alternate which goes first, so that neither always runs on a warmer cache.
      for (const bases of n % 2 ? [1, 0] : [0, 1]) {
        await resetRegistry(registry);
        await publish(registry, a, 0);
        const [seconds, result] = await publish(registry, b, bases);
        const deltas = JSON.parse(result.outputs['deltas'] ?? '[]') as DeltaOutput[];
        if (bases === 0) {
          if (deltas.length !== 0) throw new Error('delta-bases 0 made a delta');
          without.push(seconds);
        } else {
          if (deltas.length !== 1) throw new Error(`delta-bases 1 made ${deltas.length} deltas:\n${result.stdout}`);
          delta = deltas[0];
          withDelta.push(seconds);
        }
      }
      process.stderr.write(
        `${size} MiB, run ${n + 1}: xdelta3 encode ${x.encode.toFixed(2)} s, decode ${x.decode.toFixed(2)} s; ` +
          `publish B without ${without.at(-1)?.toFixed(2)} s, with a delta ${withDelta.at(-1)?.toFixed(2)} s ` +
          `(delta ${delta?.size} bytes)\n`,
      );
    }
    rows.push({
      size,
      squashfs: (await fsp.stat(b.rootfs)).size,
      metadata: (await fsp.stat(b.metadata)).size,
      delta: delta?.size ?? 0,
      encode: median(encode),
      decode: median(decode),
      without: median(without),
      withDelta: median(withDelta),
    });
  }
} finally {
  await registry.stop();
  await fsp.rm(work, { recursive: true, force: true });
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 1)} MB`;
const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
const table = [
  `Measured on ${os.cpus().length} × ${cpu}, Node ${process.version}, ${runs} runs per row (medians), ` +
    `${new Date().toISOString().slice(0, 10)}: two releases whose payloads differ in ${changeKiB} KiB in the middle.`,
  '',
  '| image | squashfs | delta (share) | client update: full / with delta | xdelta3 -9 encode | decode check | publish B: delta-bases 0 | delta-bases 1 | 1/0 |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.size} MiB | ${mb(r.squashfs)} | ${mb(r.delta)} (${((r.delta / r.squashfs) * 100).toFixed(2)} %) | ` +
      `${mb(r.metadata + r.squashfs)} / ${mb(r.metadata + r.delta)} | ${r.encode.toFixed(2)} s | ${r.decode.toFixed(2)} s | ` +
      `${r.without.toFixed(2)} s | ${r.withDelta.toFixed(2)} s | ${(r.withDelta / r.without).toFixed(2)} |`,
  ),
].join('\n');
console.log(`\n${table}\n`);

const doc = 'docs/performance.md';
const text = await fsp.readFile(doc, 'utf8');
const marker = /(<!-- deltas: written by npm run bench:deltas -->)[\s\S]*?(<!-- deltas:end -->)/;
if (!marker.test(text)) throw new Error(`${doc} has no deltas markers`);
await fsp.writeFile(doc, text.replace(marker, `$1\n\n${table}\n\n$2`));
