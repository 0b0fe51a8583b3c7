// Images whose release is their version, as crynux-node builds them (release: v3.5.0, variant:
// the chain): three versions of the chain "base" and two of "near", each chain's publishes side
// by side with the other's, through the committed bundle with the README's settings for such
// images (keep-versions 2, release-is-version). The real Incus and LXD clients list and resolve
// what stays. Then latest-base is rolled back with the alias sub-action and a release goes out
// without it: the release latest-base names stays.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connectionInputs, expectExit, inputsFor, runBundle, runEntry } from '../harness/action.js';
import { imageInfo, parseImageInfo, type Client } from '../harness/clients.js';
import { makeSplitContainerImage, type TestImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

let registry: Registry;
let work: string;
const DAY = 86400;
const FIRST = 1764547200; // 2025-12-01
const CHAINS = ['base', 'near'] as const;
type Chain = (typeof CHAINS)[number];
const images = new Map<string, TestImage>(); // "v1-base" …

beforeAll(async () => {
  registry = await startRegistry();
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-release-version-'));
});
afterAll(async () => {
  await registry?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

/** Version `n` of a chain: release v3.n.0, a day after version n - 1 (the creation date orders them). */
async function build(n: number, chain: Chain): Promise<TestImage> {
  const image = await makeSplitContainerImage(path.join(work, `v${n}-${chain}`), {
    os: 'crynux-node',
    release: `v3.${n}.0`,
    variant: chain,
    creationDate: FIRST + n * DAY + CHAINS.indexOf(chain) * 60,
  });
  images.set(`v${n}-${chain}`, image);
  return image;
}

const settings = { 'keep-versions': '2', 'release-is-version': 'true' };

async function release(n: number, chain: Chain, aliases: string[]): Promise<void> {
  const image = await build(n, chain);
  const run = await runBundle(inputsFor(registry, image, { ...settings, aliases: aliases.join(', ') }));
  expectExit(run, 0);
  expect(run.outputs['status']).toBe('published');
}

/** The release workflow's matrix: every chain of version n at once. */
const releaseAll = (n: number, chains: readonly Chain[]) =>
  Promise.all(
    chains.map((chain) => release(n, chain, [`crynux-node:v3.${n}.0-${chain}`, `crynux-node:latest-${chain}`])),
  );

const fingerprintOf = (key: string) => images.get(key)?.fingerprint ?? `no image ${key}`;

async function listed(client: Client): Promise<string[]> {
  const list = client === 'incus' ? await registry.incusList() : await registry.lxcList();
  return [...new Set(list.map((image) => image.fingerprint))].sort();
}

async function resolves(client: Client, alias: string): Promise<string | undefined> {
  const info = await imageInfo(registry, client, alias);
  if (info.code !== 0) throw new Error(`${client} image info ${alias} failed: ${info.stderr}`);
  return parseImageInfo(info.stdout).fingerprint;
}

describe('three versions of base and two of near, keep-versions 2 with release-is-version', () => {
  beforeAll(async () => {
    await releaseAll(1, CHAINS);
    await releaseAll(2, CHAINS);
    await releaseAll(3, ['base']);
  }, 600_000);

  it.each(['incus', 'lxc'] as const)('%s lists base v2 and v3 and both near versions, not base v1', async (client) => {
    expect(await listed(client)).toEqual(['v2-base', 'v3-base', 'v1-near', 'v2-near'].map(fingerprintOf).sort());
  });

  it.each(['incus', 'lxc'] as const)('%s resolves every latest-<chain> to its newest version', async (client) => {
    expect(await resolves(client, 'crynux-node:latest-base')).toBe(fingerprintOf('v3-base'));
    expect(await resolves(client, 'crynux-node:latest-near')).toBe(fingerprintOf('v2-near'));
    expect(await resolves(client, 'crynux-node:v3.2.0-base')).toBe(fingerprintOf('v2-base'));
  });

  it("keeps base's two newest releases in the index, by creation date", async () => {
    const index = JSON.parse(
      await fsp.readFile(path.join(registry.simplestreamsDir, 'streams/v1/images.json'), 'utf8'),
    ) as { products: Record<string, { release: string; variant: string }> };
    const releasesOf = (chain: Chain) =>
      Object.values(index.products)
        .filter((product) => product.variant === chain)
        .map((product) => product.release)
        .sort();
    expect(releasesOf('base')).toEqual(['v3.2.0', 'v3.3.0']);
    expect(releasesOf('near')).toEqual(['v3.1.0', 'v3.2.0']);
  });

  describe('latest-base rolled back to v2, then base v4 published without latest-base', () => {
    beforeAll(async () => {
      const rollback = connectionInputs(registry, {
        fingerprint: fingerprintOf('v2-base'),
        aliases: 'crynux-node:latest-base',
      });
      expectExit(await runEntry({ entry: 'dist/alias/index.js', inputs: rollback }), 0);
      await release(4, 'base', ['crynux-node:v3.4.0-base']);
    }, 300_000);

    it.each(['incus', 'lxc'] as const)(
      '%s still lists v2, which latest-base names, and resolves it',
      async (client) => {
        expect(await resolves(client, 'crynux-node:latest-base')).toBe(fingerprintOf('v2-base'));
        expect(await listed(client)).toEqual(
          ['v2-base', 'v3-base', 'v4-base', 'v1-near', 'v2-near'].map(fingerprintOf).sort(),
        );
      },
    );
  });
});
