/**
 * Locks on the server, each held as a lease: the registry lock (server/registry-lock.sh) and each
 * image's upload lock (server/image-lock.sh). The holder keeps a lock only while this runner's
 * heartbeats reach it; when they stop (a runner suspended or gone, a link gone silent) the server
 * lets the lock go within the lease, instead of when TCP gives up hours later. Every operation
 * under a lock is fenced by its lease (server/lib/fence.sh): it runs only while the lease's holder
 * is alive, and the lock's next holder waits until it has ended. A run that wakes up after its
 * lease was lost therefore fails before it changes anything (exit LEASE_LOST_EXIT), and can never
 * undo what the run after it published.
 */
import { randomBytes } from 'node:crypto';
import { ActionError } from '../common/errors.js';
import { untrustedLine } from '../common/untrusted.js';
import { emptyImagesIndex, type ImagesIndex } from '../simplestreams/images-index.js';
import { HeldCommandEnded, type CommandResult } from '../ssh/session.js';
import { remoteFailure } from '../ssh/remote-failure.js';
import { scriptCommand } from '../ssh/shell.js';
import { liveIndexPath, lockPath, stateDir } from './layout.js';
import { parseIndexText } from './read.js';
import type { Registry } from './registry.js';
import { REGISTRY_LOCK, type ServerScript } from './scripts.js';

/** How long the server keeps the registry lock after the last heartbeat. */
export const REGISTRY_LEASE_SECONDS = 30;
/**
 * How long the server keeps an image lock after the last heartbeat: longer, because during the
 * upload a heartbeat waits behind the data in flight (up to 16 MiB: 16 s on a 1 MB/s link), and
 * a lost image lease only holds up a publish of the same image.
 */
export const IMAGE_LEASE_SECONDS = 120;
/** How often the runner renews a lease. */
const HEARTBEAT_MS = 3000;
/** The exit status of every fenced script when its lease was lost (server/lib/fence.sh). */
export const LEASE_LOST_EXIT = 73;

/** What a fenced operation names: the lock, and the lease it must run under. */
export interface Fence {
  /** The state directory, where the leases' files live. */
  state: string;
  lock: string;
  token: string;
}

/** A fenced script's first three arguments (server/lib/fence.sh). */
export const fenceArgs = (fence: Fence): string[] => [fence.state, fence.lock, fence.token];

export interface HeldLock {
  fence: Fence;
  /** The lease in seconds. */
  leaseSeconds: number;
  /** What the holder printed before it announced the lock (image-lock.sh reports the upload's state). */
  report: string[];
  /** Whether the server let the lock go before it was released (no heartbeat in time, or the holder died). */
  lost(): boolean;
  release(): Promise<void>;
}

export interface LockOptions {
  path: string;
  timeoutSeconds: number;
  leaseSeconds: number;
  /** The error when the lock is not free within the timeout (it names lock-timeout). */
  busyMessage: string;
  /** The holder: a script taking (state, lock, timeout, lease, token, …args), printing "locked" once it holds the lock. */
  script: ServerScript;
  /** Its arguments after the lease token. */
  args: string[];
}

/** registry-lock.sh found no simplestreams-dir (exit 4). */
class NoSimplestreamsDir extends Error {}

/** Takes the lock at `path` as a lease, renewed by heartbeats until released. */
export async function holdLock(registry: Registry, options: LockOptions): Promise<HeldLock> {
  const { path, timeoutSeconds, leaseSeconds, busyMessage, script, args } = options;
  const fence: Fence = { state: stateDir(registry.paths), lock: path, token: randomBytes(16).toString('hex') };
  let held;
  try {
    held = await registry.session.startHeld(
      scriptCommand(script.text, script.name, [
        fence.state,
        path,
        String(timeoutSeconds),
        String(leaseSeconds),
        fence.token,
        ...args,
      ]),
      (line) => line === 'locked',
    );
  } catch (error) {
    if (error instanceof HeldCommandEnded) {
      if (error.result.code === 75) throw new ActionError(busyMessage, 'lock-timeout');
      if (error.result.code === 4) throw new NoSimplestreamsDir();
      throw new ActionError(remoteFailure(`Taking the lock ${path}`, error.result));
    }
    throw error;
  }
  let released = false;
  let ended = false;
  const heartbeat = setInterval(() => held.send('\n'), HEARTBEAT_MS);
  heartbeat.unref();
  void held.ended.then(() => {
    ended = true;
    clearInterval(heartbeat);
  });
  return {
    fence,
    leaseSeconds,
    report: held.lines.slice(0, -1),
    lost: () => ended && !released,
    release: async () => {
      released = true;
      clearInterval(heartbeat);
      await held.release();
    },
  };
}

/** The error for an operation refused because its lease was lost. */
export function leaseLost(lock: HeldLock, what: string, lockName: string): ActionError {
  return new ActionError(
    `${what} was refused: the ${lockName} was lost. No heartbeat from this runner reached the server for ` +
      `${lock.leaseSeconds} s (the runner was suspended, or the link to the server went silent), so the server let ` +
      'the lock go and another run may have gone on. This run changed nothing after that; run the step again.',
  );
}

/**
 * Fails with leaseLost when a fenced script ended with LEASE_LOST_EXIT (or the lease was lost
 * meanwhile), otherwise with the script's own failure; returns its stdout when it succeeded.
 */
export function fencedOutput(result: CommandResult, lock: HeldLock, what: string, lockName: string): Buffer {
  if (result.code === 0) return result.stdout;
  if (result.code === LEASE_LOST_EXIT) throw leaseLost(lock, what, lockName);
  throw new ActionError(remoteFailure(what, result));
}

/** The registry lock and what was read under it, before the index is parsed. */
export interface RawRegistryLock {
  lock: HeldLock;
  /** The live images.json as it was read (empty when there is none yet). */
  liveText: Buffer;
  /** Whether there is an images.json at all (liveText is also empty for an empty file). */
  indexExists: boolean;
  /** The sha256 of images/SHA256SUMS, or undefined when there is none. */
  sumsSha256: string | undefined;
}

/**
 * Takes the registry lock (one writer at a time), waiting at most `lockTimeout` seconds, and
 * reads the live index as it stands under it, in one round trip (server/registry-lock.sh).
 */
export async function takeRegistryLock(registry: Registry, lockTimeout: number): Promise<RawRegistryLock> {
  const { simplestreamsDir } = registry.paths;
  let lock: HeldLock;
  try {
    lock = await holdLock(registry, {
      path: lockPath(registry.paths),
      timeoutSeconds: lockTimeout,
      leaseSeconds: REGISTRY_LEASE_SECONDS,
      busyMessage:
        `The registry in ${simplestreamsDir} is busy: another run has held its lock for more than ` +
        `${lockTimeout} seconds (lock-timeout). Try again later, or raise lock-timeout.`,
      script: REGISTRY_LOCK,
      args: [simplestreamsDir],
    });
  } catch (error) {
    if (error instanceof NoSimplestreamsDir) {
      throw new ActionError(
        `simplestreams-dir: ${simplestreamsDir} does not exist on the server. Create it (see docs/server-setup.md) or fix the input.`,
        'simplestreams-dir',
      );
    }
    throw error;
  }
  try {
    const sums = lock.report.findLast((line) => /^sums [0-9a-f]{64}$/.test(line) || line === 'nosums');
    return {
      lock,
      liveText: indexUnderLock(lock.report),
      indexExists: lock.report.findLast((line) => line === 'noindex' || line.startsWith('index ')) !== 'noindex',
      sumsSha256: sums?.startsWith('sums ') ? sums.slice('sums '.length) : undefined,
    };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** The registry lock, the live index read under it, and what the holder found. */
export interface RegistryLock extends RawRegistryLock {
  live: ImagesIndex;
}

/** takeRegistryLock, with the live index parsed (the lock is let go when it does not parse). */
export async function holdRegistryLock(registry: Registry, lockTimeout: number): Promise<RegistryLock> {
  const raw = await takeRegistryLock(registry, lockTimeout);
  try {
    const live =
      raw.liveText.length === 0 ? emptyImagesIndex() : parseIndexText(raw.liveText, liveIndexPath(registry.paths));
    return { ...raw, live };
  } catch (error) {
    await raw.lock.release();
    throw error;
  }
}

/** The live index registry-lock.sh printed (base64 on one line), or nothing when there is none yet. */
function indexUnderLock(report: string[]): Buffer {
  const line = report.findLast((candidate) => candidate === 'noindex' || candidate.startsWith('index '));
  if (line === undefined) {
    throw new ActionError(
      `Taking the registry lock did not report the live index (it printed: ${untrustedLine(report.join(' ').slice(0, 200))}). ` +
        "Check that the SSH user's shell startup files print nothing, and run the step again.",
    );
  }
  return line === 'noindex' ? Buffer.alloc(0) : Buffer.from(line.slice('index '.length), 'base64');
}
