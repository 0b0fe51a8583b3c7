/**
 * The part of a publish that runs under the registry lock: re-read the live index, make the
 * change (a staged version, the owner's convert-command, or aliases only), add retention and the
 * LXD items, commit, read back and verify, clean up after earlier runs.
 */
import * as log from '../common/log.js';
import { posix } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { ActionError } from '../common/errors.js';
import { untrusted, untrustedLine } from '../common/untrusted.js';
import { planAliasUpdate } from '../simplestreams/aliases.js';
import { aliasMoves, type AliasMove } from '../simplestreams/resolve.js';
import { attachDeltas, pruneDeltas, type MadeDelta } from '../simplestreams/deltas.js';
import {
  findFingerprint,
  lineIdentity,
  referencedPaths,
  releaseProductKey,
  releasesOf,
  versionFingerprint,
  type ImagesIndex,
  type PublishedVersion,
} from '../simplestreams/images-index.js';
import { pathsTakenBy, stagedPaths, withOwnNames } from '../simplestreams/file-names.js';
import { withLxdItems } from '../simplestreams/lxd.js';
import {
  planPublication,
  SerialConflictError,
  type PublicationPlan,
  type PublicationStatus,
  type StagedVersion,
} from '../simplestreams/plan.js';
import {
  applyRetention,
  DEFAULT_FOLLOWED_ALIASES,
  followedAliases,
  type FollowedAliases,
} from '../simplestreams/retention.js';
import { commit, NameCollision, type StagedFile } from './commit.js';
import { deltaReport, type DeltaRun, type DeltaReport } from './deltas.js';
import { holdRegistryLock, type HeldLock, type RegistryLock } from './lock.js';
import { readServerState } from './read.js';
import type { Registry } from './registry.js';

/**
 * What a run did: a new release (published), a release of the same serial replaced (replaced),
 * only aliases moved onto a release already published (aliases-updated), nothing (unchanged), or
 * nothing because it was asked only what it would do (dry-run).
 */
export type PublishStatus = PublicationStatus | 'aliases-updated' | 'dry-run';

/** What a dry run found a publish would do. */
export interface PublishPreview {
  /** The status the publish would report. */
  status: Exclude<PublishStatus, 'dry-run'>;
  /** Releases keep-versions would drop, as "product serial". */
  dropped: string[];
  /** The serials of the releases a delta would be tried from. */
  deltaBases: string[];
}

/** What the registry serves for the image once the run is done (or would, in a dry run). */
export interface PublishResult extends PublishedVersion {
  status: PublishStatus;
  fingerprint: string;
  /** The deltas published with the new version (none when it was already published). */
  deltas?: DeltaReport[];
  /** The aliases that resolve to another release than before the run (or would). */
  aliasMoves: AliasMove[];
  /** In a dry run: what the publish would do. */
  preview?: PublishPreview;
  /** The served index files this run rewrote (relative to simplestreams-dir): what a CDN should purge. */
  changedPaths: string[];
}

/** The settings the locked part reads (a part of the action's settings). */
export interface PublicationOptions {
  /** Seconds to wait for the registry lock. */
  lockTimeout: number;
  /** Whether a different image may replace a published version with the same serial. */
  replace: boolean;
  /** Releases kept of the published image line; 0 keeps all. */
  keepVersions: number;
  /** release-is-version: a line is (os, variant, architecture), each release one version of it. */
  releaseIsVersion: boolean;
  /** Aliases clients follow: retention never drops a release one of them names. */
  followedAliases: FollowedAliases;
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
  /**
   * The owner's convert-command writes the live tree itself, under the registry lock's lease.
   * `started`: whether the command got as far as running (a channel refused before it does not).
   */
  | { kind: 'custom'; run: (registryLock: HeldLock) => Promise<void>; started: () => boolean };

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
  options: Pick<PublicationOptions, 'keepVersions' | 'lxdCompat'> &
    Partial<Pick<PublicationOptions, 'followedAliases' | 'releaseIsVersion'>> & {
      /** A dry run: the log says what would be done. */
      dryRun?: boolean;
    },
  fingerprint: string,
  base: ImagesIndex,
  proposed: ImagesIndex | undefined,
): { index?: ImagesIndex; retired: string[]; dropped: string[] } {
  const { keepVersions, lxdCompat } = options;
  let next = proposed ?? base;
  const retired: string[] = [];
  const dropped: string[] = [];
  if (keepVersions > 0) {
    const followed = options.followedAliases ?? followedAliases(DEFAULT_FOLLOWED_ALIASES);
    const retention = applyRetention(next, {
      keep: keepVersions,
      fingerprint,
      followed,
      releaseIsVersion: options.releaseIsVersion ?? false,
    });
    for (const { product, serial, aliases } of retention.keptForAliases) {
      log.info(
        `keep-versions ${keepVersions}: ${options.dryRun ? 'would keep' : 'keeping'} ${untrusted(product)} version ${untrusted(serial)} beyond the newest ${keepVersions}: ` +
          `${aliases.map(untrusted).join(', ')} (followed-aliases) names it; move that alias to drop it`,
      );
    }
    if (retention.dropped.length > 0) {
      const verb = options.dryRun ? 'would drop' : 'dropping';
      log.info(`keep-versions ${keepVersions}: ${verb} ${untrustedLine(retention.dropped.join(', '))}`);
      next = retention.index;
      retired.push(...retention.retired);
      dropped.push(...retention.dropped);
    }
  }
  const pruned = pruneDeltas(next);
  if (pruned.dropped > 0) {
    log.info(
      `Deltas: ${pruned.dropped} item(s) or base(s) whose base or target left the index ${options.dryRun ? 'would be ' : ''}dropped`,
    );
    next = pruned.index;
    retired.push(...pruned.retired);
  }
  if (lxdCompat) next = withLxdItems(next);
  return isDeepStrictEqual(next, base) ? { retired, dropped } : { index: next, retired, dropped };
}

/** What a change means for the live index, planned without I/O. */
interface PlannedChange {
  plan: PublicationPlan;
  /** The deltas attached to the new release, with the paths they are published under. */
  deltas: MadeDelta[];
  /** The staged files (the new release's and its deltas') and the names they are published under. */
  stagedFiles: StagedFile[];
}

/**
 * Plans the change on `base` (the live index as read under the lock, or after the owner's
 * convert-command). A staged file whose name the index gives to other bytes (a replacement built
 * from the same metadata tarball) is published under a name of its own (simplestreams/
 * file-names.ts); with `ownNames`, every staged file is (a retired file on the server, which the
 * index no longer names, held the name).
 */
function planChange(publication: Publication, change: Change, base: ImagesIndex, ownNames: boolean): PlannedChange {
  const { fingerprint, aliases, options } = publication;
  if (change.kind !== 'staged') {
    const index = planAliasUpdate(base, fingerprint, aliases);
    const status = change.kind === 'custom' ? 'published' : 'unchanged';
    return { plan: { status, ...(index ? { index } : {}), retired: [] }, deltas: [], stagedFiles: [] };
  }
  const made = change.deltas?.made ?? [];
  const files = stagedPaths(change.version, made);
  const rename = ownNames ? new Set(files.map((file) => file.path)) : pathsTakenBy(base, files);
  const own = withOwnNames(change.version, made, rename, fingerprint);
  const stagedFiles = stagedPaths(own.staged, own.deltas).map((file, i) => ({
    staged: posix.basename(files[i]?.path ?? ''),
    published: posix.basename(file.path),
  }));
  let plan: PublicationPlan;
  try {
    plan = planPublication(base, own.staged, fingerprint, aliases, options.replace);
  } catch (error) {
    if (error instanceof SerialConflictError) {
      throw serialConflictError(error.product, error.serial, error.existingFingerprint, fingerprint);
    }
    throw error;
  }
  if (plan.status === 'unchanged' || !plan.index || own.deltas.length === 0) return { plan, deltas: [], stagedFiles };
  const { product: line, productFields, serial } = own.staged;
  const identity = lineIdentity(line, productFields);
  // A delta whose base left the index (or was replaced) since it was made is not published.
  const deltas = attachDeltas(plan.index, identity, releaseProductKey(line, serial), serial, own.deltas);
  return { plan, deltas, stagedFiles };
}

/** The live index as the change starts from: the owner's convert-command first runs and is checked. */
async function changeBase(
  registry: Registry,
  held: RegistryLock,
  publication: Publication,
  change: Change,
): Promise<{ index: ImagesIndex; text: Buffer }> {
  if (change.kind !== 'custom') return { index: held.live, text: held.liveText };
  await change.run(held.lock);
  const { index, text } = await readServerState(registry);
  if (!findFingerprint(index, publication.fingerprint)) {
    throw new ActionError(
      `convert-command ${publication.options.convertCommand} succeeded, but images.json does not list fingerprint ` +
        `${publication.fingerprint}. Check that the script adds the image to ${registry.paths.simplestreamsDir}.`,
      'convert-command',
    );
  }
  return { index, text };
}

/** A publication whose registry lock is held and whose change was planned: ready to commit. */
export interface PreparedPublication {
  /** Commits the change, checks what is live and reports; the lock stays held. */
  commit(): Promise<PublishResult>;
  /** Lets the registry lock go (after the commit, or instead of it). */
  release(): Promise<void>;
  /** Whether the lock's lease was lost (another run may hold the lock now). */
  lost(): boolean;
}

/**
 * The first half of the locked part: the lock, the live index as it stands under it (after an
 * owner's convert-command ran), and the change planned on it, so that anything that refuses the
 * change (another image under this serial, say) does so before any commit. A fleet prepares
 * every server before it commits any.
 */
export async function preparePublication(
  registry: Registry,
  publication: Publication,
  change: Change,
  done: string[] = [],
): Promise<PreparedPublication> {
  // One round trip: the lock, and the live index as it stands under it.
  const held = await holdRegistryLock(registry, publication.options.lockTimeout);
  try {
    const base = await changeBase(registry, held, publication, change);
    const planned = planChange(publication, change, base.index, false);
    return {
      commit: () => commitUnderLock(registry, held, { publication, change, base, planned, done }),
      release: () => held.lock.release(),
      lost: () => held.lock.lost(),
    };
  } catch (error) {
    await held.lock.release();
    throw error;
  }
}

/**
 * The locked part: re-read the live index, make the change, commit, check what is live, and
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
  const prepared = await preparePublication(registry, publication, change, done);
  try {
    return await prepared.commit();
  } finally {
    await prepared.release();
  }
}

/** A change planned under the lock, with what it was planned on and what to clean up after it. */
interface CommitWork {
  publication: Publication;
  change: Change;
  base: { index: ImagesIndex; text: Buffer };
  planned: PlannedChange;
  done: string[];
}

/**
 * Commits the planned change; when a retired file still holds one of the names, plans it again
 * under names of its own and commits that.
 */
async function commitUnderLock(registry: Registry, held: RegistryLock, work: CommitWork): Promise<PublishResult> {
  const { publication, change, base } = work;
  try {
    return await commitPlanned(registry, held, work);
  } catch (error) {
    if (!(error instanceof NameCollision)) throw error;
    log.info(
      `A retired file still holds a name of this release's (${error.detail}): publishing under names of its own`,
    );
  }
  const planned = planChange(publication, change, base.index, true);
  try {
    return await commitPlanned(registry, held, { ...work, planned });
  } catch (error) {
    if (!(error instanceof NameCollision)) throw error;
    throw new ActionError(
      `images/ on the server holds other files under the names this release's files would get (${error.detail}), ` +
        'even under names of their own. Nothing was changed. Check what writes in simplestreams-dir/images ' +
        'besides this action, and run the step again.',
    );
  }
}

/** Commits a planned change (or only cleans up, when nothing changes), checks it and reports. */
async function commitPlanned(registry: Registry, held: RegistryLock, work: CommitWork): Promise<PublishResult> {
  const { publication, change, base, planned, done } = work;
  const { plan } = planned;
  const finished = finishIndex(publication.options, publication.fingerprint, base.index, plan.index);
  const next = finished.index ?? base.index;
  const changed = finished.index !== undefined;
  const named = referencedPaths(next);
  const changedPaths = await commit(registry, {
    lock: held.lock,
    live: next,
    changed,
    current: { text: base.text, sumsSha256: held.sumsSha256 },
    ...(change.kind === 'staged' ? { staging: change.dir } : {}),
    // Only the files the new index names: a delta left out goes with the staging tree.
    stagedFiles: planned.stagedFiles.filter((file) => named.has(`images/${file.published}`)),
    retired: [...plan.retired, ...finished.retired],
    done,
  });
  log.info(
    plan.status === 'unchanged'
      ? `Already published; ${changed ? 'index updated' : 'nothing to change'}`
      : `Index updated (${plan.status})`,
  );
  const squashfsSize = change.kind === 'staged' ? (change.deltas?.squashfsSize ?? 0) : 0;
  // Against the index as the lock found it: an owner's convert-command may have moved aliases too.
  const moves = aliasMoves(held.live, next);
  logAliasMoves(moves, 'Moved');
  const status =
    change.kind === 'custom'
      ? customStatus(held.live, next, publication.fingerprint)
      : runStatus(plan.status, moves, publication.fingerprint);
  const result = { ...verify(next, publication, status), aliasMoves: moves, changedPaths };
  // Only the deltas the live index names: retention may have dropped a base in the same commit.
  const published = planned.deltas.filter((delta) => named.has(delta.path));
  return { ...result, deltas: published.map((delta) => deltaReport(delta, squashfsSize)) };
}

/** A release already published that an alias moved onto is not "unchanged". */
function runStatus(
  status: PublicationStatus,
  moves: readonly AliasMove[],
  fingerprint: string,
): Exclude<PublishStatus, 'dry-run'> {
  const movedOnto = moves.some((move) => move.to?.fingerprint === fingerprint);
  return status === 'unchanged' && movedOnto ? 'aliases-updated' : status;
}

/**
 * What an owner's convert-command did: replaced a release of the same line and serial that the
 * index held before it ran, or published a new one.
 */
function customStatus(before: ImagesIndex, after: ImagesIndex, fingerprint: string): 'published' | 'replaced' {
  const published = findFingerprint(after, fingerprint);
  const product = published ? after.products[published.product] : undefined;
  if (!published || !product) return 'published';
  const identity = lineIdentity(published.product, product);
  const replaced = releasesOf(before, identity).some(
    (release) => release.serial === published.serial && versionFingerprint(release.version) !== fingerprint,
  );
  return replaced ? 'replaced' : 'published';
}

function describeHolder(holder: AliasMove['from']): string {
  // The fingerprint comes from the index too: printed as untrusted as the product.
  return holder ? `${untrusted(holder.product)} (${untrusted(holder.fingerprint.slice(0, 12))})` : 'nothing';
}

/** One log line per alias that moves: `verb` is "Moved" or "Would move". */
export function logAliasMoves(moves: readonly AliasMove[], verb: string): void {
  for (const move of moves) {
    log.info(
      `${verb} alias ${untrusted(move.alias)} (${untrusted(move.architecture)}${move.type === 'virtual-machine' ? ', VM' : ''}): from ${describeHolder(move.from)} to ${describeHolder(move.to)}`,
    );
  }
}

/**
 * What publishing would do, planned on the live index without writing anything (a dry run):
 * `change` holds the version as the server would stage it (predicted on the runner).
 */
export function previewPublication(
  publication: Publication,
  change: Extract<Change, { kind: 'aliases' | 'staged' }>,
  live: ImagesIndex,
): { status: Exclude<PublishStatus, 'dry-run'>; index: ImagesIndex; moves: AliasMove[]; dropped: string[] } {
  const { plan } = planChange(publication, change, live, false);
  const finished = finishIndex({ ...publication.options, dryRun: true }, publication.fingerprint, live, plan.index);
  const index = finished.index ?? live;
  const moves = aliasMoves(live, index);
  return { status: runStatus(plan.status, moves, publication.fingerprint), index, moves, dropped: finished.dropped };
}

/** Checks the index now live against what this run published. */
function verify(
  live: ImagesIndex,
  publication: Publication,
  status: Exclude<PublishStatus, 'dry-run'>,
): Omit<PublishResult, 'deltas' | 'aliasMoves' | 'changedPaths'> {
  const { fingerprint, aliases } = publication;
  const published = findFingerprint(live, fingerprint);
  if (!published) {
    throw new ActionError(
      `The registry's images.json does not list fingerprint ${fingerprint} after publishing. ` +
        'Something changed the index without taking the lock (see docs/server-setup.md on running incus-simplestreams by hand); publish again.',
    );
  }
  const missing = aliases.filter((alias) => !published.aliases.includes(alias));
  if (missing.length > 0) {
    throw new ActionError(
      `Aliases ${missing.join(', ')} are not on ${untrusted(published.product)} after publishing. Something changed the ` +
        'index without taking the lock (see docs/server-setup.md on running incus-simplestreams by hand); publish again.',
    );
  }
  log.info(
    `${untrusted(published.product)} version ${untrusted(published.serial)} is live with fingerprint ${fingerprint}`,
  );
  return { status, fingerprint, ...published };
}
