// Registry integrity under concurrency, interruption and republishing, through the committed
// dist/index.js run as the runner runs it, against the real loopback registry (sshd, nginx,
// incus-simplestreams, the incus client). Each test starts a registry of its own.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync, promises as fsp } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import {
  type BundleRun,
  expectExit,
  inputsFor,
  runBundle,
  startBundle,
  type StartedBundle,
} from '../harness/action.js';
import { run, sleep } from '../harness/exec.js';
import { makeSplitContainerImage, simplestreamsSerial, type ImageOptions, type TestImage } from '../harness/images.js';
import { startProxy, type TcpProxy } from '../harness/proxy.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { missingFiles, readTreeIndex, treeItems, type TreeIndex } from '../harness/tree.js';

const MiB = 1 << 20;
// Per test: the integration project's testTimeout is not applied by Jest (it is a global option).
const TIMEOUT = 180_000;

let work: string;
const registries: Registry[] = [];
const proxies: TcpProxy[] = [];
const children: StartedBundle[] = [];

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-integrity-'));
});
afterEach(async () => {
  for (const started of children.splice(0)) {
    if (started.child.exitCode === null && started.child.signalCode === null) started.child.kill('SIGKILL');
    await started.done.catch(() => undefined);
  }
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  await Promise.all(registries.splice(0).map((registry) => registry.stop()));
}, 30_000);
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

async function newRegistry(): Promise<Registry> {
  const registry = await startRegistry();
  registries.push(registry);
  return registry;
}

let imageCount = 0;
async function newImage(opts: ImageOptions = {}): Promise<TestImage> {
  const dir = path.join(work, `image-${imageCount++}`);
  await fsp.mkdir(dir);
  return makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', ...opts });
}

function start(inputs: Record<string, string>): StartedBundle {
  const started = startBundle(inputs);
  children.push(started);
  return started;
}

const imagesJsonPath = (registry: Registry) => path.join(registry.simplestreamsDir, 'streams', 'v1', 'images.json');
const stagingRoot = (registry: Registry) => path.join(registry.simplestreamsDir, '.lxc-publish', 'staging');

const treePaths = (index: TreeIndex): string[] => [...new Set(treeItems(index).map((item) => item.path))];

/** Fingerprints the index lists: the combined hashes of split images, the hash of unified ones. */
function listedFingerprints(index: TreeIndex): string[] {
  const found = new Set<string>();
  for (const product of Object.values(index.products ?? {}))
    for (const version of Object.values(product.versions ?? {}))
      for (const item of Object.values(version.items ?? {})) {
        for (const [key, value] of Object.entries(item))
          if (/^combined_.*sha256$/.test(key) && typeof value === 'string') found.add(value);
        if (item.ftype === 'incus_combined.tar.gz' && typeof item['sha256'] === 'string') found.add(item['sha256']);
      }
  return [...found];
}

function productAliases(index: TreeIndex, product: string): string[] {
  const aliases = index.products[product]?.aliases ?? '';
  return aliases === '' ? [] : aliases.split(',');
}

async function expectVerifies(registry: Registry): Promise<void> {
  const verify = await registry.simplestreams(['verify']);
  if (verify.code !== 0) {
    throw new Error(`incus-simplestreams verify exited with ${verify.code}:\n${verify.stdout}${verify.stderr}`);
  }
}

/**
 * Files in images/ that the live index does not name: incus-simplestreams prune would delete
 * them, and nothing this action leaves behind after a completed run may be among them.
 */
async function unreferencedImageFiles(registry: Registry): Promise<string[]> {
  const named = new Set(treePaths(await readTreeIndex(registry)));
  const files = await fsp.readdir(path.join(registry.simplestreamsDir, 'images')).catch(() => [] as string[]);
  // SHA256SUMS is the action's own, beside the files (checked by expectChecksumsHold).
  return files
    .filter((file) => file !== 'SHA256SUMS')
    .map((file) => `images/${file}`)
    .filter((file) => !named.has(file));
}

/** images/SHA256SUMS lists exactly the files the index names, and `sha256sum -c` agrees. */
async function expectChecksumsHold(registry: Registry): Promise<void> {
  const images = path.join(registry.simplestreamsDir, 'images');
  const listed = (await fsp.readFile(path.join(images, 'SHA256SUMS'), 'utf8'))
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => `images/${line.slice(66)}`);
  expect(listed.sort()).toEqual([...new Set(treePaths(await readTreeIndex(registry)))].sort());
  const checked = await run('sha256sum', ['-c', '--strict', '--quiet', 'SHA256SUMS'], { cwd: images });
  expect(checked.stdout + checked.stderr).toBe('');
  expect(checked.code).toBe(0);
}

async function listedByIncus(registry: Registry): Promise<string[]> {
  return (await registry.incusList()).map((image) => image.fingerprint);
}

interface Entry {
  path: string;
  size: number;
  isFile: boolean;
}

/** Everything under dir (recursively), with sizes; [] if dir does not exist. */
async function walk(dir: string): Promise<Entry[]> {
  let names: string[];
  try {
    names = (await fsp.readdir(dir, { recursive: true })).map(String);
  } catch {
    return [];
  }
  const entries: Entry[] = [];
  for (const name of names) {
    try {
      const stat = await fsp.lstat(path.join(dir, name));
      entries.push({ path: name, size: stat.size, isFile: stat.isFile() });
    } catch {
      // removed while we looked
    }
  }
  return entries;
}

/** What a finished run must not leave under upload-dir: partial files or image data (lock files are empty). */
async function uploadLeftovers(registry: Registry): Promise<string[]> {
  return (await walk(registry.uploadDir))
    .filter((e) => e.path.endsWith('.partial') || (e.isFile && e.size > 0))
    .map((e) => `${e.path} (${e.size} bytes)`);
}

async function stagingLeftovers(registry: Registry): Promise<string[]> {
  return (await walk(stagingRoot(registry))).map((e) => e.path);
}

/** Polls fn every intervalMs until it returns a value, the child exits, or the deadline passes. */
async function pollWhileRunning<T>(
  started: StartedBundle,
  intervalMs: number,
  timeoutMs: number,
  fn: () => T | undefined | Promise<T | undefined>,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && started.child.exitCode === null && started.child.signalCode === null) {
    const value = await fn();
    if (value !== undefined) return value;
    await sleep(intervalMs);
  }
  return undefined;
}

describe('concurrent writers', () => {
  it(
    'eight different images published at once all end up in a registry that verifies',
    async () => {
      const registry = await newRegistry();
      // Four products, two versions each: parallel runs add to the same product as well as to others.
      const images = await Promise.all(Array.from({ length: 8 }, (_, i) => newImage({ variant: `par${i % 4}` })));
      const results = await Promise.all(images.map((image) => runBundle(inputsFor(registry, image))));

      for (const [i, result] of results.entries()) {
        expectExit(result, 0);
        expect(result.outputs['fingerprint']).toBe(images[i]!.fingerprint);
        expect(result.outputs['status']).toBe('published');
      }
      const listed = await listedByIncus(registry);
      for (const image of images) expect(listed).toContain(image.fingerprint);
      expect(listedFingerprints(await readTreeIndex(registry)).sort()).toEqual(
        images.map((image) => image.fingerprint).sort(),
      );
      await expectVerifies(registry);
      expect(await unreferencedImageFiles(registry)).toEqual([]);
      await expectChecksumsHold(registry);
      expect(await uploadLeftovers(registry)).toEqual([]);
      expect(await stagingLeftovers(registry)).toEqual([]);
    },
    TIMEOUT,
  );
});

describe('readers during publication', () => {
  it(
    'never see partial JSON, nor an index naming a file that is not there yet',
    async () => {
      const registry = await newRegistry();
      // A live index from the start, so every read must succeed.
      expectExit(await runBundle(inputsFor(registry, await newImage({ variant: 'reader-seed' }))), 0);
      const images = await Promise.all(Array.from({ length: 6 }, (_, i) => newImage({ variant: `reader${i}` })));

      const agent = new https.Agent({ keepAlive: true, maxSockets: 16 });
      const ca = await fsp.readFile(registry.caFile);
      const url = new URL(registry.httpsUrl);
      const request = (method: 'GET' | 'HEAD', requestPath: string) =>
        new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
          const req = https.request(
            {
              host: url.hostname,
              port: url.port,
              path: requestPath,
              method,
              ca,
              agent,
              headers: { 'Cache-Control': 'no-cache', Pragma: 'no-cache' },
              timeout: 10_000,
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (b: Buffer) => chunks.push(b));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
              res.on('error', reject);
            },
          );
          req.on('timeout', () => req.destroy(new Error(`${method} ${requestPath} timed out`)));
          req.on('error', reject);
          req.end();
        });

      let done = false;
      let reads = 0;
      const problems: string[] = [];
      const deadline = Date.now() + 90_000;
      const reader = (async () => {
        for (let n = 0; !done && Date.now() < deadline; n++) {
          // index.json first, as clients read it: it is replaced after images.json, so the products
          // it names must all be in the images.json fetched after it.
          const streams = await request('GET', `/streams/v1/index.json?read=${n}`);
          const images = await request('GET', `/streams/v1/images.json?read=${n}`);
          let streamsIndex: { index?: Record<string, { products?: string[] }> };
          let imagesIndex: TreeIndex;
          try {
            if (streams.status !== 200) throw new Error(`status ${streams.status}`);
            streamsIndex = JSON.parse(streams.body.toString('utf8')) as typeof streamsIndex;
          } catch (e) {
            problems.push(`read ${n}: index.json (${streams.body.length} bytes): ${String(e)}`);
            continue;
          }
          try {
            if (images.status !== 200) throw new Error(`status ${images.status}`);
            imagesIndex = JSON.parse(images.body.toString('utf8')) as TreeIndex;
          } catch (e) {
            problems.push(`read ${n}: images.json (${images.body.length} bytes): ${String(e)}`);
            continue;
          }
          const paths = treePaths(imagesIndex);
          const heads = await Promise.all(paths.map((p) => request('HEAD', `/${p}`)));
          heads.forEach((head, i) => {
            if (head.status !== 200) problems.push(`read ${n}: HEAD /${paths[i]} answered ${head.status}`);
          });
          for (const entry of Object.values(streamsIndex.index ?? {}))
            for (const product of entry.products ?? [])
              if (!imagesIndex.products?.[product])
                problems.push(`read ${n}: index.json names ${product}, which images.json does not hold`);
          reads++;
          await sleep(5); // leave some CPU to the publishes
        }
      })();

      let results: BundleRun[] = [];
      try {
        // In parallel: uploads and staging overlap, the commits take turns under the lock.
        results = await Promise.all(images.map((image) => runBundle(inputsFor(registry, image))));
      } finally {
        done = true;
        await reader;
        agent.destroy();
      }
      console.log(`reader: ${reads} consistent reads of images.json during ${images.length} publishes`);

      for (const result of results) expectExit(result, 0);
      expect(problems.slice(0, 20)).toEqual([]);
      expect(reads).toBeGreaterThanOrEqual(20);
      const listed = await listedByIncus(registry);
      for (const image of images) expect(listed).toContain(image.fingerprint);
      await expectVerifies(registry);
    },
    TIMEOUT,
  );
});

describe('a runner killed mid-run', () => {
  it(
    'during the upload: the live tree is untouched, and the next run publishes and cleans up',
    async () => {
      const registry = await newRegistry();
      // A live index to compare with (built while the big image is made).
      const [seed, big] = await Promise.all([
        newImage({ variant: 'kill-seed' }).then((image) => runBundle(inputsFor(registry, image))),
        newImage({ variant: 'kill-upload', rootfsBytes: 64 * MiB, compression: 'gzip' }),
      ]);
      expectExit(seed, 0);
      const before = await fsp.readFile(imagesJsonPath(registry));
      const rootfsSize = (await fsp.stat(big.rootfs)).size;

      const started = start(inputsFor(registry, big));
      const partial = await pollWhileRunning(started, 5, 60_000, async () =>
        (await walk(registry.uploadDir)).find((e) => e.path.endsWith('.partial') && e.size > MiB),
      );
      started.child.kill('SIGKILL');
      const killed = await started.done;
      expect({ partial, log: killed.stdout }).toMatchObject({
        partial: expect.objectContaining({ path: expect.any(String) }),
      });
      expect(partial!.size).toBeLessThan(rootfsSize);
      expect(killed.code).toBe(137);

      // The live index is exactly as before, and the tree verifies.
      expect((await fsp.readFile(imagesJsonPath(registry))).equals(before)).toBe(true);
      await expectVerifies(registry);

      const again = await runBundle(inputsFor(registry, big));
      expectExit(again, 0);
      expect(again.outputs['status']).toBe('published');
      expect(again.outputs['fingerprint']).toBe(big.fingerprint);
      expect(await listedByIncus(registry)).toContain(big.fingerprint);
      await expectVerifies(registry);
      expect(await unreferencedImageFiles(registry)).toEqual([]);
      await expectChecksumsHold(registry);
      expect(await uploadLeftovers(registry)).toEqual([]);
      expect(await stagingLeftovers(registry)).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'during the server-side step: the tree is as before or fully published, and the lock died with the run',
    async () => {
      const registry = await newRegistry();
      // A live index to compare with (built while the big image is made).
      const [seed, image] = await Promise.all([
        newImage({ variant: 'stage-seed' }).then((image) => runBundle(inputsFor(registry, image))),
        newImage({ variant: 'kill-stage', rootfsBytes: 32 * MiB, compression: 'gzip' }),
      ]);
      expectExit(seed, 0);
      const before = await fsp.readFile(imagesJsonPath(registry));

      const started = start(inputsFor(registry, image));
      const staged = await pollWhileRunning(started, 5, 60_000, () => {
        try {
          return readdirSync(stagingRoot(registry)).length > 0 ? true : undefined;
        } catch {
          return undefined;
        }
      });
      started.child.kill('SIGKILL');
      const killed = await started.done;
      expect({ staged, log: killed.stdout }).toMatchObject({ staged: true });
      expect(killed.code).toBe(137);

      // Right after the kill, and whatever the server-side commands still do: a complete index,
      // either the old one or one that lists the image, naming only files that exist.
      const after = await fsp.readFile(imagesJsonPath(registry));
      const index = JSON.parse(after.toString('utf8')) as TreeIndex;
      if (!after.equals(before)) expect(listedFingerprints(index)).toContain(image.fingerprint);
      expect(await missingFiles(registry, index)).toEqual([]);
      await expectVerifies(registry);

      const t0 = Date.now();
      const again = await runBundle(inputsFor(registry, image, { 'lock-timeout': '60' }));
      const seconds = (Date.now() - t0) / 1000;
      expectExit(again, 0);
      expect(['published', 'unchanged']).toContain(again.outputs['status']);
      expect(again.outputs['fingerprint']).toBe(image.fingerprint);
      // The killed run's lock went with its SSH session: no waiting for lock-timeout.
      expect(seconds).toBeLessThan(30);

      expect(await listedByIncus(registry)).toContain(image.fingerprint);
      const final = await readTreeIndex(registry);
      expect(await missingFiles(registry, final)).toEqual([]);
      await expectVerifies(registry);
      expect(await unreferencedImageFiles(registry)).toEqual([]);
      await expectChecksumsHold(registry);
      expect(await uploadLeftovers(registry)).toEqual([]);
      expect(await stagingLeftovers(registry)).toEqual([]);
    },
    TIMEOUT,
  );
});

describe('a dropped connection', () => {
  it(
    'is retried and the upload resumes',
    async () => {
      const registry = await newRegistry();
      const proxy = await startProxy({ targetPort: registry.sshPort, cutAfterBytes: 16 * MiB });
      proxies.push(proxy);
      const image = await newImage({ variant: 'proxy', rootfsBytes: 48 * MiB, compression: 'gzip' });
      const total = (await fsp.stat(image.rootfs)).size + (await fsp.stat(image.metadata)).size;

      // Same sshd behind another port: the host-fingerprint pin (not known-hosts, which is per
      // host:port) still matches.
      const result = await runBundle(inputsFor(registry, image, { port: String(proxy.port) }));
      expectExit(result, 0);
      expect(result.outputs['fingerprint']).toBe(image.fingerprint);
      expect(result.outputs['status']).toBe('published');
      expect(proxy.cuts).toBe(1);
      expect(proxy.connections).toBeGreaterThanOrEqual(2);
      // Resumed, not restarted: the later connections carried what the server said it lacked, not
      // the whole image again. How much of the 16 MiB reached the disk before the cut depends on
      // what sat in buffers when the sockets died, so the server's own count is the measure.
      const alreadyThere = [...result.stdout.matchAll(/resuming; (\d+) of \d+ bytes are already on the server/g)]
        .map((match) => Number(match[1]))
        .reduce((a, b) => a + b, 0);
      expect(alreadyThere).toBeGreaterThan(MiB);
      const afterCut = proxy.bytesUp.slice(1).reduce((a, b) => a + b, 0);
      // SSH framing and the upload protocol add well under 1 % to the bytes missing.
      expect(afterCut).toBeLessThan((total - alreadyThere) * 1.01);

      expect(await listedByIncus(registry)).toContain(image.fingerprint);
      await expectVerifies(registry);
      expect(await uploadLeftovers(registry)).toEqual([]);
    },
    TIMEOUT,
  );
});

describe('republishing and aliases', () => {
  const T = 1_780_000_000; // 2026-05-28, fixed serials for this test
  const UPLOAD_PROGRESS = /rootfs\.squashfs: \d+%/;

  it(
    'is idempotent; pinned aliases stay on their release, moving aliases follow it per architecture',
    async () => {
      const registry = await newRegistry();
      const [a, arm, b, d] = await Promise.all([
        newImage({ variant: 'node', architecture: 'x86_64', creationDate: T }),
        newImage({ variant: 'node', architecture: 'aarch64', creationDate: T }),
        newImage({ variant: 'node', architecture: 'x86_64', creationDate: T + 3600 }),
        // Another line of the same architecture, lexically after "node": if `latest` stayed on
        // both, clients would resolve it to the "node" one.
        newImage({ variant: 'zeta', architecture: 'x86_64', creationDate: T + 7200 }),
      ]);
      // Each release is a product of its own: the line and the serial.
      const releaseA = `Crynux:bookworm:node:amd64:${simplestreamsSerial(T)}`;
      const releaseB = `Crynux:bookworm:node:amd64:${simplestreamsSerial(T + 3600)}`;
      const arm64 = `Crynux:bookworm:node:arm64:${simplestreamsSerial(T)}`;
      const zeta = `Crynux:bookworm:zeta:amd64:${simplestreamsSerial(T + 7200)}`;

      const first = await runBundle(inputsFor(registry, a, { aliases: 'crynux-node:vA, crynux-node:latest' }));
      expectExit(first, 0);
      expect(first.outputs['status']).toBe('published');
      expect(first.outputs['product']).toBe(releaseA);
      expect(first.stdout).toMatch(UPLOAD_PROGRESS); // the progress line the next check relies on

      // The same files again: nothing uploaded or converted, the index unchanged.
      const indexAfterA = await fsp.readFile(imagesJsonPath(registry));
      const same = await runBundle(inputsFor(registry, a, { aliases: 'crynux-node:vA, crynux-node:latest' }));
      expectExit(same, 0);
      expect(same.outputs['status']).toBe('unchanged');
      expect(same.outputs['fingerprint']).toBe(a.fingerprint);
      expect(same.stdout.split('\n').filter((line) => UPLOAD_PROGRESS.test(line))).toEqual([]);
      expect(listedFingerprints(await readTreeIndex(registry))).toEqual([a.fingerprint]);
      expect(await fsp.readFile(imagesJsonPath(registry))).toEqual(indexAfterA);
      expect(productAliases(JSON.parse(indexAfterA.toString('utf8')) as TreeIndex, releaseA).sort()).toEqual([
        'crynux-node:latest',
        'crynux-node:vA',
      ]);

      const armRun = await runBundle(inputsFor(registry, arm, { aliases: 'crynux-node:latest' }));
      expectExit(armRun, 0);
      expect(armRun.outputs['status']).toBe('published');

      // Release B: a product of its own. `latest` moves to it; vA stays on A.
      const release = await runBundle(inputsFor(registry, b, { aliases: 'crynux-node:vB, crynux-node:latest' }));
      expectExit(release, 0);
      expect(release.outputs['status']).toBe('published');
      expect(release.outputs['product']).toBe(releaseB);
      expect(await registry.incusImageInfo('crynux-node:latest')).toContain(`Fingerprint: ${b.fingerprint}`);
      expect(await registry.incusImageInfo('crynux-node:vB')).toContain(`Fingerprint: ${b.fingerprint}`);
      expect(await registry.incusImageInfo('crynux-node:vA')).toContain(`Fingerprint: ${a.fingerprint}`);
      expect(await registry.incusImageInfo(a.fingerprint)).toContain(`Fingerprint: ${a.fingerprint}`);
      let index = await readTreeIndex(registry);
      expect(productAliases(index, releaseA)).toEqual(['crynux-node:vA']);
      expect(productAliases(index, releaseB).sort()).toEqual(['crynux-node:latest', 'crynux-node:vB']);
      expect(productAliases(index, arm64)).toEqual(['crynux-node:latest']);

      // `latest` moves to another line of the same architecture; arm64 keeps its own.
      const moved = await runBundle(inputsFor(registry, d, { aliases: 'crynux-node:latest' }));
      expectExit(moved, 0);
      expect(await registry.incusImageInfo('crynux-node:latest')).toContain(`Fingerprint: ${d.fingerprint}`);
      index = await readTreeIndex(registry);
      expect(productAliases(index, zeta)).toEqual(['crynux-node:latest']);
      expect(productAliases(index, releaseA)).toEqual(['crynux-node:vA']);
      expect(productAliases(index, releaseB)).toEqual(['crynux-node:vB']);
      expect(productAliases(index, arm64)).toEqual(['crynux-node:latest']);
      const listed = await listedByIncus(registry);
      for (const image of [a, arm, b, d]) expect(listed).toContain(image.fingerprint);
      await expectVerifies(registry);
    },
    TIMEOUT,
  );

  it(
    'refuses another image under a published product and serial unless replace is true',
    async () => {
      const registry = await newRegistry();
      const original = await newImage({ variant: 'serial', creationDate: T });
      expectExit(await runBundle(inputsFor(registry, original)), 0);
      // A rebuild within the same minute: same product and serial, other content.
      const rebuilt = await newImage({ variant: 'serial', creationDate: T });
      expect(rebuilt.fingerprint).not.toBe(original.fingerprint);
      const before = await fsp.readFile(imagesJsonPath(registry));

      const refused = await runBundle(inputsFor(registry, rebuilt));
      expectExit(refused, 1);
      const errors = refused.stdout.split('\n').filter((line) => line.startsWith('::error'));
      expect(errors.join('\n')).toMatch(/replace/);
      expect((await fsp.readFile(imagesJsonPath(registry))).equals(before)).toBe(true);

      const replaced = await runBundle(inputsFor(registry, rebuilt, { replace: 'true' }));
      expectExit(replaced, 0);
      expect(replaced.outputs['status']).toBe('replaced');
      expect(replaced.outputs['fingerprint']).toBe(rebuilt.fingerprint);
      const listed = await listedByIncus(registry);
      expect(listed).toContain(rebuilt.fingerprint);
      expect(listed).not.toContain(original.fingerprint);
      const index = await readTreeIndex(registry);
      expect(listedFingerprints(index)).toEqual([rebuilt.fingerprint]);
      expect(await missingFiles(registry, index)).toEqual([]);
      await expectVerifies(registry);
    },
    TIMEOUT,
  );
});

describe('the registry lock', () => {
  it(
    'fails with "busy" when another writer holds it past lock-timeout',
    async () => {
      const registry = await newRegistry();
      const state = path.join(registry.simplestreamsDir, '.lxc-publish');
      const lock = path.join(state, 'lock');
      const release = path.join(registry.root, 'release-lock');
      const holder = registry.ssh(
        `mkdir -p ${state} && exec flock ${lock} sh -c 'echo held; while [ ! -e ${release} ]; do sleep 0.1; done'`,
        { timeoutMs: 60_000 },
      );
      try {
        // Wait until the lock is really held.
        const deadline = Date.now() + 10_000;
        for (;;) {
          const probe = await registry.ssh(`flock -n ${lock} true`);
          if (probe.code !== 0) break;
          if (Date.now() > deadline) throw new Error('the holder did not take the lock');
          await sleep(50);
        }
        const image = await newImage({ variant: 'locked' });
        const t0 = Date.now();
        const result = await runBundle(inputsFor(registry, image, { 'lock-timeout': '2' }));
        expectExit(result, 1);
        expect(
          result.stdout
            .split('\n')
            .filter((line) => line.startsWith('::error'))
            .join('\n'),
        ).toMatch(/busy/i);
        expect(Date.now() - t0).toBeLessThan(30_000);
        expect(listedFingerprints(await readTreeIndex(registry).catch(() => ({ products: {} })))).not.toContain(
          image.fingerprint,
        );
      } finally {
        await fsp.writeFile(release, '');
        const held = await holder;
        expect(held.stdout).toContain('held');
      }
    },
    TIMEOUT,
  );
});
