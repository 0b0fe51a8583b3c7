/** Locks on the server: the registry lock (REGISTRY_LOCK), and each image's upload lock (IMAGE_LOCK). */
import { ActionError } from '../common/errors.js';
import { untrustedLine } from '../common/untrusted.js';
import { emptyImagesIndex, type ImagesIndex } from '../simplestreams/images-index.js';
import { HeldCommandEnded } from '../ssh/session.js';
import { remoteFailure } from '../ssh/remote-failure.js';
import { scriptCommand } from '../ssh/shell.js';
import { liveIndexPath, lockPath } from './layout.js';
import { parseIndexText } from './read.js';
import type { Registry } from './registry.js';
import { REGISTRY_LOCK, type ServerScript } from './scripts.js';

export interface HeldLock {
  /** PID of the server-side holder, checked before the commit renames. */
  pid: number;
  /** What the holder printed before it announced the lock (IMAGE_LOCK reports the upload's state). */
  report: string[];
  release(): Promise<void>;
}

export interface LockOptions {
  path: string;
  timeoutSeconds: number;
  /** The error when the lock is not free within the timeout (it names lock-timeout). */
  busyMessage: string;
  /** The holder: a script that takes the lock on `$1` within `$2` seconds, prints "locked PID" and holds it. */
  script: ServerScript;
  /** Its arguments after the lock's path and timeout. */
  args: string[];
}

/** Takes the lock at `path`; it is held until released, or until the SSH session ends. */
export async function holdLock(registry: Registry, options: LockOptions): Promise<HeldLock> {
  const { path, timeoutSeconds, busyMessage, script, args } = options;
  try {
    const held = await registry.session.startHeld(
      scriptCommand(script.text, script.name, [path, String(timeoutSeconds), ...args]),
      (line) => /^locked \d+$/.test(line),
    );
    // startHeld returns only once the holder printed a line of this form.
    const pid = Number(held.firstLine.slice('locked '.length));
    return { pid, report: held.lines.slice(0, -1), release: () => held.release() };
  } catch (error) {
    if (error instanceof HeldCommandEnded) {
      if (error.result.code === 75) throw new ActionError(busyMessage, 'lock-timeout');
      throw new ActionError(remoteFailure(`Taking the lock ${path}`, error.result));
    }
    throw error;
  }
}

/**
 * Takes the registry lock (one writer at a time), waiting at most `lockTimeout` seconds, and
 * reads the live index as it stands under it, in one round trip (REGISTRY_LOCK).
 */
export async function holdRegistryLock(
  registry: Registry,
  lockTimeout: number,
): Promise<{ lock: HeldLock; live: ImagesIndex }> {
  const lock = await holdLock(registry, {
    path: lockPath(registry.paths),
    timeoutSeconds: lockTimeout,
    busyMessage:
      `The registry in ${registry.paths.simplestreamsDir} is busy: another run has held its lock for more than ` +
      `${lockTimeout} seconds (lock-timeout). Try again later, or raise lock-timeout.`,
    script: REGISTRY_LOCK,
    args: [registry.paths.simplestreamsDir],
  });
  try {
    return { lock, live: indexUnderLock(registry, lock.report) };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** The live index REGISTRY_LOCK printed (base64 on one line), or an empty one when there is none yet. */
function indexUnderLock(registry: Registry, report: string[]): ImagesIndex {
  const line = [...report].reverse().find((candidate) => candidate === 'noindex' || candidate.startsWith('index '));
  if (line === undefined) {
    throw new ActionError(
      `Taking the registry lock did not report the live index (it printed: ${untrustedLine(report.join(' ').slice(0, 200))}). ` +
        "Check that the SSH user's shell startup files print nothing, and run the step again.",
    );
  }
  if (line === 'noindex') return emptyImagesIndex();
  return parseIndexText(Buffer.from(line.slice('index '.length), 'base64'), liveIndexPath(registry.paths));
}
