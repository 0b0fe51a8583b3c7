// Every image kind (split container, split VM, unified container, unified VM), published through
// the committed bundle as a runner would, then read back by both clients: the Incus client
// (6.0) and the LXD client (5.0), which reads only the LXD items that lxd-compat adds.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle, type BundleRun, type Inputs } from '../harness/action.js';
import { imageInfo, lxcImageInfo, parseImageInfo, type Client } from '../harness/clients.js';
import {
  makeSplitContainerImage,
  makeSplitVmImage,
  makeUnifiedImage,
  type ImageOptions,
  type TestImage,
} from '../harness/images.js';
import { startRegistry, type ListedImage, type Registry } from '../harness/registry.js';

let registry: Registry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-kinds-'));
});
afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

type ImageType = 'container' | 'virtual-machine';

interface Kind {
  name: string;
  make: (dir: string, opts: ImageOptions) => Promise<TestImage>;
  /** What the image is: the action's image-type output. */
  imageType: ImageType;
  /**
   * What the clients installed here list it as. Incus 6.0 and LXD 5.0 type every unified
   * (combined) item as a container, whatever it holds: a unified VM shows as a container.
   */
  listedType: ImageType;
  unified: boolean;
}

const KINDS: Kind[] = [
  {
    name: 'split container',
    make: makeSplitContainerImage,
    imageType: 'container',
    listedType: 'container',
    unified: false,
  },
  {
    name: 'split VM',
    make: makeSplitVmImage,
    imageType: 'virtual-machine',
    listedType: 'virtual-machine',
    unified: false,
  },
  {
    name: 'unified container',
    make: (dir, opts) => makeUnifiedImage(dir, opts),
    imageType: 'container',
    listedType: 'container',
    unified: true,
  },
  {
    name: 'unified VM',
    make: (dir, opts) => makeUnifiedImage(dir, { ...opts, vm: true }),
    imageType: 'virtual-machine',
    listedType: 'container',
    unified: true,
  },
];

let count = 0;
async function newImage(kind: Kind, opts: ImageOptions = {}): Promise<TestImage> {
  const dir = path.join(work, `image-${count++}`);
  await fsp.mkdir(dir);
  return kind.make(dir, { os: 'Crynux', release: 'bookworm', ...opts });
}

/** Runs the bundle and fails with its log when the step failed. */
async function publishBundle(target: Registry, image: TestImage, extra: Inputs): Promise<BundleRun> {
  const result = await runBundle(inputsFor(target, image, extra));
  if (result.code !== 0 || result.outputs['fingerprint'] === undefined) {
    throw new Error(`the action failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

const warnings = (run: BundleRun): string[] => run.stdout.split('\n').filter((line) => line.startsWith('::warning'));

function listed(list: ListedImage[], fingerprint: string): ListedImage {
  const entries = list.filter((entry) => entry.fingerprint === fingerprint);
  expect(entries).toHaveLength(1);
  return entries[0] as ListedImage;
}

async function info(client: Client, ref: string, opts: { vm?: boolean } = {}) {
  const result = await imageInfo(registry, client, ref, opts);
  return { code: result.code, stderr: result.stderr, ...parseImageInfo(result.stdout) };
}

async function expectVerifyPasses(target: Registry): Promise<void> {
  const verify = await target.simplestreams(['verify']);
  expect({ code: verify.code, stderr: verify.stderr }).toEqual({ code: 0, stderr: '' });
}

describe.each(KINDS)('a $name', (kind) => {
  it('is published with its fingerprint and type, and both clients list and resolve it under the alias', async () => {
    const variant = kind.name.replace(/ /g, '-');
    const image = await newImage(kind, { variant });
    const alias = `crynux-kinds-${variant}:v1`;
    const run = await publishBundle(registry, image, { aliases: alias });

    // the outputs: the fingerprint the harness computed on its own, and what the image is
    expect(run.outputs['fingerprint']).toBe(image.fingerprint);
    expect(run.outputs['image-type']).toBe(kind.imageType);
    expect(run.outputs['status']).toBe('published');

    // both clients list the same fingerprint, with the alias and the type they give this kind
    const incus = listed(await registry.incusList(), image.fingerprint);
    const lxd = listed(await registry.lxcList(), image.fingerprint);
    for (const entry of [incus, lxd]) {
      expect(entry.aliases).toContain(alias);
      expect(entry.type).toBe(kind.listedType);
    }

    // and resolve the alias to it, as `incus launch` / `lxc launch` would
    expect(await registry.incusImageInfo(alias)).toContain(`Fingerprint: ${image.fingerprint}`);
    expect(parseImageInfo(await lxcImageInfo(registry, alias))).toEqual({
      fingerprint: image.fingerprint,
      type: kind.listedType,
    });

    // `--vm` (what `launch --vm` looks up) finds a split VM, and never a unified image
    if (kind.imageType === 'virtual-machine') {
      for (const client of ['incus', 'lxc'] as const) {
        const vm = await info(client, alias, { vm: true });
        if (kind.unified) expect(vm.code).not.toBe(0);
        else expect(vm).toMatchObject({ code: 0, fingerprint: image.fingerprint, type: 'virtual-machine' });
      }
    }

    await expectVerifyPasses(registry);

    // LXD is warned about only for what it cannot launch
    const lxdWarned = warnings(run).some((line) => /LXD/.test(line));
    expect(lxdWarned).toBe(kind.imageType === 'virtual-machine' && kind.unified);
  });
});

describe('unified tarball compressions', () => {
  it.each(['gzip', 'bzip2', 'zstd', 'none'] as const)('publishes a %s unified tarball', async (compression) => {
    const image = await makeUnifiedImage(path.join(work, `image-${count++}`), {
      os: 'Crynux',
      release: 'bookworm',
      variant: `unified-${compression}`,
    });
    const run = await publishBundle(registry, image, { aliases: `crynux-kinds-unified-${compression}` });
    expect(run.outputs['fingerprint']).toBe(image.fingerprint);
    expect(run.outputs['image-type']).toBe('container');
    expect(listed(await registry.lxcList(), image.fingerprint).aliases).toContain(
      `crynux-kinds-unified-${compression}`,
    );
    await expectVerifyPasses(registry);
  });
});

describe('a unified VM image', () => {
  it('warns in the log that LXD users cannot launch it', async () => {
    const image = await newImage(KINDS[3] as Kind, { variant: 'unified-vm-warning' });
    const run = await publishBundle(registry, image, { aliases: 'crynux-kinds-warning' });
    const lxd = warnings(run).filter((line) => line.includes('LXD'));
    expect(lxd).toHaveLength(1);
    expect(lxd[0]).toMatch(/^::warning::LXD treats unified .*containers.*split image/);
  });
});

describe('lxd-compat: false', () => {
  let plain: Registry;
  beforeAll(async () => {
    plain = await startRegistry();
  });
  afterAll(async () => {
    await plain?.stop();
  });

  it('publishes for Incus only: LXD lists nothing, and nothing warns about LXD', async () => {
    const images = [
      await newImage(KINDS[0] as Kind, { variant: 'incus-only' }),
      await newImage(KINDS[3] as Kind, { variant: 'incus-only-vm' }),
    ];
    for (const image of images) {
      const run = await publishBundle(plain, image, { aliases: `only-${image.variant}`, 'lxd-compat': 'false' });
      expect(run.outputs['fingerprint']).toBe(image.fingerprint);
      expect(warnings(run).filter((line) => line.includes('LXD'))).toEqual([]);
      expect((await plain.incusList()).map((entry) => entry.fingerprint)).toContain(image.fingerprint);
    }
    expect(await plain.lxcList()).toEqual([]);
    const index = await fsp.readFile(path.join(plain.simplestreamsDir, 'streams/v1/images.json'), 'utf8');
    expect(index).not.toMatch(/lxd\.tar\.xz|lxd_combined\.tar\.gz/);
    await expectVerifyPasses(plain);
  });

  it('a later publish with lxd-compat on gives the earlier versions LXD items too', async () => {
    const image = await newImage(KINDS[1] as Kind, { variant: 'incus-then-lxd' });
    await publishBundle(plain, image, { aliases: 'now-for-lxd' });
    const lxd = await plain.lxcList();
    const incus = await plain.incusList();
    expect(lxd.map((entry) => entry.fingerprint).sort()).toEqual(incus.map((entry) => entry.fingerprint).sort());
    expect(lxd).toHaveLength(3);
    await expectVerifyPasses(plain);
  });
});
