// Real distrobuilder builds for the tests (fixtures/distrobuilder/build.sh), made once and kept
// in a cache keyed by what they are built from: the YAML, the build script and distrobuilder's
// version. A second test run (or a second file in this one) finds them built; two runs at once
// build once (the build holds a lock).
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { run } from './exec.js';

const FIXTURES = path.resolve('__tests__/fixtures/distrobuilder');
export const DISTROBUILDER_YAML = path.join(FIXTURES, 'crynux-node.yaml');
const BUILD_SCRIPT = path.join(FIXTURES, 'build.sh');
/** Where builds are kept between runs (LXC_PUBLISH_BUILD_CACHE overrides it). */
const CACHE = process.env['LXC_PUBLISH_BUILD_CACHE'] || '/var/cache/lxc-publish-tests/distrobuilder';
/** A bootstrap from Debian's mirror and two packs: minutes, more on a loaded machine. */
export const BUILD_TIMEOUT_MS = 30 * 60_000;

export interface DistrobuilderBuilds {
  /** build-incus's split container, chain "base": incus.tar.xz and rootfs.squashfs. */
  split: { metadata: string; rootfs: string };
  /** build-incus --type=unified, chain "near": one tarball. */
  unified: { metadata: string };
  /** What the build took, when this call built it (build-dir, then the packs). */
  timings: string;
}

let built: Promise<DistrobuilderBuilds> | undefined;

/** The builds, made if the cache has none for the current YAML, script and distrobuilder. */
export function distrobuilderBuilds(): Promise<DistrobuilderBuilds> {
  built ??= build();
  return built;
}

async function build(): Promise<DistrobuilderBuilds> {
  const version = await run('distrobuilder', ['--version']);
  if (version.code !== 0) {
    throw new Error(`distrobuilder is not installed (${version.stderr.trim()}): run .ci/install-system-packages.sh`);
  }
  const key = createHash('sha256')
    .update(await fsp.readFile(DISTROBUILDER_YAML))
    .update(await fsp.readFile(BUILD_SCRIPT))
    .update(version.stdout)
    .digest('hex')
    .slice(0, 16);
  const out = path.join(CACHE, key);
  await fsp.mkdir(CACHE, { recursive: true });
  const result = await run('flock', [`${out}.lock`, 'bash', BUILD_SCRIPT, DISTROBUILDER_YAML, out], {
    timeoutMs: BUILD_TIMEOUT_MS,
  });
  if (result.code !== 0) {
    const logs = await run('sh', ['-c', 'tail -n 20 "$1".partial/*.log', 'sh', out]);
    throw new Error(`distrobuilder build failed (exit ${result.code}): ${result.stderr}\n${logs.stdout}`);
  }
  const unified = (await fsp.readdir(path.join(out, 'unified'))).filter((name) => name.endsWith('.tar.gz'));
  if (unified.length !== 1)
    throw new Error(`expected one unified tarball in ${out}/unified, found ${unified.join(', ')}`);
  if ((await fsp.stat(path.join(out, 'split', 'rootfs.squashfs'))).size === 0)
    throw new Error(`${out}/split/rootfs.squashfs is empty`);
  return {
    split: { metadata: path.join(out, 'split', 'incus.tar.xz'), rootfs: path.join(out, 'split', 'rootfs.squashfs') },
    unified: { metadata: path.join(out, 'unified', unified[0] as string) },
    timings: (await fsp.readFile(path.join(out, 'timings'), 'utf8')).trim(),
  };
}
