// Publishing through src/ against the real loopback registry: sshd, incus-simplestreams, nginx,
// and the real incus client reading the result.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, markerPath } from '../harness/action.js';
import { inProcessPublisher } from '../harness/in-process.js';
import {
  makeSplitContainerImage,
  makeSplitVmImage,
  sha256File,
  simplestreamsSerial,
  type TestImage,
} from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

let registry: Registry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-test-'));
});
afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

const { log, publishWith } = inProcessPublisher();

let imageCount = 0;
async function newImage(make = makeSplitContainerImage, opts = {}): Promise<TestImage> {
  const dir = path.join(work, `image-${imageCount++}`);
  await fsp.mkdir(dir);
  return make(dir, opts);
}

/** Everything under a directory, for proving a failed run left nothing behind. */
async function listTree(dir: string): Promise<string[]> {
  const entries = await fsp.readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

describe('publish', () => {
  it('publishes a split container image that the incus client lists under the requested aliases', async () => {
    const image = await newImage(makeSplitContainerImage, { os: 'Crynux', release: 'bookworm', variant: 'node' });
    const result = await publishWith(inputsFor(registry, image, { aliases: 'crynux-node:v2.6.0\ncrynux-node:latest' }));

    expect(result).toEqual({
      status: 'published',
      fingerprint: image.fingerprint,
      product: `Crynux:bookworm:node:amd64:${simplestreamsSerial(image.creationDate)}`,
      serial: simplestreamsSerial(image.creationDate),
      aliases: ['crynux-node:v2.6.0', 'crynux-node:latest'],
      imageType: 'container',
      size: (await fsp.stat(image.metadata)).size + (await fsp.stat(image.rootfs)).size,
      deltas: [],
      // The index files a CDN in front should purge.
      changedPaths: ['streams/v1/images.json', 'streams/v1/index.json', 'images/SHA256SUMS'],
      // Both aliases were on no release before.
      aliasMoves: ['crynux-node:latest', 'crynux-node:v2.6.0'].map((alias) => ({
        alias,
        architecture: 'x86_64',
        type: 'container',
        from: null,
        to: {
          fingerprint: image.fingerprint,
          product: `Crynux:bookworm:node:amd64:${simplestreamsSerial(image.creationDate)}`,
          serial: simplestreamsSerial(image.creationDate),
        },
      })),
      // incus-simplestreams names both files after the metadata tarball's sha256.
      files: [
        {
          path: `images/${await sha256File(image.metadata)}.incus.tar.xz`,
          sha256: await sha256File(image.metadata),
          size: (await fsp.stat(image.metadata)).size,
          ftype: 'incus.tar.xz',
        },
        {
          path: `images/${await sha256File(image.metadata)}.squashfs`,
          sha256: await sha256File(image.rootfs),
          size: (await fsp.stat(image.rootfs)).size,
          ftype: 'squashfs',
        },
      ],
    });

    const listed = await registry.incusList();
    const mine = listed.find((entry) => entry.fingerprint === image.fingerprint);
    expect(mine).toBeDefined();
    expect(mine?.type).toBe('container');
    expect(mine?.aliases).toEqual(expect.arrayContaining(['crynux-node:v2.6.0', 'crynux-node:latest']));
    // no default {os}/{release}/{variant} alias unless asked for
    expect(mine?.aliases).not.toContain('Crynux/bookworm/node');

    // what `incus launch crynux:crynux-node:v2.6.0` resolves
    const info = await registry.incusImageInfo('crynux-node:v2.6.0');
    expect(info).toContain(`Fingerprint: ${image.fingerprint}`);

    // the run's upload directory is gone
    expect(await listTree(registry.uploadDir)).toEqual([]);
    // the log shows the phases as groups
    expect(log().join('')).toMatch(/::group::Upload/);
  });

  it('adds the default alias only when default-alias is true', async () => {
    const image = await newImage(makeSplitContainerImage, { os: 'Crynux', release: 'trixie', variant: 'default' });
    const result = await publishWith(inputsFor(registry, image, { 'default-alias': 'true' }));
    expect(result.aliases).toEqual(['Crynux/trixie/default']);
    const listed = await registry.incusList();
    expect(listed.find((entry) => entry.fingerprint === image.fingerprint)?.aliases).toContain('Crynux/trixie/default');
  });

  it('publishes a split VM image as virtual-machine', async () => {
    const image = await newImage(makeSplitVmImage, { os: 'Crynux', release: 'bookworm', variant: 'vm' });
    const result = await publishWith(inputsFor(registry, image, { aliases: 'crynux-node-vm' }));
    expect(result.imageType).toBe('virtual-machine');
    expect(result.fingerprint).toBe(image.fingerprint);
    const listed = await registry.incusList();
    expect(listed.find((entry) => entry.fingerprint === image.fingerprint)?.type).toBe('virtual-machine');
  });

  it('passes hostile aliases as data: nothing runs on the server and the alias is listed verbatim', async () => {
    const marker = markerPath();
    const hostile = [`$(touch\${IFS}${marker})`, `\`touch\${IFS}${marker}\``, `x;touch\${IFS}${marker}`, `'"|&<>`];
    const image = await newImage(makeSplitContainerImage, { os: 'Crynux', release: 'hostile', variant: 'default' });
    const result = await publishWith(inputsFor(registry, image, { aliases: hostile.join('\n') }));
    expect(existsSync(marker)).toBe(false);
    expect(result.aliases).toEqual(hostile);
    const listed = await registry.incusList();
    expect(listed.find((entry) => entry.fingerprint === image.fingerprint)?.aliases).toEqual(
      expect.arrayContaining(hostile),
    );
  });

  it('accepts a known-hosts pin instead of a fingerprint', async () => {
    const image = await newImage();
    const result = await publishWith(
      inputsFor(registry, image, { 'host-fingerprint': '', 'known-hosts': registry.knownHostsLine }),
    );
    expect(result.fingerprint).toBe(image.fingerprint);
    expect(log().join('')).toContain(`Host key verified: ssh-ed25519 ${registry.hostKeyFingerprint}`);
  });

  it('without a pin, refuses by default and publishes only with strict-host-key: false, warning with the fingerprint to pin', async () => {
    const image = await newImage();
    await expect(publishWith(inputsFor(registry, image, { 'host-fingerprint': '' }))).rejects.toThrow(
      `add "host-fingerprint: ${registry.hostKeyFingerprint}" to the step`,
    );
    const result = await publishWith(
      inputsFor(registry, image, { 'host-fingerprint': '', 'strict-host-key': 'false' }),
    );
    expect(result.fingerprint).toBe(image.fingerprint);
    const warning = log().find((line) => line.startsWith('::warning'));
    expect(warning).toContain(`host-fingerprint: ${registry.hostKeyFingerprint}`);
  });
});

describe('a login shell that talks', () => {
  // As root the harness publishes as its own user, whose ~/.bashrc this test may change for a moment.
  const asRoot = process.getuid?.() === 0;
  (asRoot ? it : it.skip)('does not break a first publish when shell startup prints to stderr', async () => {
    const talkative = await startRegistry();
    const home = (await talkative.ssh('printf %s "$HOME"')).stdout;
    const rc = path.join(home, '.bashrc');
    const original = await fsp.readFile(rc).catch(() => Buffer.from(''));
    try {
      await fsp.writeFile(rc, Buffer.concat([Buffer.from('echo "welcome (startup noise)" >&2\n'), original]));
      const check = await talkative.ssh('true');
      expect(check.stderr).toContain('startup noise'); // the noise really is there
      const image = await newImage();
      const result = await publishWith(inputsFor(talkative, image));
      expect(result.status).toBe('published');
      expect(result.fingerprint).toBe(image.fingerprint);
    } finally {
      await fsp.writeFile(rc, original);
      await talkative.stop();
    }
  });
});

describe('refusals', () => {
  it('stops before any upload when the pinned host key does not match, naming the presented key', async () => {
    const image = await newImage();
    const before = await listTree(path.dirname(registry.uploadDir));
    const wrong = 'SHA256:' + 'A'.repeat(43);
    await expect(publishWith(inputsFor(registry, image, { 'host-fingerprint': wrong }))).rejects.toThrow(
      new RegExp(`presented ssh-ed25519 ${registry.hostKeyFingerprint.replace(/[+/]/g, '\\$&')}.*Nothing was uploaded`),
    );
    expect(await listTree(path.dirname(registry.uploadDir))).toEqual(before);
  });

  it('stops when known-hosts lists another key for this host', async () => {
    const image = await newImage();
    const otherKey = 'AAAAC3NzaC1lZDI1NTE5AAAAIHcA2P7ViF7LrnOwVA1hI0HgNDa8g/0Zb4wN3aN6wjQg';
    const knownHosts = `[${registry.host}]:${registry.sshPort} ssh-ed25519 ${otherKey}`;
    await expect(
      publishWith(inputsFor(registry, image, { 'host-fingerprint': '', 'known-hosts': knownHosts })),
    ).rejects.toThrow(/known-hosts does not allow/);
  });

  it('refuses before any upload when the staging area is not writable, leaving the live index as it was', async () => {
    const liveIndex = path.join(registry.simplestreamsDir, 'streams/v1/images.json');
    await publishWith(inputsFor(registry, await newImage())); // so that there is a live index
    const before = await fsp.readFile(liveIndex);
    // A staging area the SSH user cannot write (as root: owned by root, read-only for others).
    const stagingRoot = path.join(registry.simplestreamsDir, '.lxc-publish/staging');
    const asRoot = process.getuid?.() === 0;
    if (asRoot) await fsp.chown(stagingRoot, 0, 0);
    await fsp.chmod(stagingRoot, 0o555);
    try {
      await expect(publishWith(inputsFor(registry, await newImage()))).rejects.toThrow(
        /^simplestreams-dir: the SSH user cannot write .*\.lxc-publish\/staging on the server\. .*Nothing was uploaded\./,
      );
      expect(await listTree(registry.uploadDir)).toEqual([]);
    } finally {
      await fsp.chmod(stagingRoot, 0o755);
      if (asRoot)
        await fsp.chown(
          stagingRoot,
          (await fsp.stat(registry.uploadDir)).uid,
          (await fsp.stat(registry.uploadDir)).gid,
        );
    }
    expect(await fsp.readFile(liveIndex)).toEqual(before);
    expect(await listTree(stagingRoot)).toEqual([]);
  });

  it('names simplestreams-dir when it does not exist on the server', async () => {
    const image = await newImage();
    await expect(
      publishWith(inputsFor(registry, image, { 'simplestreams-dir': path.join(registry.root, 'missing') })),
    ).rejects.toThrow(/simplestreams-dir: .*missing does not exist on the server/);
  });
});
