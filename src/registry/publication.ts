/**
 * The part of a publish that runs under the registry lock: re-read the live index, make the
 * change (a staged version, the owner's convert-command, or aliases only), add retention and the
 * LXD items, commit, read back and verify, clean up after earlier runs.
 */
import * as core from '@actions/core';
import { posix } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { ActionError } from '../common/errors.js';
import { untrusted } from '../common/untrusted.js';
import { planAliasUpdate } from '../simplestreams/aliases.js';
import { attachDeltas, pruneDeltas, type MadeDelta } from '../simplestreams/deltas.js';
import {
  findFingerprint,
  lineIdentity,
  releaseProductKey,
  type ImagesIndex,
  type PublishedVersion,
} from '../simplestreams/images-index.js';
import { withLxdItems } from '../simplestreams/lxd.js';
import {
  planPublication,
  SerialConflictError,
  type PublicationPlan,
  type PublicationStatus,
  type StagedVersion,
} from '../simplestreams/plan.js';
import { applyRetention } from '../simplestreams/retention.js';
import { commit } from './commit.js';
import { deltaReport, type DeltaRun, type DeltaReport } from './deltas.js';
import { housekeepAndRead, housekeepingCommand, readBack } from './housekeeping.js';
import { holdRegistryLock } from './lock.js';
import { readLiveIndex } from './read.js';
import type { Registry } from './registry.js';

/** What the registry serves for the image once the run is done. */
export interface PublishResult extends PublishedVersion {
  status: PublicationStatus;
  fingerprint: string;
  /** The deltas published with the new version (none when it was already published). */
  deltas?: DeltaReport[];
}

/** The settings the locked part reads (a part of the action's settings). */
export interface PublicationOptions {
  /** Seconds to wait for the registry lock. */
  lockTimeout: number;
  /** Whether a different image may replace a published version with the same serial. */
  replace: boolean;
  /** Releases kept per image line after a publish; 0 keeps all. */
  keepVersions: number;
  /** Whether every version also carries items for LXD clients. */
  lxdCompat: boolean;
  /** An executable on the server that replaces the built-in convert step; '' for the built-in one. */
  convertCommand: string;
}

/** What this run publishes: the image and the aliases it should carry. */
export interface Publication {
  fingerprint: string;
  aliases: string[];
  options: PublicationOptions;
}

/** What a run changes under the lock. */
export type Change =
  /** The fingerprint is already published: aliases at most. */
  | { kind: 'aliases' }
  /** incus-simplestreams add wrote the version into a staging tree. */
  | { kind: 'staged'; dir: string; version: StagedVersion; deltas?: DeltaRun }
  /** The owner's convert-command writes the live tree itself. */
  | { kind: 'custom'; run: () => Promise<void> };

export function serialConflictError(
  product: string,
  serial: string,
  existing: string,
  fingerprint: string,
): ActionError {
  return new ActionError(
    `${product} already has version ${serial} with fingerprint ${existing}, and this image (${fingerprint}) is ` +
      'different. Clients would check the download against the wrong hash, so it is refused. Build a new ' +
      'image (a later creation_date gives a new serial), or set replace: true to replace the published version.',
    'replace',
  );
}

/**
 * What the action adds to every index it writes: retention (keep-versions, never dropping
 * `fingerprint`), deltas kept consistent (simplestreams/deltas.ts pruneDeltas) and the LXD items
 * (lxd-compat). Returns no index when `proposed` (or, without
 * one, `base`) needs nothing more and nothing differs from `base`.
 */
export function finishIndex(
  options: Pick<PublicationOptions, 'keepVersions' | 'lxdCompat'>,
  fingerprint: string,
  base: ImagesIndex,
  proposed: ImagesIndex | undefined,
): { index?: ImagesIndex; retired: string[] } {
  const { keepVersions, lxdCompat } = options;
  let next = proposed ?? base;
  const retired: string[] = [];
  if (keepVersions > 0) {
    const retention = applyRetention(next, keepVersions, fingerprint);
    if (retention.dropped.length > 0) {
      core.info(`keep-versions ${keepVersions}: dropping ${retention.dropped.map(untrusted).join(', ')}`);
      next = retention.index;
      retired.push(...retention.retired);
    }
  }
  const pruned = pruneDeltas(next);
  if (pruned.dropped > 0) {
    core.info(`Deltas: ${pruned.dropped} item(s) or base(s) whose base or target left the index dropped`);
    next = pruned.index;
    retired.push(...pruned.retired);
  }
  if (lxdCompat) next = withLxdItems(next);
  return isDeepStrictEqual(next, base) ? { retired } : { index: next, retired };
}

/** Makes the change on the live index as read under the lock, and says what it means. */
async function planChange(
  registry: Registry,
  publication: Publication,
  change: Change,
  live: ImagesIndex,
): Promise<{ base: ImagesIndex; plan: PublicationPlan; deltas?: MadeDelta[] }> {
  const { fingerprint, aliases, options } = publication;
  let base = live;
  if (change.kind === 'staged') {
    try {
      const plan = planPublication(base, change.version, fingerprint, aliases, options.replace);
      const made = change.deltas?.made ?? [];
      if (plan.status === 'unchanged' || !plan.index || made.length === 0) return { base, plan };
      const { product: line, productFields, serial } = change.version;
      const identity = lineIdentity(line, productFields);
      const deltas = attachDeltas(plan.index, identity, releaseProductKey(line, serial), serial, made);
      // A delta whose base left the index (or was replaced) since it was made is not published.
      const unused = made.filter((delta) => !deltas.includes(delta)).map((delta) => delta.path);
      return { base, plan: { ...plan, retired: [...plan.retired, ...unused] }, deltas };
    } catch (error) {
      if (error instanceof SerialConflictError) {
        throw serialConflictError(error.product, error.serial, error.existingFingerprint, fingerprint);
      }
      throw error;
    }
  }
  if (change.kind === 'custom') {
    await change.run();
    base = await readLiveIndex(registry);
    if (!findFingerprint(base, fingerprint)) {
      throw new ActionError(
        `convert-command ${options.convertCommand} succeeded, but images.json does not list fingerprint ` +
          `${fingerprint}. Check that the script adds the image to ${registry.paths.simplestreamsDir}.`,
        'convert-command',
      );
    }
  }
  const index = planAliasUpdate(base, fingerprint, aliases);
  return {
    base,
    plan: { status: change.kind === 'custom' ? 'published' : 'unchanged', ...(index ? { index } : {}), retired: [] },
  };
}

/** The names in images/ of a staged version's files (incus-simplestreams names them so). */
function stagedFileNames(staged: StagedVersion): string[] {
  const names = Object.values(staged.version.items).map((item) => posix.basename(item.path));
  return [...new Set(names)];
}

/**
 * The locked part: re-read the live index, make the change, commit, read it back to verify, and
 * clean up after earlier runs. Verifying before the lock is released means a later run moving an
 * alias away cannot be mistaken for a failure of this one. `done` lists this run's own
 * server-side directories, removed once the index is live.
 */
export async function publishUnderLock(
  registry: Registry,
  publication: Publication,
  change: Change,
  done: string[] = [],
): Promise<PublishResult> {
  // One round trip: the lock, and the live index as it stands under it.
  const { lock, live: underLock } = await holdRegistryLock(registry, publication.options.lockTimeout);
  try {
    const { base, plan, deltas = [] } = await planChange(registry, publication, change, underLock);
    const finished = finishIndex(publication.options, publication.fingerprint, base, plan.index);
    let live: ImagesIndex;
    if (finished.index) {
      // One round trip: the commit, then the housekeeping, which prints the index to verify.
      const output = await commit(registry, {
        lock,
        index: finished.index,
        ...(change.kind === 'staged' && plan.status !== 'unchanged'
          ? {
              staging: change.dir,
              stagedFiles: [...stagedFileNames(change.version), ...deltas.map((delta) => posix.basename(delta.path))],
            }
          : {}),
        retired: [...plan.retired, ...finished.retired],
        andThen: housekeepingCommand(registry, done),
      });
      live = readBack(registry, output);
    } else {
      live = await housekeepAndRead(registry, done);
    }
    core.info(
      plan.status === 'unchanged'
        ? `Already published; ${finished.index ? 'index updated' : 'nothing to change'}`
        : `Index updated (${plan.status})`,
    );
    const squashfsSize = change.kind === 'staged' ? (change.deltas?.squashfsSize ?? 0) : 0;
    const result = verify(live, publication, plan.status);
    // Only the deltas the live index names: retention may have dropped a base in the same commit.
    const published = deltas.filter((delta) => result.files.some((file) => file.path === delta.path));
    return { ...result, deltas: published.map((delta) => deltaReport(delta, squashfsSize)) };
  } finally {
    await lock.release();
  }
}

/** Checks the live index, read back under the lock, against what this run published. */
function verify(live: ImagesIndex, publication: Publication, status: PublicationStatus): Omit<PublishResult, 'deltas'> {
  const { fingerprint, aliases } = publication;
  const published = findFingerprint(live, fingerprint);
  if (!published) {
    throw new ActionError(
      `The registry's images.json does not list fingerprint ${fingerprint} after publishing. ` +
        'Something changed the index without taking the lock (see the README on running incus-simplestreams by hand); publish again.',
    );
  }
  const missing = aliases.filter((alias) => !published.aliases.includes(alias));
  if (missing.length > 0) {
    throw new ActionError(
      `Aliases ${missing.join(', ')} are not on ${untrusted(published.product)} after publishing. Something changed the ` +
        'index without taking the lock (see the README on running incus-simplestreams by hand); publish again.',
    );
  }
  core.info(
    `${untrusted(published.product)} version ${untrusted(published.serial)} is live with fingerprint ${fingerprint}`,
  );
  return { status, fingerprint, ...published };
}
