/**
 * The upload: each image's files go into its own directory under upload-dir, under that image's
 * lock, as `.partial` files that get their final name once complete (registry/scripts.ts
 * WRITE_FILE). What an earlier attempt left is reused or resumed after a byte-for-byte check; a
 * dropped connection is retried. The bytes are hashed as they go, so a first upload reads each
 * file once and yields the fingerprint.
 */
import * as core from '@actions/core';
import { createHash, type Hash } from 'node:crypto';
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../common/errors.js';
import { untrustedLine } from '../common/untrusted.js';
import { hashFileInto, UploadHashes } from '../image/hashing.js';
import { readStream } from '../image/local-file.js';
import { SHORT_COMMAND_TIMEOUT_SECONDS } from '../ssh/session.js';
import { commandLine } from '../ssh/shell.js';
import { imageLockPath, type RemoteImage, type UploadFile } from './layout.js';
import { holdLock, type HeldLock } from './lock.js';
import { formatProgress, ProgressCounter } from './progress.js';
import type { Registry } from './registry.js';
import { UPLOAD_STATE, WRITE_FILE } from './scripts.js';

export interface UploadOptions {
  /** Seconds to wait for the image's lock (lock-timeout). */
  lockTimeout: number;
  /** How often a dropped connection is retried (retries). */
  retries: number;
}

export interface Upload {
  fingerprint: string;
  /** The image's upload lock: held until the publication is done (it marks the staging tree as in use). */
  lock: HeldLock;
}

interface RemoteFileState {
  /** Size of the complete file, or -1. */
  final: number;
  /** Size of the partial file, or -1. */
  partial: number;
}

async function uploadState(
  registry: Registry,
  image: RemoteImage,
  timeoutSeconds: number,
): Promise<Map<string, RemoteFileState>> {
  const names = image.files.map((file) => file.name);
  const output = await registry.runScript(UPLOAD_STATE, [image.dir, String(timeoutSeconds), ...names], {
    what: `Checking earlier uploads in ${image.dir}`,
    timeoutSeconds: timeoutSeconds + SHORT_COMMAND_TIMEOUT_SECONDS,
  });
  const states = new Map<string, RemoteFileState>();
  for (const line of output.toString('utf8').trim().split('\n')) {
    const [name, final, partial] = line.split(' ');
    if (name) states.set(name, { final: Number(final), partial: Number(partial) });
  }
  return states;
}

async function remoteSha256(registry: Registry, path: string): Promise<string> {
  const output = await registry.session.run(commandLine(['sha256sum', '--', path]), {
    what: `Hashing ${path} on the server`,
  });
  return output.toString('utf8').split(' ')[0] ?? '';
}

interface SendOptions {
  dir: string;
  /** Where to start (bytes already on the server). */
  offset: number;
  lockTimeout: number;
  /** Hashes fed with the bytes as they are sent. */
  hashes: Hash[];
}

/** Streams a file (from `offset`) onto `<name>.partial`, renamed to its name once complete. */
async function sendFile(registry: Registry, file: UploadFile, options: SendOptions): Promise<void> {
  const { dir, offset, lockTimeout, hashes } = options;
  const counter = new ProgressCounter(file.name, file.local.size, core.info, 5000, offset, hashes);
  const source = readStream(file.local, { start: offset });
  source.on('error', (error) => counter.destroy(error));
  const restart = offset === 0 ? '1' : '0';
  await registry.runScript(WRITE_FILE, [dir, file.name, String(lockTimeout), restart, String(file.local.size)], {
    what: `Uploading ${file.local.path} to ${posix.join(dir, file.name)}`,
    stdin: source.pipe(counter),
  });
  core.info(formatProgress(counter.snapshot()));
}

/**
 * Sends the files that are not already on the server, resuming partial ones, and hashes them as
 * they go. Reusing or resuming an earlier run's upload reads the part already sent locally, to
 * check it against the server's copy.
 */
async function transferFiles(
  registry: Registry,
  image: RemoteImage,
  lockTimeout: number,
  hashes: UploadHashes,
): Promise<void> {
  const states = await uploadState(registry, image, lockTimeout);
  for (const [index, file] of image.files.entries()) {
    if (hashes.isDone(index)) continue; // sent before the connection dropped
    const remotePath = posix.join(image.dir, file.name);
    const state = states.get(file.name) ?? { final: -1, partial: -1 };
    if (state.final === file.local.size) {
      const own = createHash('sha256');
      const fingerprint = hashes.before(index);
      await hashFileInto(file.local, [own, fingerprint]);
      if ((await remoteSha256(registry, remotePath)) === own.digest('hex')) {
        hashes.finish(index, fingerprint);
        core.info(`${file.name}: already on the server from an earlier run (sha256 matches); not sent again`);
        continue;
      }
    }
    let offset = 0;
    let fingerprint = hashes.before(index);
    if (state.partial > 0 && state.partial <= file.local.size) {
      const prefix = createHash('sha256');
      const prefixFingerprint = hashes.before(index);
      const [remote] = await Promise.all([
        remoteSha256(registry, `${remotePath}.partial`),
        hashFileInto(file.local, [prefix, prefixFingerprint], state.partial),
      ]);
      if (remote === prefix.digest('hex')) {
        offset = state.partial;
        fingerprint = prefixFingerprint;
        core.info(`${file.name}: resuming after ${offset} bytes already on the server`);
      }
    }
    // One hash over the bytes as they go: the fingerprint, without a second read of the file.
    await sendFile(registry, file, { dir: image.dir, offset, lockTimeout, hashes: [fingerprint] });
    hashes.finish(index, fingerprint);
  }
}

/**
 * Uploads under the image's own lock, retrying when the connection drops, and returns the
 * fingerprint with the lock, which stays held until the publication is done.
 */
export async function uploadImage(registry: Registry, image: RemoteImage, options: UploadOptions): Promise<Upload> {
  const hashes = new UploadHashes();
  for (let attempt = 0; ; attempt++) {
    let lock: HeldLock | undefined;
    try {
      lock = await holdLock(registry, {
        path: imageLockPath(registry.paths, image.key),
        timeoutSeconds: options.lockTimeout,
        busyMessage:
          `Another run has been publishing this same image (upload key ${image.key}) for more than ` +
          `${options.lockTimeout} seconds (lock-timeout). Try again when it is done.`,
      });
      await transferFiles(registry, image, options.lockTimeout, hashes);
      return { fingerprint: hashes.fingerprint(), lock };
    } catch (error) {
      await lock?.release().catch(() => undefined);
      if (registry.isConnected() || attempt >= options.retries) throw error;
      const delay = Math.min(30, 2 ** attempt);
      core.warning(
        `The connection dropped during the upload (${untrustedLine(describeError(error))}). Retrying in ${delay} s ` +
          `(retry ${attempt + 1} of ${options.retries}); the upload resumes where it stopped.`,
      );
      await sleep(delay * 1000);
      await registry.reconnect();
    }
  }
}
