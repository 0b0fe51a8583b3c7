// What was inspected is what is uploaded. A run waits for its image's upload lock (held here, as
// another run uploading the same image would hold it) while the test changes its input: a rootfs
// symlink swapped to a same-size qcow2 must still publish the squashfs that was inspected, and a
// file appended to must be refused with "the file changed while it was being published".
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { imageKey } from '../../src/registry/layout.js';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, startBundle, type BundleRun } from '../harness/action.js';
import { runOk, sleep } from '../harness/exec.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

const TIMEOUT = 180_000;
let work: string;
let registry: Registry;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-image-files-'));
  await fsp.chmod(work, 0o755);
  registry = await startRegistry();
}, TIMEOUT);

afterAll(async () => {
  await registry?.stop();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

/** The image's key in the registry, named as the action names it before the fingerprint is known. */
async function uploadKey(metadata: string, dataSize: number): Promise<string> {
  const bytes = await fsp.readFile(metadata);
  const upload = createHash('sha256')
    .update(`lxc-publish upload ${bytes.length} ${dataSize}\n`)
    .update(bytes.subarray(0, 16 * 1024 * 1024))
    .digest('hex');
  return imageKey(registry, upload);
}

/**
 * Runs the bundle for `metadata` + `rootfs` while the test holds the image's upload lock; once the
 * run waits for it, `meanwhile` changes the input, then the lock is released.
 */
async function publishWhileLocked(
  metadata: string,
  rootfs: string,
  dataSize: number,
  meanwhile: () => Promise<void>,
): Promise<BundleRun> {
  // The image's lock lives in the registry's state directory (registry/layout.ts imageLockPath).
  const key = await uploadKey(metadata, dataSize);
  const dir = path.join(registry.simplestreamsDir, '.lxc-publish', 'locks');
  const lock = path.join(dir, key);
  const release = path.join(work, `release-${key}`);
  const holder = registry.ssh(
    `mkdir -p ${dir} && exec flock ${lock} sh -c 'echo held; while [ ! -e ${release} ]; do sleep 0.1; done'`,
    { timeoutMs: 120_000 },
  );
  try {
    const deadline = Date.now() + 10_000;
    while ((await registry.ssh(`flock -n ${lock} true`)).code === 0) {
      if (Date.now() > deadline) throw new Error('the holder did not take the lock');
      await sleep(50);
    }
    const started = startBundle(inputsFor(registry, { metadata, rootfs }, { 'lock-timeout': '60' }));
    let stdout = '';
    started.child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const waiting = Date.now() + 30_000;
    while (!stdout.includes('::group::Upload')) {
      if (Date.now() > waiting) throw new Error(`the run did not reach its upload:\n${stdout}`);
      await sleep(50);
    }
    await sleep(500); // the run now waits for the lock
    await meanwhile();
    await fsp.writeFile(release, '');
    return await started.done;
  } finally {
    await fsp.writeFile(release, '');
    await holder;
  }
}

async function liveIndex(): Promise<string> {
  return fsp.readFile(path.join(registry.simplestreamsDir, 'streams', 'v1', 'images.json'), 'utf8').catch(() => '');
}

async function newImage(variant: string): Promise<TestImage> {
  return makeSplitContainerImage(path.join(work, variant), { variant, rootfsBytes: 512 * 1024 });
}

describe('each file is read through the descriptor inspection opened', () => {
  it(
    'publishes the squashfs that was inspected when its symlink is swapped to a same-size qcow2 during the upload wait',
    async () => {
      const image = await newImage('swapped');
      const size = (await fsp.stat(image.rootfs)).size;
      const qcow2 = path.join(image.dir, 'other.qcow2');
      await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '64M']);
      await runOk('truncate', ['-s', String(size), qcow2]);
      const link = path.join(image.dir, 'rootfs-link');
      await fsp.symlink(image.rootfs, link);
      const result = await publishWhileLocked(image.metadata, link, size, async () => {
        await fsp.symlink(qcow2, `${link}.new`);
        await fsp.rename(`${link}.new`, link);
      });
      expect({ code: result.code, errors: result.stdout.split('\n').filter((l) => l.startsWith('::error')) }).toEqual({
        code: 0,
        errors: [],
      });
      expect(result.stdout).toMatch(/container image Crynux bookworm swapped amd64/);
      expect(result.outputs['image-type']).toBe('container');
      expect(result.outputs['fingerprint']).toBe(image.fingerprint);
      const index = JSON.parse(await liveIndex()) as {
        products: Record<string, { versions: Record<string, { items: Record<string, { ftype: string }> }> }>;
      };
      // Each release is a product of its own: the line and the serial.
      const items = Object.entries(index.products)
        .filter(([key]) => key.startsWith('Crynux:bookworm:swapped:amd64:'))
        .flatMap(([, product]) => Object.values(product.versions))
        .flatMap((v) => Object.values(v.items).map((item) => item.ftype));
      expect(items).toContain('squashfs');
      expect(items).not.toContain('disk-kvm.img');
    },
    TIMEOUT,
  );

  it(
    'refuses a file appended to during the upload wait: "the file changed while it was being published"',
    async () => {
      const image = await newImage('growing');
      const size = (await fsp.stat(image.rootfs)).size;
      const before = await liveIndex();
      const result = await publishWhileLocked(image.metadata, image.rootfs, size, () =>
        fsp.appendFile(image.rootfs, Buffer.alloc(4096, 1)),
      );
      const errors = result.stdout.split('\n').filter((line) => line.startsWith('::error'));
      expect({ code: result.code, errors: errors.length }).toEqual({ code: 1, errors: 1 });
      expect(errors[0]).toMatch(
        /rootfs: the file changed while it was being published \(".*rootfs\.squashfs": \d+ bytes when inspected, \d+ now\)/,
      );
      expect(result.outputs).toEqual({});
      expect(await liveIndex()).toBe(before);
    },
    TIMEOUT,
  );
});
