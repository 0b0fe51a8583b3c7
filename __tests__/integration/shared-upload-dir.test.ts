// Two registries on one server sharing one upload-dir (the default /var/www/lxc/uploads is the
// same for every registry): a run never resets, overwrites or removes an upload that a run for
// the other registry is using. Each image has a directory of its own per registry (registry/
// layout.ts imageKey), and a clean-up removes an old upload only when no holder marks it in use.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorLines, inputsFor, runBundle, startBundle } from '../harness/action.js';
import { openRegistry } from '../harness/connect.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { missingFiles } from '../harness/tree.js';
import { uploadKey } from '../../src/image/hashing.js';
import { DEFAULT_ROOTFS_LIMITS, inspectImage } from '../../src/image/inspect.js';
import { closeFiles } from '../../src/image/local-file.js';
import { imageFiles } from '../../src/image/local-image.js';
import { remoteImage } from '../../src/registry/layout.js';
import { uploadImage } from '../../src/registry/upload.js';

let registry: Registry;
/** The second registry: another simplestreams-dir on the same server, the same upload-dir. */
let beta: string;
let work: string;
let images = 0;

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-shared-'));
  beta = path.join(path.dirname(registry.simplestreamsDir), 'simplestreams-beta');
  const made = await registry.ssh(`mkdir -p '${beta}' && chmod 755 '${beta}'`);
  expect(made.code).toBe(0);
}, 60_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

async function newImage(rootfsBytes = 8 << 20): Promise<TestImage> {
  const dir = path.join(work, `image-${images++}`);
  await fsp.mkdir(dir);
  return makeSplitContainerImage(dir, { rootfsBytes });
}

/** The fingerprints a registry's index lists (read as plain JSON). */
async function listed(simplestreamsDir: string): Promise<string[]> {
  const text = await fsp.readFile(path.join(simplestreamsDir, 'streams/v1/images.json'), 'utf8');
  const index = JSON.parse(text) as {
    products: Record<string, { versions: Record<string, { items: Record<string, Record<string, string>> }> }>;
  };
  return Object.values(index.products).flatMap((product) =>
    Object.values(product.versions).map((version) => version.items['incus.tar.xz']?.['combined_squashfs_sha256'] ?? ''),
  );
}

describe('two registries sharing one upload-dir', () => {
  it('publish the same image at the same time, 10 rounds, all green', async () => {
    for (let round = 0; round < 10; round++) {
      const image = await newImage();
      const runs = await Promise.all([
        startBundle(inputsFor(registry, image, { 'lock-timeout': '60' })).done,
        startBundle(inputsFor(registry, image, { 'simplestreams-dir': beta, 'lock-timeout': '60' })).done,
      ]);
      for (const run of runs) {
        if (run.code !== 0) throw new Error(`round ${round}: ${errorLines(run).join(' ')}`);
        expect(run.outputs['status']).toBe('published');
        expect(run.outputs['fingerprint']).toBe(image.fingerprint);
      }
      expect(await listed(registry.simplestreamsDir)).toContain(image.fingerprint);
      expect(await listed(beta)).toContain(image.fingerprint);
    }
    expect(await missingFiles(registry)).toEqual([]);
    // Nothing left in the shared upload-dir: each run removed its own upload, and only that.
    expect(await fsp.readdir(registry.uploadDir)).toEqual([]);
  }, 900_000);

  it("a clean-up for one registry leaves an old upload another registry's run is using", async () => {
    const image = await newImage(1 << 20);
    const local = await inspectImage(image.metadata, image.rootfs, DEFAULT_ROOTFS_LIMITS);
    const other = await openRegistry(registry, { simplestreamsDir: beta });
    try {
      // A run for the beta registry has uploaded its image and holds its lock (it stages next).
      const remote = remoteImage(other.paths, await uploadKey(local), local);
      const held = await uploadImage(other, remote, { lockTimeout: 30, retries: 0 });
      // Its upload looks abandoned by its age alone: two days untouched.
      const aged = await registry.ssh(`touch -d '2 days ago' '${remote.dir}'`);
      expect(aged.code).toBe(0);
      // A publish to the first registry cleans up old uploads in the shared upload-dir.
      const published = await runBundle(inputsFor(registry, await newImage(1 << 20)));
      expect(published.code).toBe(0);
      const held2 = await fsp.readdir(remote.dir);
      expect(held2.sort()).toEqual(expect.arrayContaining(['metadata.tar.xz', 'rootfs.squashfs']));
      await held.lock.release();
      // Once nobody holds it, the old upload goes with the next clean-up.
      await registry.ssh(`touch -d '2 days ago' '${remote.dir}'`);
      expect((await runBundle(inputsFor(registry, await newImage(1 << 20)))).code).toBe(0);
      await expect(fsp.stat(remote.dir)).rejects.toThrow(/ENOENT/);
    } finally {
      other.close();
      await closeFiles(imageFiles(local));
    }
  }, 300_000);
});
