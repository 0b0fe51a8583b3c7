/**
 * The part of a publish that runs under the registry lock: re-read the live index, make the
 * change (a staged version, the owner's convert-command, or aliases only), add retention and the
 * LXD items, commit, read back and verify, clean up after earlier runs.
 */
import * as core from '@actions/core';
import { isDeepStrictEqual } from 'node:util';
import { ActionError } from './errors.js';
import type { Settings } from './inputs.js';
import { withLxdItems } from './lxd.js';
import { commit, holdLock, housekeepAndRead, lockPath, readLiveIndex, type RegistryPaths } from './registry.js';
import {
  SerialConflictError,
  applyRetention,
  findFingerprint,
  planAliasUpdate,
  planPublication,
  type ImagesIndex,
  type PublicationPlan,
  type PublicationStatus,
  type StagedVersion,
} from './simplestreams.js';
import type { RemoteSession } from './ssh.js';
import type { PublishResult } from './summary.js';

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

/** What a run changes under the lock. */
export type Change =
  /** The fingerprint is already published: aliases at most. */
  | { kind: 'aliases' }
  /** incus-simplestreams add wrote the version into a staging tree. */
  | { kind: 'staged'; dir: string; version: StagedVersion }
  /** The owner's convert-command writes the live tree itself. */
  | { kind: 'custom'; run: () => Promise<void> };

/**
 * What the action adds to every index it writes: retention (keep-versions) and the LXD items
 * (lxd-compat). Returns undefined when `proposed` (or, without one, `base`) needs nothing more
 * and nothing differs from `base`.
 */
function finishIndex(
  settings: Settings,
  base: ImagesIndex,
  proposed: ImagesIndex | undefined,
  fingerprint: string,
): { index?: ImagesIndex; retired: string[] } {
  let next = proposed ?? base;
  const retired: string[] = [];
  if (settings.keepVersions > 0) {
    const retention = applyRetention(next, settings.keepVersions, fingerprint);
    if (retention.dropped.length > 0) {
      core.info(`keep-versions ${settings.keepVersions}: dropping ${retention.dropped.join(', ')}`);
      next = retention.index;
      retired.push(...retention.retired);
    }
  }
  if (settings.lxdCompat) next = withLxdItems(next);
  return isDeepStrictEqual(next, base) ? { retired } : { index: next, retired };
}

/**
 * The locked part: re-read the live index, make the change, commit, read it back to verify, and
 * clean up after earlier runs. Verifying before the lock is released means a later run moving an
 * alias away cannot be mistaken for a failure of this one.
 */
export async function publishUnderLock(
  session: RemoteSession,
  settings: Settings,
  paths: RegistryPaths,
  fingerprint: string,
  aliases: string[],
  change: Change,
  /** This run's own server-side directories, removed once the index is live. */
  done: string[] = [],
): Promise<PublishResult> {
  const lock = await holdLock(
    session,
    lockPath(paths),
    settings.lockTimeout,
    `The registry in ${paths.simplestreamsDir} is busy: another run has held its lock for more than ` +
      `${settings.lockTimeout} seconds (lock-timeout). Try again later, or raise lock-timeout.`,
  );
  try {
    let base = await readLiveIndex(session, paths.simplestreamsDir);
    let plan: PublicationPlan;
    if (change.kind === 'staged') {
      try {
        plan = planPublication(base, change.version, fingerprint, aliases, settings.replace);
      } catch (error) {
        if (error instanceof SerialConflictError) {
          throw serialConflictError(error.product, error.serial, error.existingFingerprint, fingerprint);
        }
        throw error;
      }
    } else {
      if (change.kind === 'custom') {
        await change.run();
        base = await readLiveIndex(session, paths.simplestreamsDir);
        if (!findFingerprint(base, fingerprint)) {
          throw new ActionError(
            `convert-command ${settings.convertCommand} succeeded, but images.json does not list fingerprint ` +
              `${fingerprint}. Check that the script adds the image to ${paths.simplestreamsDir}.`,
            'convert-command',
          );
        }
      }
      const index = planAliasUpdate(base, fingerprint, aliases);
      plan = { status: change.kind === 'custom' ? 'published' : 'unchanged', ...(index ? { index } : {}), retired: [] };
    }
    const finished = finishIndex(settings, base, plan.index, fingerprint);
    if (finished.index) {
      await commit(session, {
        paths,
        lock,
        index: finished.index,
        ...(change.kind === 'staged' && plan.status !== 'unchanged' ? { staging: change.dir } : {}),
        retired: [...plan.retired, ...finished.retired],
      });
    }
    core.info(
      plan.status === 'unchanged'
        ? `Already published; ${finished.index ? 'index updated' : 'nothing to change'}`
        : `Index updated (${plan.status})`,
    );
    const live = await housekeepAndRead(session, paths, done);
    return verify(live, fingerprint, aliases, plan.status);
  } finally {
    await lock.release();
  }
}

/** Checks the live index, read back under the lock, against what this run published. */
function verify(live: ImagesIndex, fingerprint: string, aliases: string[], status: PublicationStatus): PublishResult {
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
      `Aliases ${missing.join(', ')} are not on ${published.product} after publishing. Something changed the ` +
        'index without taking the lock (see the README on running incus-simplestreams by hand); publish again.',
    );
  }
  core.info(`${published.product} version ${published.serial} is live with fingerprint ${fingerprint}`);
  return { status, fingerprint, ...published };
}
