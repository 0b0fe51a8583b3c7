// A version alias stays on its version. Releases A (v2.6.0, latest) and B (v2.7.0, latest) of one
// image line, built the way distrobuilder builds an app release after release (same os, release,
// variant and architecture), are published through the committed bundle; then A again with
// `latest` (a rollback). The real Incus and LXD clients resolve every alias and fingerprint, and
// both daemons launch by alias and by fingerprint what the aliases name.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inputsFor, runBundle, type BundleRun } from '../harness/action.js';
import { imageInfo, parseImageInfo, type Client } from '../harness/clients.js';
import { type DaemonKind, type Daemons, freshRemoteUrl, startDaemons, stopDaemonTest } from '../harness/daemons.js';
import { makeBootableImage, type BootableImage } from '../harness/images.js';
import { startRegistry, type Registry } from '../harness/registry.js';

let registry: Registry;
let daemons: Daemons;
let work: string;
let a: BootableImage;
let b: BootableImage;

const DAY = 86400;
const RELEASE_A = 1764547200; // 2025-12-01
const line = { os: 'Crynux', release: 'bookworm', variant: 'node', form: 'split' } as const;

beforeAll(async () => {
  registry = await startRegistry();
  daemons = await startDaemons(registry.caFile);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-aliases-'));
  a = await makeBootableImage(path.join(work, 'a'), { ...line, creationDate: RELEASE_A });
  b = await makeBootableImage(path.join(work, 'b'), { ...line, creationDate: RELEASE_A + 30 * DAY });
});
afterAll(() => stopDaemonTest({ daemons, registry, work }));

async function publish(image: BootableImage, aliases: string): Promise<BundleRun> {
  const run = await runBundle(inputsFor(registry, image, { aliases }));
  if (run.code !== 0) throw new Error(`the action failed (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  return run;
}

/** The fingerprint `<client> image info` resolves `ref` to; fails with the client's message. */
async function resolve(client: Client, ref: string): Promise<string | undefined> {
  const info = await imageInfo(registry, client, ref);
  if (info.code !== 0) throw new Error(`${client} image info ${ref} failed: ${info.stderr}`);
  return parseImageInfo(info.stdout).fingerprint;
}

/** How often each fingerprint is listed by the client (each must be listed once). */
async function listingCounts(client: Client): Promise<Map<string, number>> {
  const listed = client === 'incus' ? await registry.incusList() : await registry.lxcList();
  const counts = new Map<string, number>();
  for (const image of listed) counts.set(image.fingerprint, (counts.get(image.fingerprint) ?? 0) + 1);
  return counts;
}

/** Launches `reference` from a remote this daemon has not cached, and returns the base image. */
async function launchedImage(kind: DaemonKind, reference: string): Promise<string> {
  const daemon = daemons[kind];
  const remote = await daemon.addRemote(freshRemoteUrl(registry.httpsUrl));
  const name = await daemon.launch(`${remote}:${reference}`);
  try {
    return await daemon.configGet(name, 'volatile.base_image');
  } finally {
    await daemon.deleteInstance(name);
    for (const image of await daemon.localImages()) await daemon.cliOk(['image', 'delete', image]);
    await daemon.cliOk(['remote', 'remove', remote]);
  }
}

describe('release A, then release B of the same image line', () => {
  let first: BundleRun;
  let second: BundleRun;
  beforeAll(async () => {
    first = await publish(a, 'crynux-node:v2.6.0, crynux-node:latest');
    second = await publish(b, 'crynux-node:v2.7.0, crynux-node:latest');
  });

  it('publishes each release as a product of its own, with the same line fields', () => {
    expect([first.outputs['fingerprint'], second.outputs['fingerprint']]).toEqual([a.fingerprint, b.fingerprint]);
    expect(first.outputs['product']).toBe(`Crynux:bookworm:node:amd64:${first.outputs['serial']}`);
    expect(second.outputs['product']).toBe(`Crynux:bookworm:node:amd64:${second.outputs['serial']}`);
    expect(first.outputs['serial']).not.toBe(second.outputs['serial']);
  });

  it.each(['incus', 'lxc'] as const)('%s: v2.6.0 is A, v2.7.0 and latest are B', async (client) => {
    expect(await resolve(client, 'crynux-node:v2.6.0')).toBe(a.fingerprint);
    expect(await resolve(client, 'crynux-node:v2.7.0')).toBe(b.fingerprint);
    expect(await resolve(client, 'crynux-node:latest')).toBe(b.fingerprint);
  });

  it.each(['incus', 'lxc'] as const)('%s: lists each image once and resolves each fingerprint', async (client) => {
    const counts = await listingCounts(client);
    expect(counts.get(a.fingerprint)).toBe(1);
    expect(counts.get(b.fingerprint)).toBe(1);
    // "More than one match for the provided partial fingerprint" would fail these.
    expect(await resolve(client, a.fingerprint)).toBe(a.fingerprint);
    expect(await resolve(client, b.fingerprint)).toBe(b.fingerprint);
  });

  it.each(['incus', 'lxd'] as const)('the %s daemon launches by alias and by fingerprint', async (kind) => {
    expect(await launchedImage(kind, 'crynux-node:v2.6.0')).toBe(a.fingerprint);
    expect(await launchedImage(kind, 'crynux-node:latest')).toBe(b.fingerprint);
    expect(await launchedImage(kind, a.fingerprint)).toBe(a.fingerprint);
  });

  describe('then A again with latest (a rollback)', () => {
    let rollback: BundleRun;
    beforeAll(async () => {
      rollback = await publish(a, 'crynux-node:latest');
    });

    it('uploads nothing: A is already published, and only latest moved onto it', () => {
      expect(rollback.outputs['status']).toBe('aliases-updated');
      expect(JSON.parse(rollback.outputs['aliases-moved'] ?? '')).toEqual([
        expect.objectContaining({
          alias: 'crynux-node:latest',
          from: expect.objectContaining({ fingerprint: b.fingerprint }),
          to: expect.objectContaining({ fingerprint: a.fingerprint }),
        }),
      ]);
      expect(rollback.outputs['fingerprint']).toBe(a.fingerprint);
      expect(rollback.outputs['aliases']?.split(',').sort()).toEqual(['crynux-node:latest', 'crynux-node:v2.6.0']);
    });

    it.each(['incus', 'lxc'] as const)('%s: latest is A, v2.7.0 is still B, v2.6.0 A', async (client) => {
      expect(await resolve(client, 'crynux-node:latest')).toBe(a.fingerprint);
      expect(await resolve(client, 'crynux-node:v2.7.0')).toBe(b.fingerprint);
      expect(await resolve(client, 'crynux-node:v2.6.0')).toBe(a.fingerprint);
      const counts = await listingCounts(client);
      expect([counts.get(a.fingerprint), counts.get(b.fingerprint)]).toEqual([1, 1]);
    });

    it.each(['incus', 'lxd'] as const)('the %s daemon launches A as latest and B as v2.7.0', async (kind) => {
      expect(await launchedImage(kind, 'crynux-node:latest')).toBe(a.fingerprint);
      expect(await launchedImage(kind, 'crynux-node:v2.7.0')).toBe(b.fingerprint);
      expect(await launchedImage(kind, b.fingerprint)).toBe(b.fingerprint);
    });
  });
});
