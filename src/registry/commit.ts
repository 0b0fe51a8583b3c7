/**
 * Making a new index live, under the registry lock's lease, whole or not at all; cleaning up
 * after earlier runs in the same round trip (server/commit.sh). Its payload is defined here, with
 * the framing the script checks: the parts below, one after the other on stdin, each announced
 * by its name, length and sha256 as arguments, so that nothing is renamed unless every byte
 * arrived (a link cut mid-way leaves a short payload, and nothing changes).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ActionError } from '../common/errors.js';
import { untrustedLine } from '../common/untrusted.js';
import { sha256Sums, SHA256SUMS_PATH } from '../simplestreams/checksums.js';
import { buildStreamsIndex, referencedPaths, type ImagesIndex } from '../simplestreams/images-index.js';
import { remoteFailure } from '../ssh/remote-failure.js';
import { SHORT_COMMAND_TIMEOUT_SECONDS } from '../ssh/session.js';
import { RETIRE_GRACE_SECONDS, UPLOAD_GRACE_SECONDS } from './layout.js';
import { fenceArgs, LEASE_LOST_EXIT, leaseLost, type HeldLock } from './lock.js';
import type { Registry } from './registry.js';
import { COMMIT } from './scripts.js';

/** A file the index can name and the action may retire: a plain name in images/. */
const RETIRABLE = /^images\/[A-Za-z0-9._-]+$/;

/** How the messages name the registry lock. */
export const REGISTRY_LOCK_NAME = 'registry lock';

/**
 * The parts of the payload, in the order they travel:
 *   images.json, index.json   the new index (both or neither)
 *   SHA256SUMS                images/SHA256SUMS for the index live afterwards
 *   retired                   files the new index no longer names, one per line
 *   named                     every file the live index names afterwards, one per line
 */
type PartName = 'images.json' | 'index.json' | 'SHA256SUMS' | 'retired' | 'named';

interface Part {
  name: PartName;
  bytes: Buffer;
}

const lines = (values: Iterable<string>): Buffer => Buffer.from([...values].map((value) => `${value}\n`).join(''));
export const sha256Of = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/**
 * The payload's parts for a commit (see Part). SHA256SUMS follows every index the action leaves:
 * it is sent with a new index, and with an unchanged one whose SHA256SUMS does not match it (an
 * index written by hand, or by a convert-command).
 */
export function payloadParts(options: Pick<CommitOptions, 'live' | 'changed' | 'current' | 'retired'>): Part[] {
  const parts: Part[] = [];
  if (options.changed) {
    parts.push({ name: 'images.json', bytes: Buffer.from(JSON.stringify(options.live)) });
    parts.push({ name: 'index.json', bytes: Buffer.from(JSON.stringify(buildStreamsIndex(options.live))) });
  }
  const sums = Buffer.from(sha256Sums(options.live));
  if (options.changed || sha256Of(sums) !== options.current.sumsSha256) parts.push({ name: 'SHA256SUMS', bytes: sums });
  const retired = options.retired.filter((path) => RETIRABLE.test(path) && path !== SHA256SUMS_PATH);
  if (options.changed && retired.length > 0) parts.push({ name: 'retired', bytes: lines(new Set(retired)) });
  parts.push({ name: 'named', bytes: lines([...referencedPaths(options.live)].sort()) });
  return parts;
}

/** Where each index part is served, relative to the registry's root (what a CDN may cache). */
const SERVED_AT: Partial<Record<PartName, string>> = {
  'images.json': 'streams/v1/images.json',
  'index.json': 'streams/v1/index.json',
  SHA256SUMS: SHA256SUMS_PATH,
};

/** A staged file and the name it is published under in images/. */
export interface StagedFile {
  staged: string;
  published: string;
}

export interface CommitOptions {
  /** The registry lock, whose lease the commit runs under. */
  lock: HeldLock;
  /** The index that is live afterwards: the new one, or the current one when `changed` is false. */
  live: ImagesIndex;
  /** Whether `live` is a new index to make live; otherwise only the clean-up runs (and SHA256SUMS). */
  changed: boolean;
  /** The live images.json as read under the lock (empty: none), and the sha256 of images/SHA256SUMS. */
  current: { text: Buffer; sumsSha256: string | undefined };
  /** Staging tree whose images/ holds the new files, if any. */
  staging?: string;
  /** The new version's files: the commit changes nothing if one is gone, or if its name holds other bytes. */
  stagedFiles?: StagedFile[];
  /** Files the new index no longer names (kept for a while, then removed). */
  retired: string[];
  /** This run's own server-side directories, removed once done. */
  done: string[];
}

/** A different file already has a staged file's published name (a retired file within its grace). */
export class NameCollision extends Error {
  constructor(readonly detail: string) {
    super(detail);
    this.name = 'NameCollision';
  }
}

/**
 * Makes `live` the registry's index when `changed` (or only cleans up), in one round trip, and
 * checks that the images.json live afterwards is exactly that index (or, unchanged, the one read
 * under the lock): anything else was written by something that does not take the lock. Returns
 * the served files it rewrote (paths relative to simplestreams-dir), for a CDN to purge.
 */
export async function commit(registry: Registry, options: CommitOptions): Promise<string[]> {
  const { simplestreamsDir, uploadDir } = registry.paths;
  const parts = payloadParts(options);
  const staged = options.stagedFiles ?? [];
  const args = [
    ...fenceArgs(options.lock.fence),
    simplestreamsDir,
    options.staging ?? '',
    uploadDir,
    String(RETIRE_GRACE_SECONDS),
    String(UPLOAD_GRACE_SECONDS / 60),
    String(parts.length),
    ...parts.flatMap((part) => [part.name, String(part.bytes.length), sha256Of(part.bytes)]),
    String(staged.length),
    ...staged.flatMap((file) => [file.staged, file.published]),
    ...options.done,
  ];
  const what = options.changed
    ? `Publishing the new index in ${simplestreamsDir} (simplestreams-dir)`
    : `Cleaning up after earlier runs in ${simplestreamsDir} (simplestreams-dir)`;
  const result = await registry.execScript(COMMIT, args, {
    what,
    stdin: Readable.from(parts.map((part) => part.bytes)),
    timeoutSeconds: SHORT_COMMAND_TIMEOUT_SECONDS,
  });
  switch (result.code) {
    case 0:
      break;
    case LEASE_LOST_EXIT:
      throw leaseLost(options.lock, what, REGISTRY_LOCK_NAME);
    case 78:
      throw new NameCollision(untrustedLine(result.stderr.trim().split('\n').at(-1) ?? ''));
    default:
      throw new ActionError(remoteFailure(what, result));
  }
  const live = result.stdout
    .toString('utf8')
    .split('\n')
    .findLast((line) => /^live ([0-9a-f]{64}|none)$/.test(line));
  if (!live) {
    throw new ActionError(
      `${what} ended without saying what is live (it printed: ${untrustedLine(result.stdout.toString('utf8').slice(0, 200))}). ` +
        "Check that the SSH user's shell startup files print nothing, and run the step again.",
    );
  }
  const expected = options.changed
    ? sha256Of(parts[0]?.bytes ?? Buffer.alloc(0))
    : options.current.text.length > 0
      ? sha256Of(options.current.text)
      : 'none';
  if (live.slice('live '.length) !== expected) {
    throw new ActionError(
      `The registry's images.json is not the index this run left live. Something changed it without taking the lock ` +
        '(see docs/server-setup.md on running incus-simplestreams by hand); run the step again.',
    );
  }
  return parts.flatMap((part) => SERVED_AT[part.name] ?? []);
}
