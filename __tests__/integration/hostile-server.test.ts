// The registry against a hostile neighbour: other runs with other upload-dirs, runs of the same
// image at once, and what another user (the web server's, or one that got the publisher's files)
// may have planted in the state directory. Every case runs the committed bundle against the real
// loopback registry; the scripts on the server are the ones the action sends.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expectExit, inputsFor, markerPath, runBundle, startBundle } from '../harness/action.js';
import { run } from '../harness/exec.js';
import { makeSplitContainerImage, type ImageOptions, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';
import { uploadKey } from '../../src/image/hashing.js';
import { DEFAULT_ROOTFS_LIMITS, inspectImage } from '../../src/image/inspect.js';
import { closeFiles } from '../../src/image/local-file.js';
import { imageFiles } from '../../src/image/local-image.js';
import { commit } from '../../src/registry/commit.js';
import { imageKey } from '../../src/registry/layout.js';
import { holdRegistryLock } from '../../src/registry/lock.js';
import type { ImagesIndex } from '../../src/simplestreams/images-index.js';
import { openRegistry } from '../harness/connect.js';
import { missingFiles } from '../harness/tree.js';

const TIMEOUT = 180_000;
const registries: Registry[] = [];
let work: string;
let imageCount = 0;

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-hostile-'));
});
afterEach(async () => {
  await Promise.all(registries.splice(0).map((registry) => registry.stop()));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

async function newRegistry(): Promise<Registry> {
  const registry = await startRegistry();
  registries.push(registry);
  return registry;
}

async function newImage(opts: ImageOptions = {}): Promise<TestImage> {
  const dir = path.join(work, `image-${imageCount++}`);
  await fsp.mkdir(dir);
  return makeSplitContainerImage(dir, { os: 'Crynux', release: 'bookworm', variant: 'hostile', ...opts });
}

/** Runs a command on the server as the publishing user; fails with its stderr. */
async function onServer(registry: Registry, command: string, input?: string): Promise<string> {
  const result = await registry.ssh(command, { ...(input === undefined ? {} : { input }), timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`${command} failed on the server (${result.code}): ${result.stderr}`);
  return result.stdout;
}

const state = (registry: Registry, ...parts: string[]) =>
  path.join(registry.simplestreamsDir, '.lxc-publish', ...parts);

/** The key the action gives a test image in a registry (the name of its upload, staging and lock). */
async function keyOf(registry: Registry, image: TestImage): Promise<string> {
  const local = await inspectImage(image.metadata, image.rootfs, DEFAULT_ROOTFS_LIMITS);
  try {
    return imageKey(registry, await uploadKey(local));
  } finally {
    await closeFiles(imageFiles(local));
  }
}

describe('runs with different upload-dirs', () => {
  it(
    'never remove a staged tree another run holds, and every path the index names exists',
    async () => {
      const registry = await newRegistry();
      // A run of another repository (another upload-dir) is staging image K: its tree exists and
      // it holds K's image lock.
      const key = 'ab'.repeat(32);
      await onServer(
        registry,
        `mkdir -p ${state(registry, 'staging', key, 'images')} && touch ${state(registry, 'staging', key, 'images', 'x.squashfs')}`,
      );
      const holder = registry.ssh(
        `mkdir -p ${state(registry, 'locks')} && flock ${state(registry, 'locks', key)} sh -c 'echo held; sleep 6'`,
        { timeoutMs: 60_000 },
      );
      await sleep(1500);
      const mine = await newImage();
      const other = path.join(registry.root, 'srv', 'lxc', 'uploads-other');
      const result = await runBundle(inputsFor(registry, mine, { 'upload-dir': other }));
      expectExit(result, 0);
      await expect(fsp.stat(state(registry, 'staging', key, 'images', 'x.squashfs'))).resolves.toBeDefined();
      await holder;

      // Four images from four upload-dirs at once, twice: all published, nothing named is missing.
      for (let round = 0; round < 2; round++) {
        const images = await Promise.all([0, 1, 2, 3].map(() => newImage()));
        const runs = await Promise.all(
          images.map(
            (image, i) =>
              startBundle(
                inputsFor(registry, image, { 'upload-dir': path.join(registry.root, 'srv', 'lxc', `up-${i}`) }),
              ).done,
          ),
        );
        for (const published of runs) expectExit(published, 0);
        expect(runs.map((published) => published.outputs['status'])).toEqual(Array(4).fill('published'));
        expect(await missingFiles(registry)).toEqual([]);
        const listed = (await registry.incusList()).map((entry) => entry.fingerprint);
        for (const image of images) expect(listed).toContain(image.fingerprint);
      }
    },
    TIMEOUT,
  );

  it('a commit whose staged files are gone fails loudly and changes nothing', async () => {
    const registry = await newRegistry();
    const first = await newImage();
    expectExit(await runBundle(inputsFor(registry, first)), 0);
    const live = path.join(registry.simplestreamsDir, 'streams/v1/images.json');
    const before = await fsp.readFile(live);
    const staging = state(registry, 'staging', 'cd'.repeat(32));
    await onServer(registry, `mkdir -p ${staging}/images`);
    // The commit as the action makes it, for a version whose files another run removed.
    const connected = await openRegistry(registry);
    try {
      const held = await holdRegistryLock(connected, 30);
      try {
        const next = JSON.parse(before.toString()) as ImagesIndex;
        next.products['other:product'] = { versions: {} };
        const committing = commit(connected, {
          lock: held.lock,
          live: next,
          changed: true,
          current: { text: held.liveText, sumsSha256: held.sumsSha256 },
          staging,
          stagedFiles: [{ staged: 'gone.squashfs', published: 'gone.squashfs' }],
          retired: [],
          done: [],
        });
        await expect(committing).rejects.toThrow(/the staged file gone\.squashfs is gone .*nothing was changed/);
      } finally {
        await held.lock.release();
      }
    } finally {
      connected.close();
    }
    expect(await fsp.readFile(live)).toEqual(before);
  });
});

describe('the same image from two runs at once', () => {
  it(
    'ends green for both, three rounds in a row',
    async () => {
      const registry = await newRegistry();
      for (let round = 0; round < 3; round++) {
        const image = await newImage({ rootfsBytes: 4 << 20 });
        const runs = await Promise.all([0, 1].map(() => startBundle(inputsFor(registry, image)).done));
        for (const published of runs) expectExit(published, 0);
        expect(runs.map((published) => published.outputs['status']).sort()).toEqual(['published', 'unchanged']);
        expect(runs.map((published) => published.outputs['fingerprint'])).toEqual([
          image.fingerprint,
          image.fingerprint,
        ]);
      }
      expect(await missingFiles(registry)).toEqual([]);
    },
    TIMEOUT,
  );
});

describe('what is read back from the state directory', () => {
  it(
    'a planted name in a staging tree cannot delete outside images/, nor a planted time run code',
    async () => {
      const registry = await newRegistry();
      const victim = path.join(registry.root, 'srv', 'lxc', 'victim.txt');
      await onServer(registry, `echo precious > ${victim}`);
      const marker = markerPath();
      const staging = state(registry, 'staging', 'ef'.repeat(32));
      await onServer(registry, `mkdir -p ${staging} && cat > ${staging}/moved`, '../../victim.txt\n');
      await onServer(
        registry,
        `cat > ${state(registry, 'retired')}`,
        `x[$(touch ${marker})] images/a.squashfs\n1 images/../../victim.txt\n`,
      );
      const result = await runBundle(inputsFor(registry, await newImage()));
      expectExit(result, 0);
      expect(await fsp.readFile(victim, 'utf8')).toBe('precious\n');
      await expect(fsp.stat(marker)).rejects.toThrow();
      // The planted staging tree is gone (its lock was free); the bad retired lines are dropped.
      await expect(fsp.stat(staging)).rejects.toThrow();
      expect(await fsp.readFile(state(registry, 'retired'), 'utf8')).toBe('');
    },
    TIMEOUT,
  );

  it(
    'a planted symlink in an upload is removed, not written through',
    async () => {
      const registry = await newRegistry();
      const image = await newImage();
      const key = await keyOf(registry, image);
      const victim = path.join(registry.root, 'srv', 'lxc', 'victim.bin');
      const dir = path.join(registry.uploadDir, key);
      await onServer(
        registry,
        `printf precious > ${victim} && mkdir -p ${dir} && ln -s ${victim} ${dir}/metadata.tar.xz.partial`,
      );
      const result = await runBundle(inputsFor(registry, image));
      expectExit(result, 0);
      expect(result.outputs['fingerprint']).toBe(image.fingerprint);
      expect(await fsp.readFile(victim, 'utf8')).toBe('precious');
    },
    TIMEOUT,
  );
});

describe('directories the web server could write', () => {
  it.each([
    ['upload-dir', (r: Registry) => r.uploadDir],
    ['simplestreams-dir', (r: Registry) => r.simplestreamsDir],
    ['simplestreams-dir', (r: Registry) => path.join(r.simplestreamsDir, '.lxc-publish')],
  ])(
    'are refused before any upload (%s)',
    async (input, dirOf) => {
      const registry = await newRegistry();
      expectExit(await runBundle(inputsFor(registry, await newImage())), 0); // makes .lxc-publish
      const dir = dirOf(registry);
      await onServer(registry, `chmod g+w ${dir}`);
      const uploadsBefore = await fsp.readdir(registry.uploadDir);
      const result = await runBundle(inputsFor(registry, await newImage()));
      expectExit(result, 1);
      const error = result.stdout.split('\n').filter((line) => line.startsWith('::error'));
      expect(error).toHaveLength(1);
      expect(error[0]).toContain(`check the ${input} input`);
      expect(error[0]).toContain(`chmod g-w,o-w ${dir}`);
      expect(await fsp.readdir(registry.uploadDir)).toEqual(uploadsBefore);
    },
    TIMEOUT,
  );

  it('a symlink inside simplestreams-dir is refused', async () => {
    const registry = await newRegistry();
    expectExit(await runBundle(inputsFor(registry, await newImage())), 0);
    const images = path.join(registry.simplestreamsDir, 'images');
    const elsewhere = path.join(registry.root, 'srv', 'lxc', 'elsewhere');
    await onServer(registry, `mv ${images} ${elsewhere} && ln -s ${elsewhere} ${images}`);
    const result = await runBundle(inputsFor(registry, await newImage()));
    expectExit(result, 1);
    expect(result.stdout).toMatch(/::error title=lxc-publish%3A check the simplestreams-dir input::.*symbolic link/);
  });
});

/** A well-formed sha256, so that each row is refused for its own fault. */
const HEX = 'a'.repeat(64);

describe('a damaged or hostile images.json', () => {
  const liveIndex = (registry: Registry) => path.join(registry.simplestreamsDir, 'streams/v1/images.json');
  const split = (items: string) =>
    `{"products":{"Crynux:bookworm:x:amd64":{"arch":"amd64","versions":{"202601010000":${items}}}}}`;

  it.each([
    ['a version without items', split('{}'), /versions\["202601010000"\] has no "items" object/],
    ['a __proto__ product', '{"products":{"__proto__":{"versions":{}}}}', /has a key named __proto__/],
    [
      'an item path out of the tree',
      split(`{"items":{"squashfs":{"ftype":"squashfs","path":"../../victim","sha256":"${HEX}","size":1}}}`),
      /names the path "\.\.\/\.\.\/victim", outside the registry tree/,
    ],
    ['a negative size', split(`{"items":{"x":{"ftype":"x","path":"images/x","sha256":"${HEX}","size":-1}}}`), /"size"/],
  ])(
    'is refused, naming the entry, before anything is written (%s)',
    async (_name, text, entry) => {
      const registry = await newRegistry();
      await onServer(registry, `mkdir -p ${path.dirname(liveIndex(registry))} && cat > ${liveIndex(registry)}`, text);
      const result = await runBundle(inputsFor(registry, await newImage()));
      expectExit(result, 1);
      const errors = result.stdout.split('\n').filter((line) => line.startsWith('::error'));
      expect(errors).toHaveLength(1);
      expect(errors[0]).not.toMatch(/Unexpected error/);
      expect(errors[0]).toMatch(/images\.json/);
      expect(errors[0]).toMatch(entry);
      expect(await fsp.readFile(liveIndex(registry), 'utf8')).toBe(text);
      expect(await fsp.readdir(registry.uploadDir)).toEqual([]);
    },
    TIMEOUT,
  );

  it('that is huge stops the command and fails the run', async () => {
    const registry = await newRegistry();
    await onServer(
      registry,
      `mkdir -p ${path.dirname(liveIndex(registry))} && { head -c 70000000 /dev/zero | tr '\\0' ' '; echo '{"products":{}}'; } > ${liveIndex(registry)}`,
    );
    const result = await runBundle(inputsFor(registry, await newImage()));
    expectExit(result, 1);
    expect(result.stdout).toMatch(/::error .*printed more than 64 MiB and was stopped/);
    expect(await fsp.readdir(registry.uploadDir)).toEqual([]);
  });
});

describe('a symlinked upload-dir', () => {
  it('is cleaned like any other: an upload untouched for a day goes', async () => {
    const registry = await newRegistry();
    const real = path.join(registry.root, 'srv', 'lxc', 'uploads-real');
    const link = path.join(registry.root, 'srv', 'lxc', 'uploads-link');
    const stale = path.join(real, '12'.repeat(32));
    await onServer(
      registry,
      `mkdir -p ${stale} && touch ${stale}/rootfs.squashfs.partial && touch -d '2 days ago' ${stale} && ln -s ${real} ${link}`,
    );
    const result = await runBundle(inputsFor(registry, await newImage(), { 'upload-dir': link }));
    expectExit(result, 0);
    await expect(fsp.stat(stale)).rejects.toThrow();
  });
});

describe('a login shell that is not POSIX', () => {
  const user = 'lxcpublishcsh';
  let registry: Registry;
  let keys: string;

  beforeAll(async () => {
    const tcsh = await run('sh', ['-c', 'command -v tcsh']);
    if (tcsh.code !== 0) throw new Error('tcsh is missing: run .ci/install-system-packages.sh');
    if ((await run('id', ['-u', user])).code !== 0) {
      const made = await run('useradd', ['--create-home', '--shell', tcsh.stdout.trim(), user]);
      if (made.code !== 0 && made.code !== 9) throw new Error(`useradd failed: ${made.stderr}`);
    }
    await run('usermod', ['-p', '*', '--shell', tcsh.stdout.trim(), user]);
    // Somewhere the user can read: sshd reads the file with the user's rights.
    const keysDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-csh-'));
    await fsp.chmod(keysDir, 0o755);
    keys = path.join(keysDir, 'authorized_keys');
    registry = await startRegistry({ sshExtraConfig: `Match User ${user}\n  AuthorizedKeysFile ${keys}` });
    await fsp.copyFile(`${registry.privateKeyFile}.pub`, keys);
    await run('chown', [`${user}:`, keys]);
  });
  afterAll(async () => {
    await registry?.stop();
    if (keys) await fsp.rm(path.dirname(keys), { recursive: true, force: true });
  });

  it('is refused before anything runs, naming the fix', async () => {
    const image = await newImage();
    const uploadsBefore = await fsp.readdir(registry.uploadDir);
    const result = await runBundle(inputsFor(registry, image, { username: user }));
    expectExit(result, 1);
    expect(result.stdout).toMatch(
      /::error title=lxc-publish%3A check the username input::The login shell of "lxcpublishcsh"/,
    );
    expect(result.stdout).toContain(`chsh -s /bin/bash ${user}`);
    expect(await fsp.readdir(registry.uploadDir)).toEqual(uploadsBefore);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
