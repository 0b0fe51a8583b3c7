/**
 * Day-two operations on images already published, without image files: put aliases on one
 * (a rollback of `latest`), or take one out of the index (a withdrawal). Both run under the
 * registry lock, like a publish, commit the same way and read the index back to verify.
 */
import * as log from '../common/log.js';
import { ActionError } from '../common/errors.js';
import { untrusted } from '../common/untrusted.js';
import { planAliasUpdate } from '../simplestreams/aliases.js';
import { findFingerprint, type ImagesIndex } from '../simplestreams/images-index.js';
import { planRemoval } from '../simplestreams/removal.js';
import { DEFAULT_FOLLOWED_ALIASES, followedAliases } from '../simplestreams/retention.js';
import {
  aliasMoves,
  aliasTargets,
  listImages,
  resolveImage,
  type AliasMove,
  type AliasTarget,
  type ListedImage,
} from '../simplestreams/resolve.js';
import { commit } from './commit.js';
import { holdRegistryLock } from './lock.js';
import { finishIndex } from './publication.js';
import { readLiveIndex } from './read.js';
import type { Turn } from '../common/together.js';
import type { Registry } from './registry.js';

export interface DayTwoOptions {
  lockTimeout: number;
  lxdCompat: boolean;
  /** Print the plan and change nothing. */
  dryRun: boolean;
  /** One server of a fleet making the same change: its turn for the lock, and the wait for the others. */
  fleet?: FleetMember;
  /**
   * Runs after the change, still under the registry lock (the buckets brought up to date with
   * the server); `lost` says whether the lock's lease was lost meanwhile.
   */
  whileLocked?: (registry: Registry, result: DayTwoResult, lost: () => boolean) => Promise<void>;
}

/** How one server of a fleet keeps in step with the others. */
export interface FleetMember {
  /** Taken before the registry lock, ended once it is held (or could not be). */
  lockTurn: Turn;
  /**
   * Waits, holding the lock with the change planned, until every server is ready to commit;
   * says which image the reference named here (undefined: none, for a removal already made).
   */
  ready(fingerprint: string | undefined): Promise<void>;
  /** Throws when another server already failed: this one need not take its lock. */
  stillGoing(): void;
  /** This server failed before it was ready: the others do not commit. */
  fail(error: unknown): void;
}

export interface DayTwoResult {
  /** not-found: a server of a fleet where the image to remove is not listed (removed by an earlier run). */
  status: 'updated' | 'unchanged' | 'removed' | 'dry-run' | 'not-found';
  fingerprint: string;
  product: string;
  serial: string;
  /** Where every alias resolves afterwards (or would, in a dry run). */
  aliases: AliasTarget[];
  /** Aliases the removal took with it. */
  removedAliases: string[];
  /** The aliases that resolve to another release (or to none) than before (or would, in a dry run). */
  aliasMoves: AliasMove[];
  /** The served index files the change rewrote (relative to simplestreams-dir): what a CDN should purge. */
  changedPaths: string[];
}

/** The image the `fingerprint` input names, or an error that lists what is published. */
function resolveOrFail(index: ImagesIndex, reference: string): ListedImage {
  const resolution = resolveImage(index, reference);
  if (resolution.kind === 'found') return resolution.image;
  const listing = (images: ListedImage[]): string =>
    images
      .slice(0, 20)
      .map(
        (image) =>
          `${image.fingerprint.slice(0, 12)} ${untrusted(image.product)} [${image.aliases.map(untrusted).join(', ')}]`,
      )
      .join('; ') + (images.length > 20 ? `; and ${images.length - 20} more` : '');
  if (resolution.kind === 'ambiguous') {
    throw new ActionError(
      `fingerprint: ${untrusted(reference)} names ${resolution.candidates.length} images (one per architecture, or a ` +
        `short fingerprint): ${listing(resolution.candidates)}. Give the full fingerprint of the one you mean.`,
      'fingerprint',
    );
  }
  const images = listImages(index);
  throw new ActionError(
    `fingerprint: no published image has the fingerprint or alias ${untrusted(reference)}. ` +
      (images.length > 0 ? `Published: ${listing(images)}.` : 'The registry lists no image.'),
    'fingerprint',
  );
}

function logTargets(targets: AliasTarget[], prefix: string): void {
  for (const target of targets) {
    log.info(
      `${prefix}${untrusted(target.alias)} (${untrusted(target.arch)}) → ${untrusted(target.fingerprint.slice(0, 12))} ${untrusted(target.product)}`,
    );
  }
}

/**
 * Makes a new index live (or, given none, only cleans up), in one round trip under the registry
 * lock, and returns the index now live.
 */
type CommitAndRead = (
  index: ImagesIndex | undefined,
  retired: string[],
) => Promise<{ live: ImagesIndex; changedPaths: string[] }>;

/**
 * Runs `work` under the registry lock on the live index read with it, or on a copy read without
 * the lock for a dry run (which must not commit).
 */
async function withLiveIndex(
  registry: Registry,
  options: DayTwoOptions,
  work: (live: ImagesIndex, commitAndRead: CommitAndRead) => Promise<DayTwoResult>,
): Promise<DayTwoResult> {
  // The same checks as before a publish: tools aside, the directories must be the SSH user's alone.
  const checked = await readLiveIndex(registry, { tool: '', dryRun: options.dryRun });
  if (options.dryRun) return work(checked, () => Promise.reject(new Error('a dry run commits nothing')));
  await options.fleet?.lockTurn.wait();
  let held: Awaited<ReturnType<typeof holdRegistryLock>>;
  try {
    options.fleet?.stillGoing();
    held = await holdRegistryLock(registry, options.lockTimeout);
  } catch (error) {
    // Before the next server's turn: it then sees that this one failed.
    options.fleet?.fail(error);
    throw error;
  } finally {
    options.fleet?.lockTurn.end();
  }
  try {
    const result = await work(held.live, async (index, retired) => {
      const live = index ?? held.live;
      const changedPaths = await commit(registry, {
        lock: held.lock,
        live,
        changed: index !== undefined,
        current: { text: held.liveText, sumsSha256: held.sumsSha256 },
        retired,
        done: [],
      });
      return { live, changedPaths };
    });
    await options.whileLocked?.(registry, result, () => held.lock.lost());
    return result;
  } finally {
    await held.lock.release();
  }
}

/**
 * Puts `aliases` on the image `reference` names, taking them off every other image of its
 * architecture (the rule a publish follows), under the registry lock.
 */
export function setAliases(
  registry: Registry,
  request: { reference: string; aliases: string[]; options: DayTwoOptions },
): Promise<DayTwoResult> {
  const { reference, aliases, options } = request;
  return withLiveIndex(registry, options, async (live, commitAndRead) => {
    const image = resolveOrFail(live, reference);
    const proposed = planAliasUpdate(live, image.fingerprint, aliases);
    const finished = finishIndex({ keepVersions: 0, lxdCompat: options.lxdCompat }, image.fingerprint, live, proposed);
    const after = finished.index ?? live;
    const moved = aliasTargets(after).filter((target) => aliases.includes(target.alias));
    log.info(`${untrusted(image.fingerprint)} is ${untrusted(image.product)} version ${untrusted(image.serial)}`);
    if (options.dryRun) {
      logTargets(moved, proposed ? 'Would put ' : 'Already in place: ');
      log.info('dry-run: nothing was changed');
      return result('dry-run', image, { before: live, after }, []);
    }
    await options.fleet?.ready(image.fingerprint);
    const { live: read, changedPaths } = await commitAndRead(finished.index, finished.retired);
    const published = findFingerprint(read, image.fingerprint);
    const missing = aliases.filter((alias) => !published?.aliases.includes(alias));
    if (!published || missing.length > 0) {
      throw new ActionError(
        `Aliases ${missing.map(untrusted).join(', ')} are not on ${untrusted(image.fingerprint)} after the change. Something ` +
          'changed the index without taking the lock; run the step again.',
      );
    }
    logTargets(
      aliasTargets(read).filter((target) => aliases.includes(target.alias)),
      'Now ',
    );
    return result(proposed ? 'updated' : 'unchanged', image, { before: live, after: read, changedPaths }, []);
  });
}

/**
 * Takes the image `reference` names out of the index (Incus and LXD views, and deltas to or
 * from it), under the registry lock. Its files stay downloadable for the grace time that
 * protects clients holding a cached index, then housekeeping removes them.
 */
export function removeImage(
  registry: Registry,
  request: { reference: string; force: boolean; options: DayTwoOptions },
): Promise<DayTwoResult> {
  const { reference, force, options } = request;
  return withLiveIndex(registry, options, async (live, commitAndRead) => {
    if (options.fleet && FULL_FINGERPRINT.test(reference) && resolveImage(live, reference).kind === 'unknown') {
      // Another server of the fleet may still list it (an earlier run removed it here only). Only
      // a whole fingerprint says so: an alias or a prefix that names nothing here may have been
      // moved off an image this server still lists.
      log.info(`${untrusted(reference)} names no image on this server: nothing to remove here`);
      if (!options.dryRun) await options.fleet.ready(undefined);
      return notFound(live);
    }
    const image = resolveOrFail(live, reference);
    const plan = planRemoval(live, image.fingerprint);
    if (!plan)
      throw new ActionError(
        `fingerprint: ${untrusted(image.fingerprint)} is not in the index any more; run the step again to see what is.`,
        'fingerprint',
      );
    const finished = finishIndex(
      { keepVersions: 0, lxdCompat: options.lxdCompat },
      image.fingerprint,
      live,
      plan.index,
    );
    const after = finished.index ?? plan.index;
    log.info(`${untrusted(image.fingerprint)} is ${untrusted(image.product)} version ${untrusted(image.serial)}`);
    if (plan.removedAliases.length > 0)
      log.info(`Aliases that go with it: ${plan.removedAliases.map(untrusted).join(', ')}`);
    // Hosts that follow `latest` would find nothing: only on purpose.
    const followed = plan.removedAliases.filter(followedAliases(DEFAULT_FOLLOWED_ALIASES));
    if (followed.length > 0) {
      const what =
        `${untrusted(image.fingerprint)} holds ${followed.map(untrusted).join(', ')}, which hosts follow: removing it ` +
        'leaves that alias naming nothing, and their next update fails';
      if (!force && !options.dryRun) {
        throw new ActionError(
          `force: ${what}. Move the alias to another release first (the alias sub-action), or set force: true.`,
          'force',
        );
      }
      // A dry run says what the real run would do: refuse without force.
      const outcome = force
        ? ' (force: true)'
        : '. Without force: true the real run refuses this: move the alias to another release first (the alias sub-action), or set force: true';
      log.warning(`${what}${outcome}.`, { title: 'lxc-publish: a followed alias goes' });
    }
    if (options.dryRun) {
      log.info(
        `Would remove it and retire ${plan.retired.length + finished.retired.length} file(s); the aliases would then resolve so:`,
      );
      logTargets(aliasTargets(after), '  ');
      log.info('dry-run: nothing was changed');
      return result('dry-run', image, { before: live, after }, plan.removedAliases);
    }
    await options.fleet?.ready(image.fingerprint);
    const { live: read, changedPaths } = await commitAndRead(after, [...plan.retired, ...finished.retired]);
    if (findFingerprint(read, image.fingerprint)) {
      throw new ActionError(
        `${untrusted(image.fingerprint)} is still listed after the removal. Something changed the index without taking the ` +
          'lock; run the step again.',
      );
    }
    log.info('Removed. The aliases now resolve so:');
    logTargets(aliasTargets(read), '  ');
    return result('removed', image, { before: live, after: read, changedPaths }, plan.removedAliases);
  });
}

const FULL_FINGERPRINT = /^[0-9a-f]{64}$/;

/** A server of a fleet that does not list the image to remove. */
function notFound(live: ImagesIndex): DayTwoResult {
  return {
    status: 'not-found',
    fingerprint: '',
    product: '',
    serial: '',
    aliases: aliasTargets(live),
    removedAliases: [],
    aliasMoves: [],
    changedPaths: [],
  };
}

function result(
  status: DayTwoResult['status'],
  image: ListedImage,
  /** The index before and after the change, and the served files the commit rewrote (none in a dry run). */
  index: { before: ImagesIndex; after: ImagesIndex; changedPaths?: string[] },
  removedAliases: string[],
): DayTwoResult {
  return {
    status,
    fingerprint: image.fingerprint,
    product: image.product,
    serial: image.serial,
    aliases: aliasTargets(index.after),
    removedAliases,
    aliasMoves: aliasMoves(index.before, index.after),
    changedPaths: index.changedPaths ?? [],
  };
}
