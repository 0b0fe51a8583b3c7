/**
 * Making vcdiff deltas on the server (registry/server/delta.sh), from the newest earlier releases
 * of the line to the staged squashfs: in the staging tree, under the image's lock, before the
 * registry lock, so other publishes do not wait. What enters the index is decided under the lock
 * (simplestreams/deltas.ts attachDeltas).
 */
import { posix } from 'node:path';
import { deltaBases, isSplitContainer, type MadeDelta } from '../simplestreams/deltas.js';
import { lineIdentity, type ImagesIndex } from '../simplestreams/images-index.js';
import type { StagedVersion } from '../simplestreams/plan.js';
import type { Registry } from './registry.js';
import { DELTA } from './scripts.js';
import { remoteFailure } from '../ssh/remote-failure.js';
import { fenceArgs, fencedOutput, LEASE_LOST_EXIT, type HeldLock } from './lock.js';
import { IMAGE_LOCK_NAME } from './upload.js';

/** The delta inputs (action.yml). */
export interface DeltaOptions {
  /** How many earlier releases to make deltas from (0: none). */
  deltaBases: number;
  /** A delta larger than this share of the squashfs (percent) is not published. */
  deltaMaxShare: number;
  /** Fail before uploading when xdelta3 is missing on the server. */
  requireDeltas: boolean;
}

/**
 * How many earlier releases a publish makes deltas from: delta-bases, but with keep-versions K
 * only the K - 1 newest earlier releases stay beside the new one, and a delta from an older one
 * would go with its base in the same index (keep-versions 1 makes none). With release-is-version,
 * retention keeps one build of each release: no earlier build stays to be a base.
 */
export function effectiveDeltaBases(options: {
  deltaBases: number;
  keepVersions: number;
  releaseIsVersion?: boolean;
}): number {
  if (options.keepVersions <= 0) return options.deltaBases;
  if (options.releaseIsVersion) return 0;
  return Math.min(options.deltaBases, options.keepVersions - 1);
}

/** Seconds each xdelta3 run (making a delta, then decoding it) may take before it is given up. */
export const DELTA_TIME_LIMIT_SECONDS = 900; // 15 minutes

/** A base no delta was published from, and why (the script's reason word). */
export interface SkippedDelta {
  base: string;
  reason: string;
  /** For a script that failed: how it ended and its stderr (server text, to print as untrusted). */
  detail?: string;
}

export interface DeltaRun {
  made: MadeDelta[];
  skipped: SkippedDelta[];
  /** Bytes of the new squashfs, for the shares reported. */
  squashfsSize: number;
}

/** What a delta saves, as the outputs and the summary report it. */
export interface DeltaReport {
  base: string;
  size: number;
  /** The delta's size over the squashfs's. */
  share: number;
}

export function deltaReport(delta: Pick<MadeDelta, 'base' | 'size'>, squashfsSize: number): DeltaReport {
  const share = squashfsSize > 0 ? Math.round((delta.size / squashfsSize) * 1e6) / 1e6 : 0;
  return { base: delta.base, size: delta.size, share };
}

/**
 * Makes and checks the deltas for the staged version in `staging`, from up to `deltaBases`
 * earlier releases of its line in `live`. Undefined when the version is no split container.
 */
export async function makeDeltas(
  registry: Registry,
  target: { staging: string; version: StagedVersion; live: ImagesIndex; lock: HeldLock },
  options: Pick<DeltaOptions, 'deltaBases' | 'deltaMaxShare'> & { keepVersions: number },
): Promise<DeltaRun | undefined> {
  const { staging, version: staged, live, lock } = target;
  const squashfs = staged.version.items['squashfs'];
  if (!squashfs || !isSplitContainer(staged.version) || effectiveDeltaBases(options) <= 0) return undefined;
  const identity = lineIdentity(staged.product, staged.productFields);
  const bases = deltaBases(live, identity, staged.serial, effectiveDeltaBases(options));
  const run: DeltaRun = { made: [], skipped: [], squashfsSize: squashfs.size };
  if (bases.length === 0) return run;
  const newName = posix.basename(squashfs.path);
  const maxBytes = Math.floor((squashfs.size * options.deltaMaxShare) / 100);
  const result = await registry.execScript(
    DELTA,
    [
      ...fenceArgs(lock.fence),
      registry.paths.simplestreamsDir,
      staging,
      newName,
      String(DELTA_TIME_LIMIT_SECONDS),
      String(maxBytes),
      squashfs.sha256,
      ...bases.flatMap((base) => [base.serial, posix.basename(base.squashfsPath), base.squashfsSha256]),
    ],
    { timeoutSeconds: 2 * DELTA_TIME_LIMIT_SECONDS * bases.length + 60, what: 'Making the deltas' },
  );
  // A lost lease fails the publish: another run of this image may be at work in its staging tree.
  if (result.code === LEASE_LOST_EXIT) fencedOutput(result, lock, 'Making the deltas', IMAGE_LOCK_NAME);
  if (result.code !== 0) {
    if (result.code === 5)
      return { ...run, skipped: bases.map((base) => ({ base: base.serial, reason: 'xdelta3-missing' })) };
    const detail = remoteFailure('Making the deltas', result);
    return { ...run, skipped: bases.map((base) => ({ base: base.serial, reason: 'script-failed', detail })) };
  }
  const stem = newName.replace(/\.squashfs$/, '');
  const lines = result.stdout.toString('utf8').split('\n');
  for (const base of bases) {
    // Only the lines that name a base asked for, in the script's exact form: a login shell may print noise.
    const ok = lines
      .map((line) => /^ok (\d+) (\d+) ([0-9a-f]{64}) (\S+)$/.exec(line.trim()))
      .find((match) => match?.[1] === base.serial && match[4] === `${stem}.${base.serial}.vcdiff`);
    if (ok) {
      run.made.push({
        base: base.serial,
        baseFingerprint: base.fingerprint,
        path: `images/${ok[4] as string}`,
        sha256: ok[3] as string,
        size: Number(ok[2]),
      });
      continue;
    }
    const skip = lines.map((line) => /^skip (\d+) ([a-z-]+)/.exec(line.trim())).find((m) => m?.[1] === base.serial);
    run.skipped.push({ base: base.serial, reason: skip?.[2] ?? 'no-answer' });
  }
  return run;
}
