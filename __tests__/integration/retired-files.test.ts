// Files that leave the index: a replacement never rewrites the bytes of a file a client with a
// cached index may still download (simplestreams/file-names.ts), and a retired file is removed
// once its grace time is over unless the live index names its path, matched whole, never as a
// substring of the index (server/lib/housekeeping.sh).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expectExit, inputsFor, runBundle, runEntry, type Inputs } from '../harness/action.js';
import { makeSplitContainerImage, sha256File, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { missingFiles, readTreeIndex, treeItems } from '../harness/tree.js';

const TIMEOUT = 180_000;
let registry: Registry;
let work: string;
let count = 0;

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-retired-'));
});
afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

async function newImage(variant: string): Promise<TestImage> {
  const dir = path.join(work, `image-${count++}`);
  await fsp.mkdir(dir);
  return makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', variant });
}

/** An image with the same metadata tarball as `image` and a rootfs of other bytes (a rebuild). */
async function sameMetadata(image: TestImage): Promise<TestImage> {
  const dir = path.join(work, `image-${count++}`);
  await fsp.mkdir(dir);
  const metadata = path.join(dir, path.basename(image.metadata));
  const rootfs = path.join(dir, 'rootfs.squashfs');
  await fsp.copyFile(image.metadata, metadata);
  const bytes = await fsp.readFile(image.rootfs);
  bytes[bytes.length - 1]! ^= 0xff; // inside the squashfs's padding: still a valid image
  await fsp.writeFile(rootfs, bytes);
  const { createHash } = await import('node:crypto');
  const fingerprint = createHash('sha256')
    .update(await fsp.readFile(metadata))
    .update(bytes)
    .digest('hex');
  return { ...image, dir, metadata, rootfs, fingerprint };
}

async function publish(image: TestImage, extra: Inputs = {}) {
  const result = await runBundle(inputsFor(registry, image, extra));
  expectExit(result, 0);
  return result;
}

const served = (relative: string) => path.join(registry.simplestreamsDir, relative);

/** The data file of the release with `fingerprint`, as the live index names it. */
async function squashfsOf(fingerprint: string): Promise<{ path: string; sha256: string }> {
  const index = await readTreeIndex(registry);
  for (const product of Object.values(index.products)) {
    for (const version of Object.values(product.versions)) {
      if (version.items['incus.tar.xz']?.['combined_squashfs_sha256'] === fingerprint) {
        const squashfs = version.items['squashfs'];
        if (squashfs) return { path: squashfs.path, sha256: squashfs.sha256 };
      }
    }
  }
  throw new Error(`no release with fingerprint ${fingerprint}`);
}

/** Makes every entry of the retired list older than its grace time. */
async function ageRetired(): Promise<void> {
  const aged = await registry.ssh(`sed -i 's/^[0-9]* /0 /' ${served('.lxc-publish/retired')}`);
  expect(aged.code).toBe(0);
}

const removeInputs = (fingerprint: string) => ({
  host: registry.host,
  port: String(registry.sshPort),
  username: registry.username,
  'ssh-key': registry.privateKey,
  'host-fingerprint': registry.hostKeyFingerprint,
  'simplestreams-dir': registry.simplestreamsDir,
  fingerprint,
});

describe('a replacement built from the same metadata tarball', () => {
  it(
    'gets a data file of its own: the replaced bytes stay downloadable, untouched, for their grace time',
    async () => {
      const first = await newImage('replaced');
      await publish(first, { aliases: 'crynux-node:latest' });
      const old = await squashfsOf(first.fingerprint);
      const rebuilt = await sameMetadata(first);
      const replaced = await publish(rebuilt, { replace: 'true', aliases: 'crynux-node:latest' });
      expect(replaced.outputs['status']).toBe('replaced');
      const own = await squashfsOf(rebuilt.fingerprint);
      expect(own.path).not.toBe(old.path);
      expect(path.basename(own.path)).toMatch(new RegExp(`-${rebuilt.fingerprint.slice(0, 12)}\\.squashfs$`));
      // The replaced file still holds its own bytes (clients with a cached index download it).
      expect(await sha256File(served(old.path))).toBe(old.sha256);
      expect(await sha256File(served(own.path))).toBe(own.sha256);
      expect(await sha256File(served(own.path))).toBe(await sha256File(rebuilt.rootfs));
      const listed = await registry.incusList();
      expect(listed.map((image) => image.fingerprint)).toEqual([rebuilt.fingerprint]);
      expect(await missingFiles(registry)).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'published after the first was withdrawn, while its files wait out their grace, gets names of its own too',
    async () => {
      const first = await newImage('withdrawn');
      await publish(first);
      const old = await squashfsOf(first.fingerprint);
      expectExit(await runEntry({ entry: 'dist/remove/index.js', inputs: removeInputs(first.fingerprint) }), 0);
      // The index no longer names the file; it is retired, still on disk. The rebuild's staged
      // file has that very name.
      const rebuilt = await sameMetadata(first);
      const result = await publish(rebuilt);
      expect(result.stdout).toContain('publishing under names of its own');
      const own = await squashfsOf(rebuilt.fingerprint);
      expect(own.path).not.toBe(old.path);
      expect(await sha256File(served(old.path))).toBe(old.sha256);
      expect(await sha256File(served(own.path))).toBe(await sha256File(rebuilt.rootfs));
      expect(await missingFiles(registry)).toEqual([]);
    },
    TIMEOUT,
  );
});

describe('retired files', () => {
  it(
    'go once their grace is over, even when an alias spells their path; those the index names again stay',
    async () => {
      const gone = await newImage('gone');
      await publish(gone);
      const goneFile = await squashfsOf(gone.fingerprint);
      expectExit(await runEntry({ entry: 'dist/remove/index.js', inputs: removeInputs(gone.fingerprint) }), 0);
      // Another image whose alias is that very path: a text search of images.json would find it.
      await publish(await newImage('spelled'), { aliases: goneFile.path });
      expect(JSON.stringify(await readTreeIndex(registry))).toContain(`"${goneFile.path}"`);
      await ageRetired();
      await publish(await newImage('later'));
      await expect(fsp.stat(served(goneFile.path))).rejects.toThrow(/ENOENT/);
      // Every file the index names is still there, the retired list holds none of them.
      expect(await missingFiles(registry)).toEqual([]);
      const named = new Set(treeItems(await readTreeIndex(registry)).map((item) => item.path));
      const retired = await fsp.readFile(served('.lxc-publish/retired'), 'utf8').catch(() => '');
      for (const line of retired.split('\n').filter(Boolean)) expect(named.has(line.split(' ')[1] ?? '')).toBe(false);
    },
    TIMEOUT,
  );
});
