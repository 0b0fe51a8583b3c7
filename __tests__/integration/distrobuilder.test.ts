// Images built by the real distrobuilder from a file shaped like crynux-node's (release: v3.5.0,
// variant: the chain; a Debian bookworm minbase with systemd), published through the committed
// bundle as its release workflow names its artifacts and with the README's settings for such
// images. Both clients list them with their type; the Incus and LXD daemons launch them and
// systemd runs as their init. (A VM is not built here: see the fixture's build script.)
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expectExit, inputsFor, runBundle, type BundleRun } from '../harness/action.js';
import { imageInfo, parseImageInfo, type Client } from '../harness/clients.js';
import { type DaemonKind, type Daemons, freshRemoteUrl, startDaemons, stopDaemonTest } from '../harness/daemons.js';
import { BUILD_TIMEOUT_MS, distrobuilderBuilds, type DistrobuilderBuilds } from '../harness/distrobuilder.js';
import { startRegistry, type Registry } from '../harness/registry.js';

let registry: Registry;
let daemons: Daemons;
let work: string;
let builds: DistrobuilderBuilds;
const published = new Map<'base' | 'near', BundleRun>();
const settings = { 'keep-versions': '2', 'release-is-version': 'true' };

beforeAll(async () => {
  builds = await distrobuilderBuilds();
  console.log(`distrobuilder builds: ${builds.timings}`);
  registry = await startRegistry();
  daemons = await startDaemons(registry.caFile);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lxc-publish-distrobuilder-'));
  // The artifacts as release-all-lxc.yml renames them before its upload.
  const artifacts = {
    metadata: path.join(work, 'incus-v3.5.0-base.tar.xz'),
    rootfs: path.join(work, 'rootfs-v3.5.0-base.squashfs'),
    unified: path.join(work, 'crynux-node-v3.5.0-near.tar.gz'),
  };
  await fsp.copyFile(builds.split.metadata, artifacts.metadata);
  await fsp.copyFile(builds.split.rootfs, artifacts.rootfs);
  await fsp.copyFile(builds.unified.metadata, artifacts.unified);
  // The matrix over chains: both at once.
  const [base, near] = await Promise.all([
    runBundle(
      inputsFor(
        registry,
        { metadata: artifacts.metadata, rootfs: artifacts.rootfs },
        { ...settings, aliases: 'crynux-node:v3.5.0-base, crynux-node:latest-base' },
      ),
    ),
    runBundle(
      inputsFor(
        registry,
        { metadata: artifacts.unified, rootfs: '' },
        { ...settings, aliases: 'crynux-node:v3.5.0-near, crynux-node:latest-near' },
      ),
    ),
  ]);
  published.set('base', base);
  published.set('near', near);
}, BUILD_TIMEOUT_MS + 300_000);
afterAll(() => stopDaemonTest({ daemons, registry, work }));

describe('real distrobuilder builds of a crynux-node release', () => {
  it('publishes the split container and the unified tarball, each as its own product', () => {
    for (const chain of ['base', 'near'] as const) {
      const run = published.get(chain)!;
      expectExit(run, 0);
      expect(run.outputs['status']).toBe('published');
      expect(run.outputs['product']).toMatch(new RegExp(`^crynux-node:v3\\.5\\.0:${chain}:amd64:\\d{12}$`));
    }
    expect(published.get('base')!.stdout).toContain('container image crynux-node v3.5.0 base amd64');
  });

  it.each(['incus', 'lxc'] as const)('%s lists both as containers under their aliases', async (client: Client) => {
    for (const chain of ['base', 'near'] as const) {
      const info = await imageInfo(registry, client, `crynux-node:latest-${chain}`);
      expect(info.code).toBe(0);
      expect(parseImageInfo(info.stdout)).toEqual({
        fingerprint: published.get(chain)!.outputs['fingerprint'],
        type: 'container',
      });
    }
  });

  it.each(['incus', 'lxd'] as const)(
    'the %s daemon launches each, and systemd runs as its init',
    async (kind: DaemonKind) => {
      const daemon = daemons[kind];
      const remote = await daemon.addRemote(freshRemoteUrl(registry.httpsUrl));
      for (const chain of ['base', 'near'] as const) {
        const name = await daemon.launch(`${remote}:crynux-node:v3.5.0-${chain}`);
        try {
          expect((await daemon.readFileIn(name, '/etc/crynux-release')).trim()).toBe('crynux-node');
          expect((await daemon.readFileIn(name, '/proc/1/comm')).trim()).toBe('systemd');
          expect(await daemon.configGet(name, 'volatile.base_image')).toBe(
            published.get(chain)!.outputs['fingerprint'],
          );
        } finally {
          await daemon.deleteInstance(name);
        }
      }
    },
  );
});
