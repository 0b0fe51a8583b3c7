// The parallel upload (registry/upload.ts, server/write.sh) against the real loopback sshd:
// the exact bytes and the right fingerprint whatever the sizes and block boundaries, a resume
// after the link is cut mid-stream that sends only what the server lacks, a block list or partial
// file that does not match (sent again), and an sshd that refuses extra channels (MaxSessions).
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { inputsFor, runBundle } from '../harness/action.js';
import { makeSplitContainerImage } from '../harness/images.js';
import { startProxy, type TcpProxy } from '../harness/proxy.js';
import { openRegistry } from '../harness/connect.js';
import { startRegistry, type Registry as TestRegistry } from '../harness/registry.js';
import { Registry } from '../../src/registry/registry.js';
import { uploadImage, type UploadOptions } from '../../src/registry/upload.js';
import type { RemoteImage } from '../../src/registry/layout.js';
import { closeFiles } from '../../src/image/local-file.js';
import { openInput } from '../../src/image/inspect.js';
import type { LocalFile } from '../../src/image/local-image.js';

const MiB = 1 << 20;
const TIMEOUT = 180_000;

let work: string;
let registry: TestRegistry;
const proxies: TcpProxy[] = [];
const opened: Registry[] = [];

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-parallel-'));
  registry = await startRegistry();
}, 60_000);
afterEach(async () => {
  for (const r of opened.splice(0)) r.close();
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});
afterAll(async () => {
  await closeFiles(openFiles);
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

function open(port = registry.sshPort): Promise<Registry> {
  return openRegistry(registry, { port }).then((r) => {
    opened.push(r);
    return r;
  });
}

let count = 0;
const openFiles: LocalFile[] = [];
/** Two local files of the given sizes (random bytes), as an image to upload under a key of its own. */
async function files(sizes: [number, number]): Promise<{ image: RemoteImage; bytes: Buffer[]; fingerprint: string }> {
  const key = createHash('sha256').update(`parallel ${count++} ${Date.now()}`).digest('hex');
  const bytes = sizes.map((size) => randomBytes(size));
  const names = ['metadata.tar.xz', 'rootfs.squashfs'];
  const local = await Promise.all(
    bytes.map(async (data, i) => {
      const file = path.join(work, `${key.slice(0, 8)}-${names[i]}`);
      await fsp.writeFile(file, data);
      const opened = await openInput(file, i === 0 ? 'metadata' : 'rootfs');
      openFiles.push(opened);
      return opened;
    }),
  );
  const fingerprint = createHash('sha256').update(bytes[0]!).update(bytes[1]!).digest('hex');
  return {
    image: {
      key,
      dir: path.join(registry.uploadDir, key),
      files: local.map((l, i) => ({ local: l, name: names[i]! })),
    },
    bytes,
    fingerprint,
  };
}

async function expectOnServer(image: RemoteImage, bytes: Buffer[]): Promise<void> {
  for (const [i, file] of image.files.entries()) {
    const held = await fsp.readFile(path.join(image.dir, file.name));
    expect(held.length).toBe(bytes[i]!.length);
    expect(held.equals(bytes[i]!)).toBe(true);
  }
  // Nothing left of the upload's bookkeeping.
  expect((await fsp.readdir(image.dir)).filter((name) => /\.(partial|blocks)$/.test(name))).toEqual([]);
}

/** Leaves a file in the image's upload directory, owned by the publishing user (as a run of it would). */
async function leave(image: RemoteImage, name: string, content: string | Buffer): Promise<void> {
  const { uid, gid } = await fsp.stat(registry.uploadDir);
  await fsp.mkdir(image.dir, { recursive: true });
  await fsp.chown(image.dir, uid, gid);
  await fsp.writeFile(path.join(image.dir, name), content);
  await fsp.chown(path.join(image.dir, name), uid, gid);
}

const options = (extra: Partial<UploadOptions> = {}): UploadOptions => ({ lockTimeout: 30, retries: 0, ...extra });

describe('the parallel upload', () => {
  const block = 64 * 1024;
  it.each([
    ['tiny files', [1, 3]],
    ['exactly one block each', [block, block]],
    ['one byte past a block', [block + 1, 2 * block + 1]],
    ['not a multiple of the block', [1000, 13 * block - 7]],
    ['more blocks than channels', [5 * block + 11, 40 * block + 3]],
  ] as [string, [number, number]][])(
    'writes the exact bytes and yields the right fingerprint: %s',
    async (_name, sizes) => {
      const r = await open();
      const { image, bytes, fingerprint } = await files(sizes);
      const uploaded = await uploadImage(r, image, options({ channels: 4, blockBytes: block }));
      await uploaded.lock.release();
      expect(uploaded.fingerprint).toBe(fingerprint);
      await expectOnServer(image, bytes);
    },
    TIMEOUT,
  );

  it(
    'with the defaults (8 channels of 4 MiB blocks), on a 40 MiB file',
    async () => {
      const r = await open();
      const { image, bytes, fingerprint } = await files([5000, 40 * MiB + 12345]);
      const uploaded = await uploadImage(r, image, options());
      await uploaded.lock.release();
      expect(uploaded.fingerprint).toBe(fingerprint);
      await expectOnServer(image, bytes);
    },
    TIMEOUT,
  );

  it(
    'resumes after the link is cut mid-stream, sending only what the server lacks',
    async () => {
      // Up to a window (2 MiB) per channel may be in flight and lost when the link goes: cut late
      // enough that what the server recorded is more than that.
      const proxy = await startProxy({ targetPort: registry.sshPort, cutAfterBytes: 20 * MiB });
      proxies.push(proxy);
      const r = await open(proxy.port);
      const { image, bytes, fingerprint } = await files([3000, 32 * MiB]);
      const uploaded = await uploadImage(r, image, options({ retries: 2, channels: 4, blockBytes: MiB }));
      await uploaded.lock.release();
      expect(proxy.cuts).toBe(1);
      expect(uploaded.fingerprint).toBe(fingerprint);
      await expectOnServer(image, bytes);
      // About 20 MiB had passed the proxy, at most 8 MiB of it in flight and lost: the second
      // connection carried far less than the whole file again.
      const afterCut = proxy.bytesUp.slice(1).reduce((a, b) => a + b, 0);
      expect(afterCut).toBeLessThan(32 * MiB - 8 * MiB);
    },
    TIMEOUT,
  );

  it(
    'sends a file again when the bytes of its recorded blocks do not match, or its block list is not a block list',
    async () => {
      const r = await open();
      const { image, bytes, fingerprint } = await files([2000, 6 * block]);
      // What a broken earlier attempt might have left: a partial file whose recorded bytes differ,
      // and for the other file a block list that is no list of blocks.
      const [metadata, rootfs] = image.files.map((file) => file.name);
      await leave(image, `${rootfs}.partial`, Buffer.alloc(2 * block, 7));
      await leave(image, `${rootfs}.blocks`, `0 ${block}\n${block} ${block}\n`);
      await leave(image, `${metadata}.partial`, bytes[0]!);
      await leave(image, `${metadata}.blocks`, `0 2000; rm -rf /\n../x 5\n-1 3\n`);
      const uploaded = await uploadImage(r, image, options({ channels: 3, blockBytes: block }));
      await uploaded.lock.release();
      expect(uploaded.fingerprint).toBe(fingerprint);
      await expectOnServer(image, bytes);
    },
    TIMEOUT,
  );

  it(
    'resumes from the blocks an earlier run recorded, and reuses a complete file whose sha256 matches',
    async () => {
      const r = await open();
      const { image, bytes, fingerprint } = await files([2000, 6 * block]);
      const [metadata, rootfs] = image.files.map((file) => file.name);
      await leave(image, metadata!, bytes[0]!);
      // Blocks 0 and 2 are there (as a parallel upload leaves them: with holes).
      const partial = Buffer.alloc(3 * block);
      bytes[1]!.copy(partial, 0, 0, block);
      bytes[1]!.copy(partial, 2 * block, 2 * block, 3 * block);
      await leave(image, `${rootfs}.partial`, partial);
      await leave(image, `${rootfs}.blocks`, `${2 * block} ${block}\n0 ${block}\n`);
      const uploaded = await uploadImage(r, image, options({ channels: 2, blockBytes: block }));
      await uploaded.lock.release();
      expect(uploaded.fingerprint).toBe(fingerprint);
      await expectOnServer(image, bytes);
    },
    TIMEOUT,
  );
});

describe('what an earlier attempt left, and a link that stays down', () => {
  const block = 64 * 1024;
  it(
    'a stray line in the block list neither wedges the final check nor reaches its arithmetic',
    async () => {
      const { image, bytes, fingerprint } = await files([2000, 4 * block]);
      const rootfs = image.files[1]!.name;
      const marker = path.join(work, `arithmetic-${Date.now()}`);
      // Block 0 written and recorded, with lines no writer makes before and after it: one that
      // sorts first with the same offset, and one a shell's arithmetic would run.
      await leave(image, `${rootfs}.partial`, bytes[1]!.subarray(0, block));
      await leave(image, `${rootfs}.blocks`, `0 7 x\n0 ${block}\n0 a[$(touch${'${IFS}'}${marker})]\n`);
      for (let attempt = 0; attempt < 2; attempt++) {
        const r = await open();
        const uploaded = await uploadImage(r, image, options({ channels: 2, blockBytes: block }));
        await uploaded.lock.release();
        expect(uploaded.fingerprint).toBe(fingerprint);
        await expectOnServer(image, bytes);
      }
      await expect(fsp.stat(marker)).rejects.toThrow();
    },
    TIMEOUT,
  );

  it(
    'a reconnect that fails (the link still down) is one retry, not the end of the upload',
    async () => {
      // Connection 1 goes through and is cut after 4 MiB up; connection 2 is reset at once;
      // later ones go through.
      let count = 0;
      const server = net.createServer((client) => {
        count += 1;
        const which = count;
        client.on('error', () => undefined);
        if (which === 2) return void client.destroy();
        const upstream = net.connect(registry.sshPort, registry.host);
        upstream.on('error', () => undefined);
        let up = 0;
        client.on('data', (chunk: Buffer) => {
          up += chunk.length;
          if (which === 1 && up > 4 * MiB) {
            client.destroy();
            upstream.destroy();
            return;
          }
          upstream.write(chunk);
        });
        upstream.on('data', (chunk: Buffer) => client.write(chunk));
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      await new Promise<void>((resolve) => server.listen(0, registry.host, resolve));
      try {
        const r = await open((server.address() as net.AddressInfo).port);
        const { image, bytes, fingerprint } = await files([3000, 16 * MiB]);
        const uploaded = await uploadImage(r, image, options({ retries: 3, channels: 2, blockBytes: MiB }));
        await uploaded.lock.release();
        expect(uploaded.fingerprint).toBe(fingerprint);
        await expectOnServer(image, bytes);
        expect(count).toBeGreaterThanOrEqual(3);
      } finally {
        server.close();
      }
    },
    TIMEOUT,
  );
});

describe('an sshd that allows few channels per connection', () => {
  it(
    'MaxSessions 2, a short link: one upload channel is accepted, and the part under the registry lock still runs, a convert-command once',
    async () => {
      const limited = await startRegistry({ sshExtraConfig: 'MaxSessions 2' });
      try {
        const dir = path.join(work, 'limited-short');
        await fsp.mkdir(dir);
        const image = await makeSplitContainerImage(dir, { rootfsBytes: 6 * MiB, compression: 'gzip' });
        const result = await runBundle(inputsFor(limited, image));
        if (result.code !== 0) throw new Error(`the bundle failed:\n${result.stdout}\n${result.stderr}`);
        expect(result.outputs['status']).toBe('published');
        expect(result.stdout).toContain('this part runs over a connection of its own');
        expect((await limited.incusList()).map((listed) => listed.fingerprint)).toContain(image.fingerprint);
        // With convert-command too: refused before it runs, the owner's command runs once, over
        // the connection of its own (or there from the start, when the upload already met the limit).
        const other = await makeSplitContainerImage(path.join(dir, 'custom'), {
          variant: 'custom',
          compression: 'gzip',
        });
        // Where the server's user can run it, as an owner's script would be.
        const runs = path.join(limited.root, 'srv', 'convert-runs');
        const convert = path.join(limited.root, 'convert.sh');
        await fsp.writeFile(
          convert,
          `#!/bin/sh\nset -eu\necho ran >> ${runs}\nincus-simplestreams add --no-default-alias "$1" "$2"\n`,
          { mode: 0o755 },
        );
        const custom = await runBundle(inputsFor(limited, other, { 'convert-command': convert }));
        if (custom.code !== 0) throw new Error(`the bundle failed:\n${custom.stdout}\n${custom.stderr}`);
        expect(custom.outputs['status']).toBe('published');
        expect(custom.stdout).toContain('this part runs over a connection of its own');
        expect(await fsp.readFile(runs, 'utf8')).toBe('ran\n');
        expect((await limited.incusList()).map((listed) => listed.fingerprint)).toContain(other.fingerprint);
      } finally {
        await limited.stop();
      }
    },
    TIMEOUT,
  );

  it(
    'MaxSessions 2, a long link, every file already uploaded: publishes without opening a writer',
    async () => {
      const limited = await startRegistry({ sshExtraConfig: 'MaxSessions 2' });
      try {
        const dir = path.join(work, 'limited-resumed');
        await fsp.mkdir(dir);
        const image = await makeSplitContainerImage(dir, { rootfsBytes: 6 * MiB, compression: 'gzip' });
        const proxy = await startProxy({ targetPort: limited.sshPort, delayMs: 10 });
        proxies.push(proxy);
        // A first run uploads, then fails under the lock: the complete files stay for a rerun.
        const first = await runBundle(
          inputsFor(limited, image, { port: String(proxy.port), 'convert-command': '/bin/false' }),
        );
        expect(first.code).toBe(1);
        const second = await runBundle(inputsFor(limited, image, { port: String(proxy.port) }));
        if (second.code !== 0) throw new Error(`the bundle failed:\n${second.stdout}\n${second.stderr}`);
        expect(second.stdout).toMatch(/already on the server from an earlier run/);
        expect(second.outputs['status']).toBe('published');
      } finally {
        await limited.stop();
      }
    },
    TIMEOUT,
  );

  it(
    'still publishes on a long link, over the channels it accepts, with a notice',
    async () => {
      const limited = await startRegistry({ sshExtraConfig: 'MaxSessions 2' });
      try {
        const dir = path.join(work, 'limited');
        await fsp.mkdir(dir);
        const image = await makeSplitContainerImage(dir, { rootfsBytes: 24 * MiB, compression: 'gzip' });
        // Over a link of 20 ms round trip: long enough for the action to want several channels.
        const proxy = await startProxy({ targetPort: limited.sshPort, delayMs: 10 });
        proxies.push(proxy);
        const result = await runBundle(inputsFor(limited, image, { port: String(proxy.port) }));
        if (result.code !== 0) throw new Error(`the bundle failed:\n${result.stdout}\n${result.stderr}`);
        expect(result.outputs['status']).toBe('published');
        expect(result.outputs['fingerprint']).toBe(image.fingerprint);
        expect(result.stdout).toMatch(/::notice::The server accepted 1 of \d+ parallel upload channels/);
        expect((await limited.incusList()).map((listed) => listed.fingerprint)).toContain(image.fingerprint);
      } finally {
        await limited.stop();
      }
    },
    TIMEOUT,
  );
});
