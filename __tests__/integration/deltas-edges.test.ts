// Deltas at their edges, through the committed bundle: with keep-versions a delta is made only
// from a release that stays (keep-versions 1 makes none, and the output never reports a delta
// the index does not hold); a base whose squashfs on the server is not the file the index names
// gives no delta (it would pass the decode check here and fail on every client); and images/
// never holds a file the index does not name.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle, type BundleRun, type Inputs } from '../harness/action.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { readTreeIndex, treeItems, type TreeItem } from '../harness/tree.js';

const TIMEOUT = 300_000;
const DAY = 86400;
let work: string;
let registry: Registry;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-deltas-edges-'));
  registry = await startRegistry();
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

/** The items of one line's products (its variant is the key's third field). */
async function lineItems(variant: string): Promise<TreeItem[]> {
  return treeItems(await readTreeIndex(registry), (key) => key.split(':')[2] === variant);
}

/** Releases of one line, each a small change from the one before (so that deltas are small). */
async function releases(variant: string, count: number): Promise<TestImage[]> {
  const bytes = randomBytes(1 << 20);
  const made: TestImage[] = [];
  for (let n = 0; n < count; n++) {
    randomBytes(4096).copy(bytes, 4096 * (n + 1));
    const payload = path.join(work, `${variant}-payload-${n}`);
    await fsp.writeFile(payload, bytes);
    made.push(
      await makeSplitContainerImage(path.join(work, `${variant}-${n}`), {
        variant,
        compression: 'gzip',
        payloadFile: payload,
        creationDate: 1764547200 + n * DAY,
      }),
    );
  }
  return made;
}

async function publish(image: TestImage, extra: Inputs = {}): Promise<BundleRun> {
  const result = await runBundle(inputsFor(registry, image, extra));
  if (result.code !== 0) throw new Error(`the bundle failed:\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** Every file in images/ is named by the index, or retired (kept for its grace time), or SHA256SUMS. */
async function expectNoUnnamedImageFiles(): Promise<void> {
  const named = new Set(treeItems(await readTreeIndex(registry)).map((item) => item.path));
  const retired = (
    await fsp.readFile(path.join(registry.simplestreamsDir, '.lxc-publish/retired'), 'utf8').catch(() => '')
  )
    .split('\n')
    .map((line) => line.split(' ')[1]);
  for (const file of retired) if (file) named.add(file);
  const files = await fsp.readdir(path.join(registry.simplestreamsDir, 'images'));
  expect(files.filter((file) => file !== 'SHA256SUMS' && !named.has(`images/${file}`))).toEqual([]);
}

const deltasOf = (result: BundleRun) => JSON.parse(result.outputs['deltas'] ?? 'null') as { base: string }[];

describe('deltas with keep-versions', () => {
  it(
    'keep-versions 1: no delta is made (its base would go in the same index)',
    async () => {
      const [a, b] = await releases('keep-one', 2);
      await publish(a!, { 'keep-versions': '1' });
      const second = await publish(b!, { 'keep-versions': '1' });
      expect(deltasOf(second)).toEqual([]);
      expect(second.stdout).not.toMatch(/Delta from release/);
      expect((await lineItems('keep-one')).filter((item) => item.ftype === 'squashfs.vcdiff')).toEqual([]);
      await expectNoUnnamedImageFiles();
    },
    TIMEOUT,
  );

  it(
    'keep-versions 2: a delta from the previous release, reported as the index holds it',
    async () => {
      const [a, b, c] = await releases('keep-two', 3);
      await publish(a!, { 'keep-versions': '2' });
      await publish(b!, { 'keep-versions': '2' });
      const third = await publish(c!, { 'keep-versions': '2', 'delta-bases': '2' });
      const reported = deltasOf(third);
      // delta-bases 2, but only B stays beside C: one delta, from B.
      expect(reported).toHaveLength(1);
      const deltas = (await lineItems('keep-two')).filter((item) => item.ftype === 'squashfs.vcdiff');
      expect(deltas).toHaveLength(1); // C's from B; B's from A went with A
      expect(deltas[0]!.path).toContain(`.${reported[0]!.base}.vcdiff`);
      await expectNoUnnamedImageFiles();
    },
    TIMEOUT,
  );
});

describe("a base whose squashfs on the server is not the index's", () => {
  it(
    'gives no delta, with a warning, and the publish goes on',
    async () => {
      const [a, b] = await releases('changed-base', 2);
      const first = await publish(a!);
      const index = await readTreeIndex(registry);
      const aSquashfs = Object.values(index.products[first.outputs['product']!]!.versions)
        .flatMap((version) => Object.values(version.items))
        .find((item) => item.ftype === 'squashfs')!;
      // Restored from the wrong file: B's squashfs in A's place (same owner and mode).
      const onServer = path.join(registry.simplestreamsDir, aSquashfs.path);
      const { uid, gid, mode } = await fsp.stat(onServer);
      await fsp.copyFile(b!.rootfs, onServer);
      await fsp.chown(onServer, uid, gid);
      await fsp.chmod(onServer, mode & 0o777);
      const second = await publish(b!);
      expect(second.outputs['status']).toBe('published');
      expect(deltasOf(second)).toEqual([]);
      expect(second.stdout).toMatch(
        /::warning::No delta from release \d+: the base's squashfs on the server is not the file/,
      );
      expect((await lineItems('changed-base')).filter((item) => item.ftype === 'squashfs.vcdiff')).toEqual([]);
      await expectNoUnnamedImageFiles();
    },
    TIMEOUT,
  );
});
