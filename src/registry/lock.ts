/** Locks on the server: the registry lock, and each image's upload lock (registry/scripts.ts HOLD_LOCK). */
import { ActionError } from '../common/errors.js';
import { HeldCommandEnded } from '../ssh/session.js';
import { remoteFailure } from '../ssh/remote-failure.js';
import { scriptCommand } from '../ssh/shell.js';
import { lockPath } from './layout.js';
import type { Registry } from './registry.js';
import { HOLD_LOCK, type ServerScript } from './scripts.js';

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
  /** A holder that does more once it holds the lock (HOLD_LOCK by default), and its further arguments. */
  script?: ServerScript;
  args?: string[];
}

/** Takes the lock at `path`; it is held until released, or until the SSH session ends. */
export async function holdLock(registry: Registry, options: LockOptions): Promise<HeldLock> {
  const { path, timeoutSeconds, busyMessage, script = HOLD_LOCK, args = [] } = options;
  try {
    const held = await registry.session.startHeld(
      scriptCommand(script.text, script.name, [path, String(timeoutSeconds), ...args]),
      (line) => /^locked \d+$/.test(line),
    );
    const pid = Number(/^locked (\d+)$/.exec(held.firstLine)?.[1]);
    if (!Number.isInteger(pid)) {
      await held.release();
      throw new ActionError(`Taking the lock ${path} failed: unexpected answer "${held.firstLine}".`);
    }
    return { pid, report: held.lines.slice(0, -1), release: () => held.release() };
  } catch (error) {
    if (error instanceof HeldCommandEnded) {
      if (error.result.code === 75) throw new ActionError(busyMessage, 'lock-timeout');
      throw new ActionError(remoteFailure(`Taking the lock ${path}`, error.result));
    }
    throw error;
  }
}

/** Takes the registry lock (one writer at a time), waiting at most `lockTimeout` seconds. */
export function holdRegistryLock(
  registry: Registry,
  lockTimeout: number,
  holder: Pick<LockOptions, 'script' | 'args'> = {},
): Promise<HeldLock> {
  return holdLock(registry, {
    ...holder,
    path: lockPath(registry.paths),
    timeoutSeconds: lockTimeout,
    busyMessage:
      `The registry in ${registry.paths.simplestreamsDir} is busy: another run has held its lock for more than ` +
      `${lockTimeout} seconds (lock-timeout). Try again later, or raise lock-timeout.`,
  });
}
