// `npm run bench:bucket`: one release to a registry server and an S3 bucket at once (a real Ceph
// RGW on loopback, harness/bucket.ts) against the same release to the server alone, each behind
// its own delaying proxy (the round trip of BENCH_RTT, 50 ms by default), alternating in one
// invocation. BENCH_LINK_MBPS adds rows where each link carries at most that many MB/s towards
// the server or the store. It prints the median wall times and their ratio, the bytes the
// runner's process read against the image's size (each file is read once, for both), the
// runner's CPU time and peak RSS, and writes the table into docs/performance.md.
//
//   npm run bench:bucket                    1024 MiB, 50 ms, links unpaced and 25 MB/s, 3 runs
//   BENCH_SIZES=256 BENCH_RTT=150 BENCH_LINK_MBPS=0 BENCH_RUNS=5 npm run bench:bucket
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputEnv, inputsFor, type Inputs } from '../__tests__/harness/action.js';
import { startObjectStore, type ObjectStore } from '../__tests__/harness/bucket.js';
import type { TestImage } from '../__tests__/harness/images.js';
import { startProxy, type TcpProxy } from '../__tests__/harness/proxy.js';
import { startRegistry } from '../__tests__/harness/registry.js';
import {
  benchImages,
  median,
  replaceBetween,
  resetRegistry,
  runBundleMeasured,
  type MeasuredRun,
} from './bench-common.js';

const MiB = 1024 * 1024;
const BUCKET = 'bench';
const sizes = (process.env['BENCH_SIZES'] ?? '1024').split(',').map(Number);
const rtt = Number(process.env['BENCH_RTT'] ?? '50');
const runs = Number(process.env['BENCH_RUNS'] ?? '3');
/** Each link's pace towards the server or the store, MB/s; 0: unpaced. */
const linkRates = (process.env['BENCH_LINK_MBPS'] ?? '0,25').split(',').map(Number);

/** Deletes every object of the bucket, as a fresh one. */
async function emptyBucket(store: ObjectStore): Promise<void> {
  const keys = [...(await store.keys(BUCKET)).keys()];
  for (let start = 0; start < keys.length; start += 1000) {
    const batch = keys.slice(start, start + 1000).map((Key) => ({ Key }));
    await store.client.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: batch, Quiet: true } }));
  }
}

async function publish(inputs: Inputs, env: NodeJS.ProcessEnv, scratch: string): Promise<MeasuredRun> {
  const measured = await runBundleMeasured({ ...env, ...inputEnv(inputs) }, scratch);
  if (measured.outputs['status'] !== 'published') throw new Error(`${scratch}: status ${measured.outputs['status']}`);
  return measured;
}

interface Row {
  rate: number;
  size: number;
  single: number;
  withBucket: number;
  read: number;
  imageBytes: number;
  rss: number;
  cpuSingle: number;
  cpuWithBucket: number;
}

const [server, store] = await Promise.all([startRegistry(), startObjectStore({ storeGb: 64 })]);
const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-bench-bucket-'));
const rows: Row[] = [];
try {
  await store.createBucket(BUCKET);
  const images = await benchImages(sizes, work);
  const storePort = Number(new URL(store.endpoint).port);
  for (const rate of linkRates) {
    const proxies: TcpProxy[] = [];
    try {
      for (const targetPort of [server.sshPort, storePort]) {
        proxies.push(
          await startProxy({ targetPort, delayMs: rtt / 2, ...(rate > 0 ? { upBytesPerSecond: rate * 1e6 } : {}) }),
        );
      }
      const [sshProxy, storeProxy] = proxies as [TcpProxy, TcpProxy];
      const buckets = [
        '- name: ceph',
        `  endpoint: http://127.0.0.1:${storeProxy.port}`,
        `  bucket: ${BUCKET}`,
        '  access-key-id-env: BENCH_S3_KEY_ID',
        '  secret-access-key-env: BENCH_S3_SECRET',
      ].join('\n');
      const env = { BENCH_S3_KEY_ID: store.accessKey, BENCH_S3_SECRET: store.secretKey };
      for (const size of sizes) {
        const { image, bytes } = images.get(size) as { image: TestImage; bytes: number };
        const single = inputsFor(server, image, { port: String(sshProxy.port) });
        const singles: MeasuredRun[] = [];
        const both: MeasuredRun[] = [];
        for (let n = 0; n < runs; n++) {
          // Alternate which goes first, so that a drift in the machine's load falls on both.
          const order = n % 2 === 0 ? (['single', 'bucket'] as const) : (['bucket', 'single'] as const);
          for (const which of order) {
            await resetRegistry(server);
            await emptyBucket(store);
            const scratch = path.join(work, `${which}-${rate}-${size}-${n}`);
            if (which === 'single') singles.push(await publish(single, {}, scratch));
            else both.push(await publish({ ...single, buckets }, env, scratch));
          }
          process.stderr.write(
            `${rtt} ms, links ${rate || 'unpaced'}, ${size} MiB, run ${n + 1}: the server ${singles.at(-1)?.seconds.toFixed(2)} s, ` +
              `the server and the bucket ${both.at(-1)?.seconds.toFixed(2)} s\n`,
          );
        }
        rows.push({
          rate,
          size,
          single: median(singles.map((r) => r.seconds)),
          withBucket: median(both.map((r) => r.seconds)),
          read: median(both.map((r) => r.readBytes)),
          imageBytes: bytes,
          rss: Math.max(...both.map((r) => r.peakRss)) / MiB,
          cpuSingle: median(singles.map((r) => r.cpuSeconds)),
          cpuWithBucket: median(both.map((r) => r.cpuSeconds)),
        });
      }
    } finally {
      await Promise.all(proxies.map((proxy) => proxy.close()));
    }
  }
} finally {
  await Promise.all([server.stop(), store.stop()]);
  await fsp.rm(work, { recursive: true, force: true });
}

const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
const table = [
  `Measured on ${os.cpus().length} × ${cpu}, Node ${process.version}, ${runs} runs per row (medians), ` +
    `${new Date().toISOString().slice(0, 10)}: the server and the store (Ceph RGW 16 on this machine) each behind ` +
    `its own proxy with a ${rtt} ms round trip.`,
  '',
  "| each link | image | the server | the server and a bucket | ratio | read by the runner (with the bucket) | the runner's CPU time (server / with bucket) | peak RSS (with bucket) |",
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.rate > 0 ? `${r.rate} MB/s` : 'unpaced'} | ${r.size} MiB | ${r.single.toFixed(2)} s | ${r.withBucket.toFixed(2)} s | ` +
      `${(r.withBucket / r.single).toFixed(2)} | ${(r.read / 1e6).toFixed(0)} MB (${(r.read / r.imageBytes).toFixed(2)} × the image) | ` +
      `${r.cpuSingle.toFixed(1)} s / ${r.cpuWithBucket.toFixed(1)} s | ${r.rss.toFixed(0)} MiB |`,
  ),
].join('\n');
console.log(`\n${table}\n`);
await replaceBetween(
  'docs/performance.md',
  '<!-- bucket: written by npm run bench:bucket -->',
  '<!-- bucket:end -->',
  table,
);
