// Locks held as leases (registry/lock.ts). A runner that stops (a VM suspended, a process frozen)
// or whose link goes silent holds no lock for long: the server lets it go once the heartbeats
// stop. And woken up, such a run changes nothing: every operation under a lock is fenced by its
// lease, so it can never undo what the run after it published.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorLines, expectExit, inputsFor, runBundle, startBundle } from '../harness/action.js';
import { openRegistry } from '../harness/connect.js';
import { sleep } from '../harness/exec.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startProxy, type TcpProxy } from '../harness/proxy.js';
import { commitRunsOn, startRegistry, type Registry } from '../harness/registry.js';
import { seedReleases } from '../harness/seed.js';
import { missingFiles } from '../harness/tree.js';
import { openInput } from '../../src/image/inspect.js';
import { closeFiles } from '../../src/image/local-file.js';
import type { LocalFile } from '../../src/image/local-image.js';
import type { RemoteImage } from '../../src/registry/layout.js';
import { REGISTRY_LEASE_SECONDS } from '../../src/registry/lock.js';
import type { Registry as Connected } from '../../src/registry/registry.js';
import { uploadImage } from '../../src/registry/upload.js';
import { quoteArg } from '../../src/ssh/shell.js';

const TIMEOUT = 240_000;
let work: string;
let images = 0;
const registries: Registry[] = [];
const proxies: TcpProxy[] = [];
const connected: Connected[] = [];
const files: LocalFile[] = [];

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-leases-'));
});
afterEach(async () => {
  for (const registry of connected.splice(0)) registry.close();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  await Promise.all(registries.splice(0).map((registry) => registry.stop()));
});
afterAll(async () => {
  await closeFiles(files);
  await fsp.rm(work, { recursive: true, force: true });
});

async function newRegistry(): Promise<Registry> {
  const registry = await startRegistry();
  registries.push(registry);
  return registry;
}

async function newImage(): Promise<TestImage> {
  const dir = path.join(work, `image-${images++}`);
  await fsp.mkdir(dir);
  return makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', variant: 'leases' });
}

/** Waits until `command` succeeds on the server (as the publishing user). */
async function untilOnServer(registry: Registry, command: string, timeoutSeconds = 60): Promise<void> {
  // Polled on the server itself: a new SSH connection per try takes seconds on a loaded machine,
  // long enough for the moment being waited for to pass.
  const loop = `until ${command}; do sleep 0.01; done`;
  const result = await registry.ssh(`timeout ${timeoutSeconds} sh -c ${quoteArg(loop)}`);
  if (result.code !== 0) throw new Error(`${command} did not succeed within ${timeoutSeconds} s`);
}

/** Two files of random bytes as one image, the second `rootfsBytes` long (the upload layer does not read them). */
async function silentImage(
  registry: Registry,
  name: string,
  rootfsBytes: number,
): Promise<{ bytes: Buffer[]; image: RemoteImage }> {
  const bytes = [randomBytes(256 * 1024), randomBytes(rootfsBytes)];
  const local: LocalFile[] = [];
  for (const [i, data] of bytes.entries()) {
    const file = path.join(work, `${name}-${i}`);
    await fsp.writeFile(file, data);
    local.push(await openInput(file, i === 0 ? 'metadata' : 'rootfs'));
  }
  files.push(...local);
  const key = createHash('sha256').update(`${name} ${Date.now()}`).digest('hex');
  const image: RemoteImage = {
    key,
    dir: path.join(registry.uploadDir, key),
    files: [
      { local: local[0] as LocalFile, name: 'metadata.tar.xz' },
      { local: local[1] as LocalFile, name: 'rootfs.squashfs' },
    ],
  };
  return { bytes, image };
}

const liveIndex = (registry: Registry): Promise<Buffer> =>
  fsp.readFile(path.join(registry.simplestreamsDir, 'streams/v1/images.json'));

describe('a runner stopped while it holds the registry lock', () => {
  it(
    'lets another publish through in under a minute; resumed, it fails without touching the registry',
    async () => {
      const registry = await newRegistry();
      // A registry large enough that the commit's payload (2.2 MB) takes 17 s on a thin uplink:
      // the runner is stopped long before all of it is through.
      await seedReleases(registry, { count: 1500, variant: 'seeded', aliasPrefix: 'seeded:' });
      const proxy = await startProxy({ targetPort: registry.sshPort, upBytesPerSecond: 128 * 1024 });
      proxies.push(proxy);
      const [first, second] = [await newImage(), await newImage()];
      const aliases = 'crynux-node:latest';
      const stopped = startBundle(inputsFor(registry, first, { port: String(proxy.port), aliases }), {}, TIMEOUT);
      // Its commit has started (under the registry lock), its payload on the way: the runner
      // machine is suspended, the process and what it had sent alike.
      await untilOnServer(registry, commitRunsOn(registry));
      stopped.child.kill('SIGSTOP');
      proxy.pauseUp();
      let afterOther: Buffer;
      try {
        const started = Date.now();
        const other = await runBundle(inputsFor(registry, second, { aliases }));
        const seconds = (Date.now() - started) / 1000;
        expectExit(other, 0);
        expect(other.outputs['status']).toBe('published');
        // It waited for the lease to end (REGISTRY_LEASE_SECONDS after the last heartbeat), not
        // for TCP to give up on the stopped runner (hours).
        expect(seconds).toBeLessThan(60);
        expect(other.stdout).toContain('is live with fingerprint');
        afterOther = await liveIndex(registry);
      } finally {
        proxy.resumeUp();
        stopped.child.kill('SIGCONT');
      }
      const resumed = await stopped.done;
      expectExit(resumed, 1);
      expect(errorLines(resumed).join('\n')).toMatch(/the registry lock was lost\. No heartbeat from this runner/);
      // Its whole payload reached the server after all: the fence, not a short payload, refused it.
      expect(await liveIndex(registry)).toEqual(afterOther);
      const listed = await registry.incusList();
      expect(listed.map((image) => image.fingerprint)).toContain(second.fingerprint);
      expect(listed.map((image) => image.fingerprint)).not.toContain(first.fingerprint);
      expect(listed.find((image) => image.aliases.includes(aliases))?.fingerprint).toBe(second.fingerprint);
      expect(await missingFiles(registry)).toEqual([]);
      expect(REGISTRY_LEASE_SECONDS).toBeLessThan(60);
    },
    TIMEOUT,
  );
});

describe('a link that goes silent during an upload', () => {
  it(
    'lets another run of the same image take over its lock and stop its writers; the silent run then fails',
    async () => {
      const registry = await newRegistry();
      const proxy = await startProxy({ targetPort: registry.sshPort, upBytesPerSecond: 4 << 20 });
      proxies.push(proxy);
      const { bytes, image } = await silentImage(registry, 'silent', 48 << 20);
      const options = { lockTimeout: 60, retries: 0, channels: 4, blockBytes: 1 << 20, leaseSeconds: 5 };
      const silent = await openRegistry(registry, { port: proxy.port });
      connected.push(silent);
      const silentUpload = uploadImage(silent, image, options);
      silentUpload.catch(() => undefined);
      // Its writers are at work on the server; then nothing it sends arrives any more.
      await untilOnServer(registry, `test -s ${path.join(image.dir, 'rootfs.squashfs.blocks')}`);
      proxy.pauseUp();
      const other = await openRegistry(registry);
      connected.push(other);
      const started = Date.now();
      const taken = await uploadImage(other, image, options);
      const seconds = (Date.now() - started) / 1000;
      expect(taken.fingerprint).toBe(createHash('sha256').update(bytes[0]!).update(bytes[1]!).digest('hex'));
      expect(seconds).toBeLessThan(30);
      // The silent run's writers were stopped: nobody but the new holder's run holds the write lock.
      const holders = await registry.ssh(
        `for fd in /proc/[0-9]*/fd/8; do [ "$(readlink "$fd")" = ${image.dir}/.write.lock ] && echo "$fd"; done; true`,
      );
      expect(holders.stdout.trim()).toBe('');
      expect((await fsp.readFile(path.join(image.dir, 'rootfs.squashfs'))).equals(bytes[1]!)).toBe(true);
      proxy.resumeUp();
      await expect(silentUpload).rejects.toThrow(/image's upload lock was lost/);
      // What the silent run sent once its link came back (its channels closed meanwhile) changed nothing.
      await sleep(2000);
      expect((await fsp.readFile(path.join(image.dir, 'rootfs.squashfs'))).equals(bytes[1]!)).toBe(true);
      await taken.lock.release();
    },
    TIMEOUT,
  );
  it(
    'keeps what the silent run had written: its writers are interrupted, record how far they got, and the run that takes over sends only the rest',
    async () => {
      const registry = await newRegistry();
      const silentProxy = await startProxy({ targetPort: registry.sshPort, upBytesPerSecond: 4 << 20 });
      const otherProxy = await startProxy({ targetPort: registry.sshPort });
      proxies.push(silentProxy, otherProxy);
      const { bytes, image } = await silentImage(registry, 'kept', 48 << 20);
      // Blocks of 16 MiB over two channels: when the link goes silent, no block of the rootfs is
      // complete; all that was written is in blocks that are cut short.
      const options = { lockTimeout: 60, retries: 0, channels: 2, blockBytes: 16 << 20, leaseSeconds: 5 };
      const silent = await openRegistry(registry, { port: silentProxy.port });
      connected.push(silent);
      const silentUpload = uploadImage(silent, image, options);
      silentUpload.catch(() => undefined);
      // 8 MiB of the rootfs written on the server (du counts what the sparse partial file holds).
      const partial = path.join(image.dir, 'rootfs.squashfs.partial');
      await untilOnServer(registry, `test "$(du -B1 ${partial} | cut -f1)" -ge ${8 << 20}`);
      silentProxy.pauseUp();
      // No block of the rootfs is complete: all that was written is in blocks cut short.
      expect((await fsp.stat(path.join(image.dir, 'rootfs.squashfs.blocks'))).size).toBe(0);
      const other = await openRegistry(registry, { port: otherProxy.port });
      connected.push(other);
      const taken = await uploadImage(other, image, options);
      expect(taken.fingerprint).toBe(createHash('sha256').update(bytes[0]!).update(bytes[1]!).digest('hex'));
      expect((await fsp.readFile(path.join(image.dir, 'rootfs.squashfs'))).equals(bytes[1]!)).toBe(true);
      // The 8 MiB (and more) the server held were not sent again.
      const sentByOther = otherProxy.bytesUp.reduce((a, b) => a + b, 0);
      expect(sentByOther).toBeLessThan(bytes[0]!.length + bytes[1]!.length - (8 << 20));
      silentProxy.resumeUp();
      await expect(silentUpload).rejects.toThrow(/image's upload lock was lost/);
      await taken.lock.release();
    },
    TIMEOUT,
  );
});
